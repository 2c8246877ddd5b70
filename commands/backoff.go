package commands

import "time"

// maxBackoff bounds how long a background worker leaves an item it failed
// on before trying it again.
const maxBackoff = 5 * time.Minute

// backoffs remembers the items (sessions, messages) a background worker
// failed on and when each may be tried again: two intervals after its
// first failure, doubling with each next one up to maxBackoff.
type backoffs struct {
	interval time.Duration
	items    map[string]backoff
}

type backoff struct {
	next  time.Time
	delay time.Duration
}

func newBackoffs(interval time.Duration) backoffs {
	return backoffs{interval: interval, items: map[string]backoff{}}
}

// fail records a failure of id and returns how long it now waits.
func (b backoffs) fail(id string) time.Duration { return b.failAt(id, time.Now()) }

// failAt records a failure of id at now, by the clock of the worker that
// failed (the expirer's is the service's), and returns how long id now
// waits.
func (b backoffs) failAt(id string, now time.Time) time.Duration {
	f := b.items[id]
	f.delay = min(max(2*f.delay, 2*b.interval), maxBackoff)
	f.next = now.Add(f.delay)
	b.items[id] = f
	return f.delay
}

// forget drops id: it went through.
func (b backoffs) forget(id string) { delete(b.items, id) }

// waiting tells whether id waits out a failure at now.
func (b backoffs) waiting(id string, now time.Time) bool {
	f, ok := b.items[id]
	return ok && now.Before(f.next)
}

// split returns the items waiting out a failure at now and those past
// their wait. An item not tried again for maxBackoff past its wait is no
// longer due (done elsewhere, or gone) and is forgotten.
func (b backoffs) split(now time.Time) (waiting, failed []string) {
	for id, f := range b.items {
		switch {
		case now.Before(f.next):
			waiting = append(waiting, id)
		case now.After(f.next.Add(maxBackoff)):
			delete(b.items, id)
		default:
			failed = append(failed, id)
		}
	}
	return waiting, failed
}
