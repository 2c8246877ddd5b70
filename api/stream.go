package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
)

// keepAlive is how often an idle event stream sends a comment, so proxies
// keep it open.
const keepAlive = 15 * time.Second

// DefaultStreamWriteTimeout bounds each write of an event stream when
// Resources.StreamWriteTimeout is not set.
const DefaultStreamWriteTimeout = 30 * time.Second

func (r *resources) streamRoutes(g *gin.RouterGroup) {
	g.GET("/sessions/:id/stream", r.sessionStream)
	g.GET("/events/stream", r.eventStream)
	g.GET("/streams/:stream/verify", r.verifyStream)
}

// verifyStream walks one stream's hash chain and reports its broken links.
func (r *resources) verifyStream(c *gin.Context) {
	v, err := r.Store.VerifyStream(c.Request.Context(), c.Param("stream"), nil)
	if err != nil {
		WriteError(c, err)
		return
	}
	if v.Breaks == nil {
		v.Breaks = []eventstore.Break{}
	}
	c.JSON(http.StatusOK, gin.H{"stream_id": c.Param("stream"), "intact": v.Intact(), "events": v.Events, "breaks": v.Breaks, "first_break": v.First})
}

// sessionEvents are the event types a session's stream sends.
var sessionEvents = []string{domain.MessageAppended, domain.SessionSummarized, domain.ContextSnapshotRecorded}

// sessionStream sends a session's new messages, summaries and context
// snapshots as Server-Sent Events: from after (or the Last-Event-ID a
// reconnecting client sends) it first catches up from the log, then goes
// on live; without either, from now on.
func (r *resources) sessionStream(c *gin.Context) {
	sid := c.Param("id")
	after, from, ok := streamCursor(c)
	if !ok {
		return
	}
	sess, err := r.Queries.GetSession(c.Request.Context(), sid)
	if err != nil {
		WriteError(c, err)
		return
	}
	logStream := domain.StreamID(domain.StreamMessageLog, sid)
	summaries := domain.StreamID(domain.StreamSummary, sid)
	accept := func(e eventstore.Recorded) bool {
		switch {
		case e.StreamID == logStream || e.StreamID == summaries:
			return true
		case e.Type == domain.ContextSnapshotRecorded:
			var d struct {
				SessionID string `json:"session_id"`
			}
			return json.Unmarshal(e.Data, &d) == nil && d.SessionID == sid
		}
		return false
	}
	var catchUp func(context.Context, eventstore.Cursor) ([]eventstore.Recorded, error)
	if from != "" {
		f := eventstore.Filter{UserID: sess.UserID, SessionID: sid, EventTypes: sessionEvents}
		catchUp = func(ctx context.Context, c eventstore.Cursor) ([]eventstore.Recorded, error) {
			return r.Store.ReadAll(ctx, c, 500, f)
		}
	}
	var ended <-chan string
	if callerOf(c).session {
		ended = r.sessionEnd(c.Request.Context(), sid, sess.ExpiresAt)
	}
	r.serveEvents(c, accept, after, catchUp, ended)
}

// sessionEnd tells a stream opened with a session's token when the
// session ends, as the token stops opening it: closed or expired (an
// event of the session's stream), or its expiry passed (a timer, moved
// by an extension). The watch ends with ctx.
func (r *resources) sessionEnd(ctx context.Context, sid string, expires *time.Time) <-chan string {
	ended := make(chan string, 1)
	stream := domain.StreamID(domain.StreamSession, sid)
	l := r.Live.Listen(func(e eventstore.Recorded) bool { return e.StreamID == stream })
	// still re-reads the session: "" while it is open and not past its
	// expiry, whose timer it moves; else why it ended.
	var timer *time.Timer
	still := func() string {
		s, err := r.Queries.GetSession(ctx, sid)
		switch {
		case err != nil && ctx.Err() == nil:
			return "the session is gone"
		case err != nil:
			return ""
		case s.Status != "open":
			return "the session was " + s.Status
		case s.ExpiresAt != nil && !time.Now().Before(*s.ExpiresAt):
			return "the session expired"
		case s.ExpiresAt != nil:
			timer.Reset(time.Until(*s.ExpiresAt))
		}
		return ""
	}
	timer = time.NewTimer(time.Hour)
	timer.Stop()
	if expires != nil {
		timer.Reset(time.Until(*expires))
	}
	go func() {
		defer l.Close()
		defer timer.Stop()
		why := ""
		for why == "" {
			select {
			case <-ctx.Done():
				return
			case e := <-l.C:
				switch e.Type {
				case domain.SessionClosed:
					why = "the session was closed"
				case domain.SessionExpired:
					why = "the session expired"
				case domain.SessionExtended:
					why = still()
				}
			case <-l.Lagged:
				why = still()
			case <-timer.C:
				why = still()
			}
		}
		ended <- why
	}()
	return ended
}

// streamCursor reads where an event stream resumes: the Last-Event-ID a
// reconnecting client sends, else the after parameter; from is "" when
// neither is given. A cursor that is not one answers 422 (ok false).
func streamCursor(c *gin.Context) (after eventstore.Cursor, from string, ok bool) {
	from, field := c.Query("after"), "after"
	if id := c.GetHeader("Last-Event-ID"); id != "" {
		from, field = id, "Last-Event-ID"
	}
	after, err := eventstore.ParseCursor(from)
	if err != nil {
		WriteError(c, invalidField(field, err.Error()))
		return after, from, false
	}
	return after, from, true
}

// eventStream sends the log as Server-Sent Events: from after (or the
// Last-Event-ID a reconnecting client sends) it first catches up from the
// log, then goes on live; without either, from now on. type and
// stream_type filter as in GET /v1/events.
func (r *resources) eventStream(c *gin.Context) {
	after, from, ok := streamCursor(c)
	if !ok {
		return
	}
	// Each caller follows its own tenant's events alone.
	f := eventstore.Filter{StreamType: c.Query("stream_type"), Tenant: tenant(c)}
	if t := c.Query("type"); t != "" {
		f.EventTypes = strings.Split(t, ",")
	}
	accept := func(e eventstore.Recorded) bool {
		return e.Metadata.Tenant == f.Tenant &&
			(f.StreamType == "" || e.StreamType == f.StreamType) && (len(f.EventTypes) == 0 || slices.Contains(f.EventTypes, e.Type))
	}
	var catchUp func(context.Context, eventstore.Cursor) ([]eventstore.Recorded, error)
	if from != "" {
		catchUp = func(ctx context.Context, c eventstore.Cursor) ([]eventstore.Recorded, error) {
			return r.Store.ReadAll(ctx, c, 500, f)
		}
	}
	r.serveEvents(c, accept, after, catchUp, nil)
}

// liveOpenBatch bounds how many live events a stream opens at once.
const liveOpenBatch = 100

// serveEvents streams events to the client: those catchUp reads from the
// log after cursor first, then live ones from the hub, each once and in
// order (an event at or before the last one sent is skipped). Each write
// must reach the client within the stream write timeout: a client that
// stops reading would otherwise hold the handler, blocked in a write,
// until the server shuts down. A write that times out fails the
// connection, which ends the request's context and so the stream. A
// stream opened with an API key ends, with an event revoked, once the key
// is found revoked (see keyWatcher); one given ended ends, with an event
// ended, when it says why.
func (r *resources) serveEvents(c *gin.Context, accept func(eventstore.Recorded) bool, cursor eventstore.Cursor,
	catchUp func(context.Context, eventstore.Cursor) ([]eventstore.Recorded, error), ended <-chan string) {
	ctx := c.Request.Context()
	revoked, unwatch := r.keys.Watch(c.GetString(keyIDKey))
	defer unwatch()
	l := r.Live.Listen(accept) // before catching up, so nothing falls between
	defer l.Close()

	w := c.Writer
	rc := http.NewResponseController(w)
	timeout := r.StreamWriteTimeout
	if timeout <= 0 {
		timeout = DefaultStreamWriteTimeout
	}
	// write sends text to the client at once, within the timeout.
	write := func(format string, args ...any) error {
		if err := rc.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
			return fmt.Errorf("set the write deadline: %w", err)
		}
		if _, err := fmt.Fprintf(w, format, args...); err != nil {
			return err
		}
		return rc.Flush()
	}
	// The connection outlives the stream when the stream ends by itself
	// (lagged, closing, HEAD): its next request must not inherit the
	// deadline.
	defer func() { _ = rc.SetWriteDeadline(time.Time{}) }()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if err := write(""); err != nil {
		logger(c).Warn("event stream could not start", "err", err)
		return
	}
	if isHead(c) {
		return
	}

	send := func(e eventstore.Recorded) error {
		if !cursor.IsZero() && !cursor.Less(e.Cursor()) {
			return nil
		}
		payload, err := json.Marshal(e)
		if err != nil {
			return err
		}
		cursor = e.Cursor()
		return write("id: %s\nevent: %s\ndata: %s\n\n", cursor, e.Type, payload)
	}
	const revokedEvent = "event: revoked\ndata: %q\n\n"
	const revokedData = "the API key of this stream was revoked"
	for catchUp != nil {
		select {
		case <-revoked:
			_ = write(revokedEvent, revokedData)
			return
		default:
		}
		events, err := catchUp(ctx, cursor)
		if err != nil {
			logger(c).Warn("event stream catch-up failed", "after", cursor.String(), "err", err)
			_ = write("event: error\ndata: %q\n\n", "reading the log failed; reconnect to resume")
			return
		}
		for _, e := range events {
			if err := send(e); err != nil {
				return
			}
		}
		if len(events) < 500 {
			break
		}
	}
	tick := time.NewTicker(keepAlive)
	defer tick.Stop()
	for {
		select {
		case e := <-l.C:
			// Live events travel sealed (see live.Relay): open them here,
			// with those queued behind, in one read of the data keys.
			events := append(make([]eventstore.Recorded, 0, 8), e)
			for more := true; more && len(events) < liveOpenBatch; {
				select {
				case e := <-l.C:
					events = append(events, e)
				default:
					more = false
				}
			}
			if err := r.Store.Open(ctx, events); err != nil {
				logger(c).Warn("event stream could not open live events", "err", err)
				_ = write("event: error\ndata: %q\n\n", "reading the log failed; reconnect to resume")
				return
			}
			for _, e := range events {
				if err := send(e); err != nil {
					return
				}
			}
		case <-l.Lagged:
			_ = write("event: lagged\ndata: %q\n\n", "this client fell behind; reconnect with Last-Event-ID to resume")
			return
		case <-tick.C:
			if err := write(": keep-alive\n\n"); err != nil {
				return
			}
		case <-revoked:
			_ = write(revokedEvent, revokedData)
			return
		case why := <-ended:
			_ = write("event: ended\ndata: %q\n\n", why)
			return
		case <-r.Stopping:
			_ = write("event: closing\ndata: %q\n\n", "this server is shutting down; reconnect with Last-Event-ID to resume")
			return
		case <-ctx.Done():
			return
		}
	}
}
