package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
)

// logEvent is an event as the log endpoints answer it, with its cursor.
type logEvent struct {
	Cursor string `json:"cursor"`
	eventstore.Recorded
}

func (r *resources) logRoutes(g *gin.RouterGroup) {
	g.GET("/events", r.listEvents)
	g.GET("/users/:id/audit", r.userAudit)
}

// logQuery reads the paging and filters shared by the log endpoints:
// after (a cursor), limit (default 100, at most 1000), type (comma
// separated), stream_type, stream, from and to (RFC 3339).
func logQuery(c *gin.Context) (eventstore.Cursor, int, eventstore.Filter, error) {
	v := &domain.ValidationError{}
	after, err := eventstore.ParseCursor(c.Query("after"))
	if err != nil {
		v.Add("after", "is not a cursor this API gave out")
	}
	limit := 100
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			v.Add("limit", "must be a whole number from 1 to 1000")
		}
		limit = n
	}
	// Each caller reads its own tenant's events alone.
	f := eventstore.Filter{StreamType: c.Query("stream_type"), StreamID: c.Query("stream"), Tenant: tenant(c)}
	if t := c.Query("type"); t != "" {
		f.EventTypes = strings.Split(t, ",")
	}
	for _, b := range []struct {
		name string
		dst  *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if s := c.Query(b.name); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				v.Add(b.name, "must be an RFC 3339 time")
			}
			*b.dst = t
		}
	}
	return after, limit, f, v.Err()
}

// listEvents pages through the log in commit-safe order. When Accept
// ranks application/x-ndjson above application/json, it streams every
// event after the cursor instead, one JSON object a line, up to the head
// of the log.
func (r *resources) listEvents(c *gin.Context) {
	after, limit, f, err := logQuery(c)
	if err != nil {
		WriteError(c, err)
		return
	}
	accept := strings.Join(c.Request.Header.Values("Accept"), ",")
	if negotiate(accept, "application/json", "application/x-ndjson") == "application/x-ndjson" {
		if c.Query("limit") == "" {
			limit = 0 // every event up to the head
		}
		r.streamNDJSON(c, after, limit, f)
		return
	}
	r.logPage(c, after, limit, f)
}

// userAudit pages through every event that touched a user or anything of
// theirs, in log order, with the same filters as /v1/events.
func (r *resources) userAudit(c *gin.Context) {
	after, limit, f, err := logQuery(c)
	if err != nil {
		WriteError(c, err)
		return
	}
	events, err := r.History.Audit(c.Request.Context(), c.Param("id"), f, after, limit)
	if err != nil {
		WriteError(c, err)
		return
	}
	writePage(c, events, limit)
}

func (r *resources) logPage(c *gin.Context, after eventstore.Cursor, limit int, f eventstore.Filter) {
	events, err := r.Store.ReadAll(c.Request.Context(), after, limit, f)
	if err != nil {
		WriteError(c, err)
		return
	}
	writePage(c, events, limit)
}

// writePage answers a page of the log with its events' cursors, and the
// cursor to read on from when the page is full.
func writePage(c *gin.Context, events []eventstore.Recorded, limit int) {
	items := make([]logEvent, len(events))
	for i, e := range events {
		items[i] = logEvent{Cursor: e.Cursor().String(), Recorded: e}
	}
	next := ""
	if len(items) == limit {
		next = items[len(items)-1].Cursor
	}
	c.JSON(http.StatusOK, pageOf[logEvent]{Items: items, NextCursor: next})
}

func (r *resources) streamNDJSON(c *gin.Context, after eventstore.Cursor, limit int, f eventstore.Filter) {
	ctx := c.Request.Context()
	c.Header("Content-Type", "application/x-ndjson")
	c.Status(http.StatusOK)
	if isHead(c) {
		return
	}
	enc := json.NewEncoder(c.Writer)
	sent := 0
	for {
		page := 1000
		if limit > 0 {
			page = min(page, limit-sent)
		}
		events, err := r.Store.ReadAll(ctx, after, page, f)
		if err != nil {
			if ctx.Err() == nil {
				// The status is out already: a last line says the stream
				// is cut short, so that it is not taken for the log's end.
				logger(c).Warn("event stream cut short", "after", after.String(), "err", err)
				_ = enc.Encode(gin.H{"error": "reading the log failed; resume after the last cursor received"})
			}
			return
		}
		for _, e := range events {
			if err := enc.Encode(logEvent{Cursor: e.Cursor().String(), Recorded: e}); err != nil {
				return
			}
			after = e.Cursor()
		}
		c.Writer.Flush()
		sent += len(events)
		if len(events) < page || (limit > 0 && sent >= limit) {
			return
		}
	}
}
