package queries

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/projections/readmodel"
)

// WindowReader builds a session's context window, encoded as the API
// serves it: from Postgres (NewWindows), or a cache in front of it
// (cache.Windows), which st keys: the generations of the session's
// messages and summaries and of its user's memories, read before the
// window is built, so that a cached window is never older than the
// tables it stands for.
type WindowReader interface {
	EncodedWindow(ctx context.Context, sessionID string, st readmodel.WindowState, req readmodel.WindowRequest) (EncodedWindow, error)
}

// EncodedWindow is a context window as the API serves it.
type EncodedWindow struct {
	// JSON is the body. It may be a cache's own memory, shared with
	// other readers: read it, never change it.
	JSON []byte
	// ExpiresAt is when the first of the window's memories expires, if
	// any does: the window must not be served past it.
	ExpiresAt *time.Time
	// Cache is "hit" or "miss" when a cache stands in front of the
	// reader ("uncached" for a window too large to keep), "" when none
	// does.
	Cache string
}

// Windows builds context windows from the query tables, uncached.
type Windows struct {
	reader *readmodel.Reader
	tokens domain.TokenCounter
	// buffers holds the buffers windows are encoded in: each window's JSON
	// is copied out at its exact length (a cache keeps it), and the
	// buffer, grown to the size of windows, serves the next.
	buffers sync.Pool
}

// NewWindows returns the WindowReader of r, counting tokens with tc.
func NewWindows(r *readmodel.Reader, tc domain.TokenCounter) *Windows {
	return &Windows{reader: r, tokens: tc}
}

// EncodedWindow builds the window req asks for and encodes it; st is for
// caches, and unused here.
func (w *Windows) EncodedWindow(ctx context.Context, sessionID string, _ readmodel.WindowState, req readmodel.WindowRequest) (EncodedWindow, error) {
	win, err := w.reader.Window(ctx, sessionID, req, w.tokens)
	if err != nil {
		return EncodedWindow{}, err
	}
	buf, _ := w.buffers.Get().(*[]byte)
	if buf == nil {
		buf = new([]byte)
	}
	enc, err := win.AppendJSON((*buf)[:0])
	body := bytes.Clone(enc)
	*buf = enc
	w.buffers.Put(buf)
	if err != nil {
		return EncodedWindow{}, fmt.Errorf("encode context window: %w", err)
	}
	out := EncodedWindow{JSON: body}
	for _, m := range win.Memories {
		if m.ExpiresAt != nil && (out.ExpiresAt == nil || m.ExpiresAt.Before(*out.ExpiresAt)) {
			out.ExpiresAt = m.ExpiresAt
		}
	}
	return out, nil
}

// WindowQuery is what a client asks of a context window: its budget, and
// the query memories are ranked against, with the client's embedding of
// it (nil when it sent none: the provider's is asked for).
type WindowQuery struct {
	Budget    domain.Budget
	Query     string
	Embedding []float64
}

// ContextWindow is a session's context window as the API serves it, from
// the cache when one holds it for the state the tables are in now.
func (s *Service) ContextWindow(ctx context.Context, sessionID string, q WindowQuery, now time.Time) (EncodedWindow, error) {
	req, st, err := s.request(ctx, sessionID, q, now)
	if err != nil {
		return EncodedWindow{}, err
	}
	return s.windows.EncodedWindow(ctx, sessionID, st, req)
}

// SnapshotWindow is a session's context window as the tables hold it now,
// never from a cache: a snapshot records it.
func (s *Service) SnapshotWindow(ctx context.Context, sessionID string, q WindowQuery, now time.Time) (readmodel.Window, error) {
	req, _, err := s.request(ctx, sessionID, q, now)
	if err != nil {
		return readmodel.Window{}, err
	}
	return s.reader.Window(ctx, sessionID, req, s.tokens)
}

// request validates a client's embedding, checks that the session exists
// (reading its window state), and only then asks the embeddings provider,
// if any, for the query's embedding: a request for an unknown session
// never waits for an embeddings endpoint.
func (s *Service) request(ctx context.Context, sessionID string, q WindowQuery, now time.Time) (readmodel.WindowRequest, readmodel.WindowState, error) {
	req := readmodel.WindowRequest{Budget: q.Budget, Query: q.Query, Now: now}
	var err error
	if q.Embedding != nil {
		if req.Embedding, err = domain.ParseEmbedding(q.Embedding, s.dim); err != nil {
			return req, readmodel.WindowState{}, err
		}
	}
	st, err := s.reader.WindowStateOf(ctx, sessionID)
	if err != nil {
		return req, st, err
	}
	if q.Embedding == nil {
		req.Embedding = s.EmbedQuery(ctx, q.Query)
	}
	req.UserID = st.UserID
	return req, st, nil
}
