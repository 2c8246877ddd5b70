package api

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/arq-memory/arq/internal/testwait"
)

// The watcher checks all the watched keys in one query a tick, ends the
// watches of a revoked key alone, and stops asking once nothing is
// watched.
func TestKeyWatcherSharesOneCheck(t *testing.T) {
	var mu sync.Mutex
	revoked := map[string]bool{}
	var calls [][]string
	w := &keyWatcher{every: time.Millisecond, log: slog.New(slog.NewTextHandler(io.Discard, nil)), watches: map[string]map[chan struct{}]struct{}{},
		live: func(_ context.Context, ids []string) ([]string, error) {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, slices.Sorted(slices.Values(ids)))
			return slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return revoked[id] }), nil
		}}
	a1, stopA1 := w.Watch("a")
	a2, stopA2 := w.Watch("a")
	b, stopB := w.Watch("b")
	defer stopB()
	if none, _ := w.Watch(""); none != nil {
		t.Fatal("a watch without a key")
	}
	testwait.Eventually(t, 5*time.Second, "a check of both keys", func() (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		return len(calls) > 0, nil
	})
	mu.Lock()
	if !slices.Equal(calls[0], []string{"a", "b"}) {
		t.Fatalf("checked %v, want [a b] in one query", calls[0])
	}
	revoked["a"] = true
	mu.Unlock()
	for _, ch := range []<-chan struct{}{a1, a2} {
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatal("a revoked key's watch did not end")
		}
	}
	stopA1()
	stopA2()
	select {
	case <-b:
		t.Fatal("a live key's watch ended")
	default:
	}
	stopB()
	testwait.Eventually(t, 5*time.Second, "the watcher stopped", func() (bool, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		return !w.running, nil
	})
}
