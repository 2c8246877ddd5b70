package api

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/history"
	"github.com/arq-memory/arq/projections/readmodel"
	"github.com/arq-memory/arq/queries"
)

// windowRequest is the budget and query of a context window, from query
// parameters (GET) or a JSON body (POST, and taking a snapshot); only a
// body carries an embedding.
type windowRequest struct {
	MaxTokens    *int        `json:"max_tokens"`
	Query        string      `json:"query"`
	Embedding    embeddingIn `json:"embedding"`
	SummaryShare *float64    `json:"summary_share"`
	MemoryShare  *float64    `json:"memory_share"`
}

// budget validates the request's budget and its split; ceiling (when
// above 0) is the largest max_tokens this server grants (see
// Resources.MaxContextTokens).
func (w windowRequest) budget(ceiling int) (domain.Budget, error) {
	b := domain.DefaultBudget()
	if w.MaxTokens != nil {
		b.MaxTokens = *w.MaxTokens
	}
	// A share given alone takes what it needs of the other's default:
	// memory_share=1 alone leaves the summary out rather than adding up
	// to more than 1 with a default the client did not choose.
	if w.SummaryShare != nil {
		b.SummaryShare = *w.SummaryShare
		if w.MemoryShare == nil && b.SummaryShare >= 0 && b.SummaryShare <= 1 {
			b.MemoryShare = min(b.MemoryShare, 1-b.SummaryShare)
		}
	}
	if w.MemoryShare != nil {
		b.MemoryShare = *w.MemoryShare
		if w.SummaryShare == nil && b.MemoryShare >= 0 && b.MemoryShare <= 1 {
			b.SummaryShare = min(b.SummaryShare, 1-b.MemoryShare)
		}
	}
	if ceiling <= 0 || b.MaxTokens <= ceiling {
		return b, b.Validate()
	}
	// Over the ceiling: max_tokens is named once, with the ceiling, and
	// the rest of the budget checked as if it asked for no more.
	v := &domain.ValidationError{}
	v.Add("max_tokens", "must be between 1 and %d, this server's ceiling (ARQ_MAX_CONTEXT_TOKENS)", ceiling)
	within := b
	within.MaxTokens = ceiling
	var rest *domain.ValidationError
	if errors.As(within.Validate(), &rest) {
		v.Fields = append(v.Fields, rest.Fields...)
	}
	return b, v
}

// query validates the request's budget (up to ceiling tokens) and a
// client's embedding, as
// far as the API can (the query service checks the embedding's dimension,
// and that the session exists, before it asks a provider for one).
func (w windowRequest) query(ceiling int) (queries.WindowQuery, error) {
	var q queries.WindowQuery
	var err error
	if q.Budget, err = w.budget(ceiling); err != nil {
		return q, err
	}
	if q.Embedding, err = w.Embedding.client(); err != nil {
		return q, err
	}
	q.Query = w.Query
	return q, nil
}

// windowQuery reads ?max_tokens=&query=&summary_share=&memory_share=.
func windowQuery(c *gin.Context) (windowRequest, error) {
	w := windowRequest{Query: c.Query("query")}
	v := &domain.ValidationError{}
	if s := c.Query("max_tokens"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			v.Add("max_tokens", "must be a whole number")
		}
		w.MaxTokens = &n
	}
	for _, f := range []struct {
		name string
		dst  **float64
	}{{"summary_share", &w.SummaryShare}, {"memory_share", &w.MemoryShare}} {
		if s := c.Query(f.name); s != "" {
			x, err := strconv.ParseFloat(s, 64)
			if err != nil || math.IsNaN(x) {
				v.Add(f.name, "must be a number from 0 to 1")
			}
			*f.dst = &x
		}
	}
	return w, v.Err()
}

func (r *resources) contextRoutes(g *gin.RouterGroup) {
	g.GET("/sessions/:id/context", r.getContext)
	g.POST("/sessions/:id/context", r.postContext)
	g.POST("/sessions/:id/context/snapshots", r.takeSnapshot)
	g.GET("/sessions/:id/context/snapshots", r.listSnapshots)
	g.GET("/context-snapshots/:id", r.getSnapshot)
	g.GET("/messages/:id/context", r.getMessageContext)
}

func (r *resources) getContext(c *gin.Context) {
	if !r.minPosition(c) {
		return
	}
	w, err := windowQuery(c)
	if err != nil {
		WriteError(c, err)
		return
	}
	r.answerWindow(c, w)
}

// postContext is getContext with the request in a JSON body, which can
// carry the query's embedding.
func (r *resources) postContext(c *gin.Context) {
	if !r.minPosition(c) {
		return
	}
	var w windowRequest
	if c.Request.ContentLength != 0 {
		if err := BindJSON(c, &w); err != nil {
			WriteError(c, err)
			return
		}
	}
	r.answerWindow(c, w)
}

func (r *resources) answerWindow(c *gin.Context, w windowRequest) {
	format, err := windowFormat(c)
	if err != nil {
		WriteError(c, err)
		return
	}
	q, err := w.query(r.MaxContextTokens)
	if err != nil {
		WriteError(c, err)
		return
	}
	win, err := r.Queries.ContextWindow(c.Request.Context(), c.Param("id"), q, time.Now())
	if err != nil {
		WriteError(c, err)
		return
	}
	if win.Cache != "" {
		c.Header("X-Arq-Cache", win.Cache)
	}
	writeWindow(c, format, win.JSON)
}

// snapshotBody is a snapshot with the text of each item as it was. A
// snapshot is a record that never changes: it is at version 1 (its ETag),
// updated when it was created.
type snapshotBody struct {
	readmodel.Snapshot
	Items     []history.Item `json:"items"`
	Version   int            `json:"version"`
	UpdatedAt time.Time      `json:"updated_at"`
}

func (r *resources) withTexts(ctx context.Context, s readmodel.Snapshot) (snapshotBody, error) {
	items, err := r.History.Items(ctx, s.SessionID, s.Items)
	if err != nil {
		return snapshotBody{}, err
	}
	return snapshotBody{Snapshot: s, Items: items, Version: 1, UpdatedAt: s.CreatedAt}, nil
}

func (r *resources) takeSnapshot(c *gin.Context) {
	var w windowRequest
	if c.Request.ContentLength != 0 {
		if err := BindJSON(c, &w); err != nil {
			WriteError(c, err)
			return
		}
	}
	q, err := w.query(r.MaxContextTokens)
	if err != nil {
		WriteError(c, err)
		return
	}
	ctx := c.Request.Context()
	win, err := r.Queries.SnapshotWindow(ctx, c.Param("id"), q, time.Now())
	if err != nil {
		WriteError(c, err)
		return
	}
	res, err := r.Commands.RecordSnapshot(ctx, meta(c), domain.ContextSnapshotData{
		SessionID: win.SessionID, UserID: win.UserID, Query: win.Query,
		Budget: win.MaxTokens, TotalTokens: win.TotalTokens, Items: win.Snapshot(),
	})
	if err != nil {
		commandError(c, err)
		return
	}
	r.settle(c, res, http.StatusCreated, "/v1/context-snapshots/"+res.ID, func(ctx context.Context) (any, int, error) {
		s, err := r.Queries.GetSnapshot(ctx, res.ID)
		if err != nil {
			return nil, 0, err
		}
		body, err := r.withTexts(ctx, s)
		return body, 1, err
	})
}

func (r *resources) listSnapshots(c *gin.Context) {
	if !r.minPosition(c) {
		return
	}
	p, err := page(c)
	if err != nil {
		WriteError(c, err)
		return
	}
	ctx := c.Request.Context()
	if _, err := r.Queries.GetSession(ctx, c.Param("id")); err != nil {
		WriteError(c, err)
		return
	}
	snaps, next, err := r.Queries.ListSnapshots(ctx, c.Param("id"), p)
	if err != nil {
		WriteError(c, err)
		return
	}
	items := make([]snapshotBody, 0, len(snaps))
	for _, s := range snaps {
		b, err := r.withTexts(ctx, s)
		if err != nil {
			WriteError(c, err)
			return
		}
		items = append(items, b)
	}
	list(c, items, next)
}

func (r *resources) getSnapshot(c *gin.Context) {
	if !r.minPosition(c) {
		return
	}
	r.answerSnapshot(c, func(ctx context.Context) (readmodel.Snapshot, error) {
		return r.Queries.GetSnapshot(ctx, c.Param("id"))
	})
}

func (r *resources) getMessageContext(c *gin.Context) {
	if !r.minPosition(c) {
		return
	}
	r.answerSnapshot(c, func(ctx context.Context) (readmodel.Snapshot, error) {
		return r.Queries.SnapshotOfMessage(ctx, c.Param("id"))
	})
}

func (r *resources) answerSnapshot(c *gin.Context, get func(context.Context) (readmodel.Snapshot, error)) {
	ctx := c.Request.Context()
	s, err := get(ctx)
	if err != nil {
		WriteError(c, err)
		return
	}
	body, err := r.withTexts(ctx, s)
	if err != nil {
		WriteError(c, err)
		return
	}
	etag(c, 1)
	c.JSON(http.StatusOK, body)
}
