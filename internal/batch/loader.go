// Package batch shares one query among reads that arrive together.
//
// A Loader is group commit for reads: a read that finds a batch free goes
// at once, alone, as a plain query would (on its caller's goroutine, with
// its caller's context); reads that arrive while every batch is busy wait
// and go together in the next one, a single query for all their keys.
// Each read is answered by a query sent after it arrived, never by one
// already on its way, so a read never returns a state older than a write
// it follows: batching saves round trips and statements, not freshness.
package batch

import (
	"context"
	"fmt"
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

// NewLoader returns a Loader that runs up to batches fetches at once. A
// fetch for queued reads is bounded by timeout: it serves many callers, so
// it does not end with the first of them that leaves. A lone read's fetch
// ends with its caller's context, as a plain query does.
func NewLoader[K comparable, V any](fetch Fetch[K, V], batches int, timeout time.Duration) *Loader[K, V] {
	return &Loader[K, V]{fetch: fetch, batches: max(batches, 1), timeout: timeout}
}

// Load reads key, at once when a batch is free, else in the next batch;
// ok is false when the fetch found nothing for it. A caller whose ctx ends
// stops waiting at once.
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
	ctx := context.WithoutCancel(calls[0].ctx)
	vals, err := l.fetchBounded(ctx, keys)
	var errs map[K]error
	if err != nil && len(keys) > 1 {
		// One key can fail a whole fetch (an id the database refuses,
		// say): then each is read again alone, so that it fails only
		// the reads of its own.
		vals, errs = l.fetchEach(ctx, keys)
		err = nil
	}
	for _, c := range calls {
		c.val, c.ok = vals[c.key]
		c.err = err
		if e, failed := errs[c.key]; failed {
			c.err = e
		}
		if c.ctx.Err() != nil && !seen[c.key] {
			c.err = c.ctx.Err()
		}
		close(c.done)
	}
}

// fetchBounded is one fetch of keys, bounded by the Loader's timeout; a
// panic in it is an error of its callers, not the end of the process.
func (l *Loader[K, V]) fetchBounded(ctx context.Context, keys []K) (vals map[K]V, err error) {
	if len(keys) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("batch fetch panicked: %v", p)
		}
	}()
	return l.fetch(ctx, keys)
}

// fetchEach fetches each of keys alone, all at once.
func (l *Loader[K, V]) fetchEach(ctx context.Context, keys []K) (map[K]V, map[K]error) {
	vals, errs := make(map[K]V, len(keys)), make(map[K]error)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := l.fetchBounded(ctx, []K{k})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs[k] = err
			} else if x, ok := v[k]; ok {
				vals[k] = x
			}
		}()
	}
	wg.Wait()
	return vals, errs
}
