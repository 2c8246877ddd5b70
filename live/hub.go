// Package live delivers new events to Server-Sent-Events clients on every
// arq instance. One relay in the deployment (whoever holds its Postgres
// advisory lock) tails the log in commit-safe order and publishes each
// event to a Watermill topic on Redis Streams; every instance subscribes
// (fan-out) and hands the events to its Hub, which SSE handlers listen to.
// Without Redis the relay hands them to its own Hub: a single instance
// then still serves live updates.
package live

import (
	"sync"

	"github.com/arq-memory/arq/eventstore"
)

// Hub fans events out to the listeners of this process, in the relay's
// order. It remembers the last event it delivered, so that it can tell a
// duplicate (a new relay resuming from its saved cursor) from a gap (a
// page lost while Redis was unreachable, or trimmed from the topic
// before this instance read it).
type Hub struct {
	mu        sync.Mutex
	listeners map[*Listener]struct{}
	last      eventstore.Cursor
}

// NewHub returns a Hub with no listeners.
func NewHub() *Hub { return &Hub{listeners: map[*Listener]struct{}{}} }

// Listener receives the events its filter accepts. When it falls more
// than its buffer behind, it is dropped and Lagged is closed: the client
// reconnects and catches up from the log.
type Listener struct {
	C      chan eventstore.Recorded
	Lagged chan struct{}
	accept func(eventstore.Recorded) bool
	hub    *Hub
}

// Listen adds a listener for the events accept takes (nil: all).
func (h *Hub) Listen(accept func(eventstore.Recorded) bool) *Listener {
	l := &Listener{C: make(chan eventstore.Recorded, 256), Lagged: make(chan struct{}), accept: accept, hub: h}
	h.mu.Lock()
	h.listeners[l] = struct{}{}
	h.mu.Unlock()
	return l
}

// Close removes the listener.
func (l *Listener) Close() {
	l.hub.mu.Lock()
	delete(l.hub.listeners, l)
	l.hub.mu.Unlock()
}

// Deliver hands e, which the relay sent right after prev, to every
// listener that accepts it; it never blocks. An event at or before the
// last one delivered is a duplicate and is dropped. When prev is not the
// last event delivered, the events between were lost on their way here:
// every listener is dropped as lagged, so its client reconnects and
// catches up from the log, and e goes to those that listen from now on.
// A zero prev (not known) or a hub that delivered nothing yet checks no
// gap.
func (h *Hub) Deliver(prev eventstore.Cursor, e eventstore.Recorded) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.last.IsZero() {
		if !h.last.Less(e.Cursor()) {
			return
		}
		if !prev.IsZero() && prev != h.last {
			for l := range h.listeners {
				h.drop(l)
			}
		}
	}
	h.last = e.Cursor()
	for l := range h.listeners {
		if l.accept != nil && !l.accept(e) {
			continue
		}
		select {
		case l.C <- e:
		default:
			h.drop(l)
		}
	}
}

// drop removes a listener that missed events and tells it so.
func (h *Hub) drop(l *Listener) {
	delete(h.listeners, l)
	close(l.Lagged)
}
