package api

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// keyCheckEvery is how often the open event streams' keys are checked;
// a revoked key's streams end within it (and one query's time).
const keyCheckEvery = 500 * time.Millisecond

// keyCheckTimeout bounds one check; the ticks it outlasts are dropped.
const keyCheckTimeout = 5 * time.Second

// keyWatcher tells the open event streams of a process when the key each
// was opened with is revoked, in this process or another: while any
// stream watches, it asks the database every keyCheckEvery which of the
// watched keys are still live, in one query for all of them. It runs only
// while streams watch.
type keyWatcher struct {
	live  func(ctx context.Context, ids []string) ([]string, error)
	every time.Duration
	log   *slog.Logger

	mu      sync.Mutex
	watches map[string]map[chan struct{}]struct{} // by key id
	running bool
}

func newKeyWatcher(store KeyStore, every time.Duration, log *slog.Logger) *keyWatcher {
	w := &keyWatcher{every: every, log: log, watches: map[string]map[chan struct{}]struct{}{}}
	if store != nil {
		w.live = store.Live
	}
	return w
}

// Watch watches the key id: revoked is closed once the key is found
// revoked. stop ends the watch; call it when the stream ends. With no
// store (or no key id), revoked is nil and never fires.
func (w *keyWatcher) Watch(id string) (revoked <-chan struct{}, stop func()) {
	if w == nil || w.live == nil || id == "" {
		return nil, func() {}
	}
	ch := make(chan struct{})
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.watches[id] == nil {
		w.watches[id] = map[chan struct{}]struct{}{}
	}
	w.watches[id][ch] = struct{}{}
	if !w.running {
		w.running = true
		go w.run()
	}
	return ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if set := w.watches[id]; set != nil {
			delete(set, ch)
			if len(set) == 0 {
				delete(w.watches, id)
			}
		}
	}
}

// run checks the watched keys every w.every until none is watched.
func (w *keyWatcher) run() {
	tick := time.NewTicker(w.every)
	defer tick.Stop()
	for range tick.C {
		w.mu.Lock()
		if len(w.watches) == 0 {
			w.running = false
			w.mu.Unlock()
			return
		}
		ids := make([]string, 0, len(w.watches))
		for id := range w.watches {
			ids = append(ids, id)
		}
		w.mu.Unlock()
		w.check(ids)
	}
}

// check ends the watches of those of ids no longer live. A failed check
// leaves every stream open (the database may be down for a moment; the
// next check decides) and is logged.
func (w *keyWatcher) check(ids []string) {
	ctx, cancel := context.WithTimeout(context.Background(), keyCheckTimeout)
	defer cancel()
	live, err := w.live(ctx, ids)
	if err != nil {
		w.log.Warn("event streams: checking their keys failed", "keys", len(ids), "err", err)
		return
	}
	alive := make(map[string]bool, len(live))
	for _, id := range live {
		alive[id] = true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, id := range ids {
		if alive[id] {
			continue
		}
		for ch := range w.watches[id] {
			close(ch)
		}
		delete(w.watches, id)
	}
}
