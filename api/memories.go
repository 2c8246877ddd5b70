package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/projections/readmodel"
)

type storeMemoryRequest struct {
	Type            string         `json:"type"`
	Content         string         `json:"content"`
	Importance      *float64       `json:"importance"`
	Tags            []string       `json:"tags"`
	Metadata        map[string]any `json:"metadata"`
	SourceSessionID string         `json:"source_session_id"`
	SourceMessageID string         `json:"source_message_id"`
	TTLSeconds      *int64         `json:"ttl_seconds"`
	ExpiresAt       *time.Time     `json:"expires_at"`
	Embedding       embeddingIn    `json:"embedding"`
}

type updateMemoryRequest struct {
	Content     *string        `json:"content"`
	Importance  *float64       `json:"importance"`
	Tags        *[]string      `json:"tags"`
	Metadata    map[string]any `json:"metadata"`
	TTLSeconds  *int64         `json:"ttl_seconds"`
	ExpiresAt   *time.Time     `json:"expires_at"`
	ClearExpiry bool           `json:"clear_expiry"`
	Embedding   embeddingIn    `json:"embedding"`
}

// searchRequest is a ranked full-text search with the list's filters,
// fused with a vector search when it has an embedding.
type searchRequest struct {
	Query         string            `json:"query"`
	Embedding     embeddingIn       `json:"embedding"`
	Types         []string          `json:"types"`
	Tag           string            `json:"tag"`
	SessionID     string            `json:"session_id"`
	MinImportance *float64          `json:"min_importance"`
	CreatedBefore *time.Time        `json:"created_before"`
	CreatedAfter  *time.Time        `json:"created_after"`
	Metadata      map[string]string `json:"metadata"`
	Limit         int               `json:"limit"`
}

func (r *resources) memoryRoutes(g *gin.RouterGroup) {
	g.POST("/users/:id/memories", r.storeMemory)
	g.GET("/users/:id/memories", r.listMemories)
	g.POST("/users/:id/memories/search", r.searchMemories)
	g.GET("/memories/:id", r.getMemory)
	g.PATCH("/memories/:id", r.updateMemory)
	g.DELETE("/memories/:id", r.deleteMemory)
	g.POST("/users/:id/memories/consolidate", r.consolidateMemories)
}

func (r *resources) readMemory(id string) func(ctx context.Context) (any, int, error) {
	return func(ctx context.Context) (any, int, error) {
		m, err := r.Queries.GetMemory(ctx, id)
		return m, m.Version, err
	}
}

func (r *resources) storeMemory(c *gin.Context) {
	var req storeMemoryRequest
	if err := BindJSON(c, &req); err != nil {
		WriteError(c, err)
		return
	}
	v := &domain.ValidationError{}
	if p := ttlProblem(req.TTLSeconds, false); p != "" {
		v.Add("ttl_seconds", "%s", p)
	}
	embedding := req.Embedding.check(v, "embedding")
	if err := v.Err(); err != nil {
		WriteError(c, err)
		return
	}
	res, err := r.Commands.StoreMemory(c.Request.Context(), meta(c), c.Param("id"), domain.StoreMemory{
		Type: req.Type, Content: req.Content, Importance: req.Importance, Tags: req.Tags, Metadata: req.Metadata,
		SourceSessionID: req.SourceSessionID, SourceMessageID: req.SourceMessageID,
		TTL: seconds(req.TTLSeconds), ExpiresAt: req.ExpiresAt, Embedding: embedding,
	})
	if err != nil {
		commandError(c, err)
		return
	}
	r.settle(c, res, http.StatusCreated, "/v1/memories/"+res.ID, r.readMemory(res.ID))
}

// memoryFilter reads the list filters from the query string: type
// (repeatable or comma separated), tag, session_id, min_importance,
// created_before, created_after (RFC 3339), metadata=key=value
// (repeatable) and q (full text).
func memoryFilter(c *gin.Context) (readmodel.MemoryFilter, error) {
	var f readmodel.MemoryFilter
	v := &domain.ValidationError{}
	for _, t := range c.QueryArray("type") {
		for _, one := range strings.Split(t, ",") {
			if _, err := domain.ParseMemoryType(one); err != nil {
				v.Add("type", "%q is not working, episodic, semantic or procedural", one)
			}
			f.Types = append(f.Types, one)
		}
	}
	f.Tag = strings.ToLower(c.Query("tag"))
	f.SessionID = c.Query("session_id")
	f.Q = c.Query("q")
	if len(strings.Fields(f.Q)) > domain.MaxQueryWords {
		v.Add("q", "has more than %d words", domain.MaxQueryWords)
	}
	if s := c.Query("min_importance"); s != "" {
		x, err := strconv.ParseFloat(s, 64)
		if err != nil || !(x >= 0 && x <= 1) { // NaN is neither
			v.Add("min_importance", "must be a number from 0 to 1")
		}
		f.MinImportance = &x
	}
	for _, p := range []struct {
		name string
		dst  **time.Time
	}{{"created_before", &f.CreatedBefore}, {"created_after", &f.CreatedAfter}} {
		if s := c.Query(p.name); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				v.Add(p.name, "must be an RFC 3339 time")
			}
			*p.dst = &t
		}
	}
	for _, kv := range c.QueryArray("metadata") {
		k, val, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			v.Add("metadata", "%q: want key=value", kv)
			continue
		}
		if f.Metadata == nil {
			f.Metadata = map[string]string{}
		}
		f.Metadata[k] = val
	}
	return f, v.Err()
}

func (r *resources) listMemories(c *gin.Context) {
	if !r.minPosition(c) {
		return
	}
	p, err := page(c)
	if err != nil {
		WriteError(c, err)
		return
	}
	f, err := memoryFilter(c)
	if err != nil {
		WriteError(c, err)
		return
	}
	if _, err := r.Queries.GetUser(c.Request.Context(), tenant(c), c.Param("id")); err != nil {
		WriteError(c, err)
		return
	}
	items, next, err := r.Queries.ListMemories(c.Request.Context(), c.Param("id"), f, p)
	if err != nil {
		WriteError(c, err)
		return
	}
	list(c, items, next)
}

func (r *resources) searchMemories(c *gin.Context) {
	if !r.minPosition(c) {
		return
	}
	var req searchRequest
	if err := BindJSON(c, &req); err != nil {
		WriteError(c, err)
		return
	}
	v := &domain.ValidationError{}
	if strings.TrimSpace(req.Query) == "" && !req.Embedding.set() {
		v.Add("query", "is required (or an embedding)")
	}
	if len(strings.Fields(req.Query)) > domain.MaxQueryWords {
		v.Add("query", "has more than %d words", domain.MaxQueryWords)
	}
	if req.Limit == 0 {
		req.Limit = 20
	}
	if req.Limit < 1 || req.Limit > 100 {
		v.Add("limit", "must be from 1 to 100")
	}
	for _, t := range req.Types {
		if _, err := domain.ParseMemoryType(t); err != nil {
			v.Add("types", "%q is not working, episodic, semantic or procedural", t)
		}
	}
	if req.MinImportance != nil && (*req.MinImportance < 0 || *req.MinImportance > 1) {
		v.Add("min_importance", "must be from 0 to 1")
	}
	if err := v.Err(); err != nil {
		WriteError(c, err)
		return
	}
	if _, err := r.Queries.GetUser(c.Request.Context(), tenant(c), c.Param("id")); err != nil {
		WriteError(c, err)
		return
	}
	// After the user is known: a query's embedding may cost a call to the
	// provider.
	embedding, err := r.queryEmbedding(c.Request.Context(), req.Embedding, req.Query)
	if err != nil {
		WriteError(c, err)
		return
	}
	hits, err := r.Queries.SearchMemories(c.Request.Context(), c.Param("id"), req.Query, embedding, readmodel.MemoryFilter{
		Types: req.Types, Tag: strings.ToLower(req.Tag), SessionID: req.SessionID, MinImportance: req.MinImportance,
		CreatedBefore: req.CreatedBefore, CreatedAfter: req.CreatedAfter, Metadata: req.Metadata,
	}, req.Limit)
	if err != nil {
		WriteError(c, err)
		return
	}
	if hits == nil {
		hits = []readmodel.MemoryHit{}
	}
	c.JSON(http.StatusOK, itemsOf[readmodel.MemoryHit]{Items: hits})
}

func (r *resources) getMemory(c *gin.Context) {
	if !r.minPosition(c) || r.timeTravel(c, domain.KindMemory) {
		return
	}
	r.getEntity(c, domain.KindMemory)
}

func (r *resources) updateMemory(c *gin.Context) {
	expected, err := ifMatch(c)
	if err != nil {
		WriteError(c, err)
		return
	}
	var req updateMemoryRequest
	if err := BindJSON(c, &req); err != nil {
		WriteError(c, err)
		return
	}
	v := &domain.ValidationError{}
	var ttl *time.Duration
	if req.TTLSeconds != nil {
		if p := ttlProblem(req.TTLSeconds, false); p != "" {
			v.Add("ttl_seconds", "%s", p)
		}
		d := seconds(req.TTLSeconds)
		ttl = &d
	}
	embedding := req.Embedding.check(v, "embedding")
	if err := v.Err(); err != nil {
		WriteError(c, err)
		return
	}
	id := c.Param("id")
	res, err := r.Commands.UpdateMemory(c.Request.Context(), meta(c), id, expected, domain.UpdateMemory{
		Content: req.Content, Importance: req.Importance, Tags: req.Tags, Metadata: req.Metadata,
		TTL: ttl, ExpiresAt: req.ExpiresAt, ClearExpiry: req.ClearExpiry, Embedding: embedding,
	})
	if err != nil {
		commandError(c, err)
		return
	}
	r.settle(c, res, http.StatusOK, "", r.readMemory(id))
}

// deleteMemory deletes a memory; with ?erase=true it erases it instead
// (see erase.go).
func (r *resources) deleteMemory(c *gin.Context) {
	if erase, ok := r.eraseInstead(c, r.eraser().EraseMemory); erase || !ok {
		return
	}
	expected, err := ifMatch(c)
	if err != nil {
		WriteError(c, err)
		return
	}
	res, err := r.Commands.DeleteMemory(c.Request.Context(), meta(c), c.Param("id"), expected)
	if err != nil {
		commandError(c, err)
		return
	}
	r.settle(c, res, http.StatusNoContent, "", nil)
}
