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

// Hub fans events out to the listeners of this process.
type Hub struct {
	mu        sync.Mutex
	listeners map[*Listener]struct{}
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

// Deliver hands an event to every listener that accepts it; it never
// blocks.
func (h *Hub) Deliver(e eventstore.Recorded) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for l := range h.listeners {
		if l.accept != nil && !l.accept(e) {
			continue
		}
		select {
		case l.C <- e:
		default:
			delete(h.listeners, l)
			close(l.Lagged)
		}
	}
}
