package cache

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"time"

	"github.com/arq-memory/arq/projections/readmodel"
	"github.com/arq-memory/arq/queries"
)

// windowShape names the JSON shape of the windows kept (see entityShape).
const windowShape = "v2"

// windowTTL bounds how long a cached window lives: recency weights drift
// with time, and a memory in it leaves at its expiry time.
const windowTTL = time.Minute

// MaxWindowBytes is the largest encoded window kept in the cache: a
// larger one (a big budget over long messages) is served as built, never
// written to Redis or to this process's memory, so that a few clients
// asking for huge windows cannot fill either.
const MaxWindowBytes = 256 << 10

// Windows builds context windows through the cache (memory, then Redis):
// a window is kept under a key naming the state of the tables it was built
// from (the WindowState's generations), its budget and its query, so an
// entry is never stale, only unused once the tables move on.
type Windows struct {
	src    queries.WindowReader
	cache  *Cache
	prefix string
	// queryKey, when set, keys the hash that names a window's query in
	// its Redis key (see KeyedBy).
	queryKey []byte
}

// NewWindows reads src through c; namespace keeps apart the entries of
// deployments sharing one Redis (see Namespace).
func NewWindows(src queries.WindowReader, c *Cache, namespace string) *Windows {
	return &Windows{src: src, cache: c, prefix: windowPrefix(namespace)}
}

// KeyedBy names queries in keys by a hash keyed with key (HMAC-SHA-256),
// so that a key's name, which anyone reading Redis sees, does not let a
// guess of a person's query be checked against it. Every process of a
// deployment must use the same key (see vault.Vault.DerivedKey).
func (w *Windows) KeyedBy(key []byte) *Windows {
	w.queryKey = key
	return w
}

// EncodedWindow answers the window from the cache when it holds one for
// st, else builds it with the source and keeps it (until its first memory
// expires, at most windowTTL); a window over MaxWindowBytes is not kept,
// and answers "uncached".
func (w *Windows) EncodedWindow(ctx context.Context, sessionID string, st readmodel.WindowState, req readmodel.WindowRequest) (queries.EncodedWindow, error) {
	key := w.key(sessionID, st, req)
	if body, ok := w.cache.Get(ctx, key); ok {
		return queries.EncodedWindow{JSON: body, Cache: "hit"}, nil
	}
	win, err := w.src.EncodedWindow(ctx, sessionID, st, req)
	if err != nil {
		return queries.EncodedWindow{}, err
	}
	if len(win.JSON) > MaxWindowBytes {
		win.Cache = "uncached"
		return win, nil
	}
	ttl := windowTTL
	if win.ExpiresAt != nil {
		// From now, not from the request's start: building the window
		// took time, and its entry must be gone when the memory expires.
		ttl = min(ttl, time.Until(*win.ExpiresAt))
	}
	if ttl > 0 {
		w.cache.Set(ctx, key, win.JSON, ttl)
	}
	win.Cache = "miss"
	return win, nil
}

// key names the window's session, state, budget and query (see
// appendWindowKey).
func (w *Windows) key(sessionID string, st readmodel.WindowState, req readmodel.WindowRequest) string {
	var buf [192]byte
	b := append(buf[:0], w.prefix...)
	b = appendWindowKey(b, sessionID, [4]int64{st.Messages, st.Summaries, st.Memories, st.Rebuilds},
		req.Budget.MaxTokens, req.Budget.SummaryShare, req.Budget.MemoryShare, queryHash(w.queryKey, req))
	return string(b)
}

// queryHash names a window's query and embedding in its key, keyed with
// key when there is one.
func queryHash(key []byte, req readmodel.WindowRequest) []byte {
	h := sha256.New()
	if key != nil {
		h = hmac.New(sha256.New, key)
	}
	h.Write([]byte(req.Query))
	if req.Embedding != nil {
		h.Write([]byte{0})
		_ = binary.Write(h, binary.LittleEndian, req.Embedding)
	}
	return h.Sum(nil)[:12]
}
