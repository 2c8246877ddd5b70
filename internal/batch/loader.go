// Package batch shares one query among reads that arrive together.
//
// A Loader is group commit for reads: a read that finds a batch free goes
// at once, alone, as a plain query would (on its caller's goroutine, with
// its caller's context); reads that arrive while every batch is busy wait and go
// together in the next one, a single query for all their keys. Each read
// is answered by a query sent after it arrived, never by one already on
// its way, so a read never returns a state older than a write it follows:
// batching saves round trips and statements, not freshness.
package batch

import (
	"context"
	"sync"
	"time"
)

// Fetch reads the values of keys (no key twice) in one query; a key it
// finds nothing for is left out of the map.
type Fetch[K comparable, V any] func(ctx context.Context, keys []K) (map[K]V, error)

// Loader batches reads of single keys into calls of a Fetch.
type Loader[K comparable, V any] struct {
	fetch   Fetch[K, V]
	batches int
	timeout time.Duration

	mu       sync.Mutex
	queue    []*call[K, V]
	inFlight int
}

type call[K comparable, V any] struct {
	ctx  context.Context
	key  K
	done chan struct{}
	val  V
	ok   bool
	err  error
}

// NewLoader returns a Loader that runs up to batches fetches at once, each
// bounded by timeout (a fetch serves many callers, so it does not end with
// the first of them that leaves).
func NewLoader[K comparable, V any](fetch Fetch[K, V], batches int, timeout time.Duration) *Loader[K, V] {
	return &Loader[K, V]{fetch: fetch, batches: max(batches, 1), timeout: timeout}
}

// Load reads key through the next batch; ok is false when the fetch found
// nothing for it. A caller whose ctx ends stops waiting at once.
func (l *Loader[K, V]) Load(ctx context.Context, key K) (val V, ok bool, err error) {
	l.mu.Lock()
	if l.inFlight < l.batches && len(l.queue) == 0 {
		// Alone: fetch here, with the caller's own context, as a plain
		// query would; reads that arrive meanwhile queue for the next.
		l.inFlight++
		l.mu.Unlock()
		defer l.finish()
		vals, err := l.fetch(ctx, []K{key})
		if err != nil {
			return val, false, err
		}
		val, ok = vals[key]
		return val, ok, nil
	}
	c := &call[K, V]{ctx: ctx, key: key, done: make(chan struct{})}
	l.queue = append(l.queue, c)
	l.mu.Unlock()
	l.dispatch()
	select {
	case <-c.done:
		return c.val, c.ok, c.err
	case <-ctx.Done():
		return val, false, ctx.Err()
	}
}

// dispatch starts a batch of everything queued when a batch is free. A
// batch that ends dispatches again, so nothing queued is left behind.
func (l *Loader[K, V]) dispatch() {
	l.mu.Lock()
	if l.inFlight >= l.batches || len(l.queue) == 0 {
		l.mu.Unlock()
		return
	}
	calls := l.queue
	l.queue = nil
	l.inFlight++
	l.mu.Unlock()
	go l.run(calls)
}

// finish frees a batch's slot and starts the next batch, if any waits.
func (l *Loader[K, V]) finish() {
	l.mu.Lock()
	l.inFlight--
	l.mu.Unlock()
	l.dispatch()
}

func (l *Loader[K, V]) run(calls []*call[K, V]) {
	defer l.finish()
	keys := make([]K, 0, len(calls))
	seen := make(map[K]bool, len(calls))
	for _, c := range calls {
		if c.ctx.Err() == nil && !seen[c.key] {
			seen[c.key] = true
			keys = append(keys, c.key)
		}
	}
	var vals map[K]V
	var err error
	if len(keys) > 0 {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(calls[0].ctx), l.timeout)
		vals, err = l.fetch(ctx, keys)
		cancel()
	}
	for _, c := range calls {
		c.val, c.ok = vals[c.key]
		c.err = err
		if c.ctx.Err() != nil && !seen[c.key] {
			c.err = c.ctx.Err()
		}
		close(c.done)
	}
}
