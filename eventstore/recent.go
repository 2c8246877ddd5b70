package eventstore

// recentAppendsKept is how many of its latest appends a Notifier
// remembers the event types of: more than a process's commands wait on
// at once by far.
const recentAppendsKept = 4096

// recentAppends remembers the event types of the latest appends, by the
// cursor of each one's last event, forgetting the oldest past its size.
type recentAppends struct {
	byLast map[Cursor][]string
	ring   []Cursor
	next   int
}

func newRecentAppends(size int) recentAppends {
	return recentAppends{byLast: make(map[Cursor][]string, size), ring: make([]Cursor, size)}
}

func (r *recentAppends) add(a Appended) {
	if a.Last.IsZero() {
		return
	}
	if old := r.ring[r.next]; !old.IsZero() {
		delete(r.byLast, old)
	}
	r.ring[r.next] = a.Last
	r.next = (r.next + 1) % len(r.ring)
	r.byLast[a.Last] = a.Types
}

func (r *recentAppends) get(c Cursor) ([]string, bool) {
	types, ok := r.byLast[c]
	return types, ok && types != nil
}
