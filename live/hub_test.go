package live

import (
	"testing"

	"github.com/arq-memory/arq/eventstore"
)

func ev(tx uint64, pos int64) eventstore.Recorded {
	return eventstore.Recorded{TransactionID: tx, Position: pos, Type: "t"}
}

func cur(tx uint64, pos int64) eventstore.Cursor {
	return eventstore.Cursor{TransactionID: tx, Position: pos}
}

func lagged(l *Listener) bool {
	select {
	case <-l.Lagged:
		return true
	default:
		return false
	}
}

// The hub delivers the relay's chain in order, drops duplicates, and
// drops its listeners as lagged when a link of the chain is missing.
func TestHubTellsListenersOfAGap(t *testing.T) {
	h := NewHub()
	l := h.Listen(nil)
	h.Deliver(cur(1, 1), ev(2, 2)) // the first event a hub sees: no gap check
	h.Deliver(cur(2, 2), ev(3, 3))
	h.Deliver(cur(2, 2), ev(3, 3)) // a duplicate (a new relay resuming)
	h.Deliver(cur(1, 1), ev(2, 2)) // an older one
	if len(l.C) != 2 || lagged(l) {
		t.Fatalf("%d events delivered, lagged %v; want 2, not lagged", len(l.C), lagged(l))
	}
	h.Deliver(eventstore.Cursor{}, ev(4, 4)) // prev unknown: delivered
	if len(l.C) != 3 {
		t.Fatalf("%d events delivered, want 3", len(l.C))
	}

	later := h.Listen(nil)
	h.Deliver(cur(5, 5), ev(6, 6)) // (5, 5) never came
	if !lagged(l) || !lagged(later) {
		t.Fatal("a gap in the chain did not drop the listeners as lagged")
	}
	fresh := h.Listen(nil)
	h.Deliver(cur(6, 6), ev(7, 7))
	if len(fresh.C) != 1 || lagged(fresh) {
		t.Fatalf("a listener after the gap: %d events, lagged %v", len(fresh.C), lagged(fresh))
	}
}

// A listener that falls a buffer behind is dropped as lagged; the others
// go on.
func TestHubDropsASlowListener(t *testing.T) {
	h := NewHub()
	slow := h.Listen(nil)
	var prev eventstore.Cursor
	for i := range 300 {
		e := ev(uint64(i+1), int64(i+1))
		h.Deliver(prev, e)
		prev = e.Cursor()
	}
	if !lagged(slow) {
		t.Fatal("a listener 300 events behind was not dropped")
	}
	other := h.Listen(nil)
	h.Deliver(prev, ev(400, 400))
	if len(other.C) != 1 || lagged(other) {
		t.Fatalf("listener after: %d events, lagged %v", len(other.C), lagged(other))
	}
}
