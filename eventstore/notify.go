package eventstore

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/oklog/ulid/v2"
)

// notifyChannel is the Postgres channel on which appends are announced.
const notifyChannel = "arq_events"

// Notifier wakes readers that tail the log (projectors, `arq events
// --follow`) when it grows: in this process at once, and in other processes
// through Postgres LISTEN/NOTIFY.
//
// NOTIFY is not sent inside the appending transaction: a notifying commit
// takes a database-wide lock that would serialise all appends. Instead a
// background loop sends one NOTIFY for however many appends happened since
// the last one. Notifications only shorten waits; readers still poll now and
// then, so a lost notification delays and never loses an event.
type Notifier struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	send chan struct{}
	// self is the payload of this Notifier's NOTIFYs, so that it does not
	// wake its readers a second time for appends it announced at once.
	self string

	mu   sync.Mutex
	gen  uint64
	wake chan struct{}
	// anyAt is the last generation that woke readers of every type;
	// typeAt the last one that announced each event type (see Waits).
	anyAt  uint64
	typeAt map[string]uint64
	// unsent are the event types this process appended since its last
	// NOTIFY ("" when one of its appends wrote unknown types): the next
	// NOTIFY names them.
	unsent map[string]bool
	// recent are the event types of this process's latest appends, by
	// the cursor of each one's last event (see TypesAt).
	recent recentAppends
}

// Appended is what one append wrote, as the append hook announces it.
type Appended struct {
	// Last is the cursor of the append's last event.
	Last Cursor
	// Types are the event types it wrote; nil when not known (an import),
	// which wakes every reader.
	Types []string
}

// NewNotifier returns a Notifier that speaks through pool's database. Call
// Run to connect it to other processes.
func NewNotifier(pool *pgxpool.Pool, log *slog.Logger) *Notifier {
	return &Notifier{pool: pool, log: log, send: make(chan struct{}, 1), wake: make(chan struct{}), self: ulid.Make().String(),
		typeAt: map[string]uint64{}, unsent: map[string]bool{}, recent: newRecentAppends(recentAppendsKept)}
}

// Notify announces appends of this process. It never blocks. Readers that
// wait for some event types only (WaitFor) sleep on through appends of
// others.
func (n *Notifier) Notify(appends ...Appended) {
	var types []string
	known := len(appends) > 0
	for _, a := range appends {
		if a.Types == nil {
			known = false
		}
		types = append(types, a.Types...)
	}
	n.mu.Lock()
	for _, a := range appends {
		n.recent.add(a)
	}
	if known {
		for _, t := range types {
			n.unsent[t] = true
		}
		n.bumpLocked(types)
	} else {
		n.unsent[""] = true
		n.bumpLocked(nil)
	}
	n.mu.Unlock()
	n.queueSend()
}

// Poke wakes every reader, here and in other processes, as an append of
// unknown types would: a reader waiting for the projections to reach a
// position has them look at the log now, even those that sleep through
// appends of types they do not apply.
func (n *Notifier) Poke() { n.Notify() }

// TypesAt returns the event types of the append of this process whose
// last event is at c, while it is among the latest it remembers
// (recentAppendsKept); ok is false otherwise.
func (n *Notifier) TypesAt(c Cursor) (types []string, ok bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.recent.get(c)
}

func (n *Notifier) queueSend() {
	select {
	case n.send <- struct{}{}:
	default: // a NOTIFY is pending already and will cover this append
	}
}

// Generation counts the wake-ups seen so far. Take it before looking at the
// log, then Wait for a larger one, and no wake-up can fall in between.
func (n *Notifier) Generation() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.gen
}

// Wait returns when the generation passes seen, after timeout, or when ctx
// ends, and reports whether it was woken.
func (n *Notifier) Wait(ctx context.Context, seen uint64, timeout time.Duration) bool {
	return n.WaitFor(ctx, seen, nil, timeout)
}

// WaitFor is Wait for a reader of some event types only (nil: all): it
// is woken by a generation past seen that announced one of types, or
// whose types are not known, and sleeps through the others.
func (n *Notifier) WaitFor(ctx context.Context, seen uint64, types []string, timeout time.Duration) bool {
	var t *time.Timer
	for {
		n.mu.Lock()
		if n.wokenLocked(seen, types) {
			n.mu.Unlock()
			return true
		}
		wake := n.wake
		n.mu.Unlock()
		if t == nil {
			t = time.NewTimer(timeout)
			defer t.Stop()
		}
		select {
		case <-wake:
		case <-t.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// wokenLocked tells whether a generation past seen concerns a reader of
// types; n.mu is held.
func (n *Notifier) wokenLocked(seen uint64, types []string) bool {
	if types == nil || n.anyAt > seen {
		return n.gen > seen
	}
	for _, t := range types {
		if n.typeAt[t] > seen {
			return true
		}
	}
	return false
}

// bump starts a generation that wakes every reader.
func (n *Notifier) bump() {
	n.mu.Lock()
	n.bumpLocked(nil)
	n.mu.Unlock()
}

// bumpLocked starts a generation announcing types (nil: unknown, which
// wakes every reader); n.mu is held.
func (n *Notifier) bumpLocked(types []string) {
	n.gen++
	if types == nil {
		n.anyAt = n.gen
	}
	for _, t := range types {
		n.typeAt[t] = n.gen
	}
	close(n.wake)
	n.wake = make(chan struct{})
}

// Run listens for other processes' appends and announces this process's,
// until ctx ends. It reconnects after errors.
func (n *Notifier) Run(ctx context.Context) error {
	go n.sendLoop(ctx)
	for {
		err := n.listen(ctx)
		if ctx.Err() != nil {
			return nil
		}
		n.log.Warn("event notifications interrupted, reconnecting", "err", err)
		n.bump() // something may have been missed while disconnected
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func (n *Notifier) listen(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, n.pool.Config().ConnConfig.Copy())
	if err != nil {
		return fmt.Errorf("connect listener: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	for {
		nt, err := conn.WaitForNotification(ctx)
		if err != nil {
			return fmt.Errorf("wait for notification: %w", err)
		}
		from, types := parsePayload(nt.Payload)
		if from != n.self {
			n.mu.Lock()
			n.bumpLocked(types)
			n.mu.Unlock()
		}
	}
}

func (n *Notifier) sendLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.send:
		}
		n.mu.Lock()
		payload := n.payloadLocked()
		n.mu.Unlock()
		if _, err := n.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, notifyChannel, payload); err != nil && ctx.Err() == nil {
			n.log.Warn("announce appended events", "err", err)
		}
	}
}

// payloadLocked is the next NOTIFY's payload, and forgets the types it
// names; n.mu is held. It is the Notifier's mark, then, after a space,
// the event types appended since the last NOTIFY, separated by commas;
// without them (an append of unknown types among those) other
// processes wake every reader.
func (n *Notifier) payloadLocked() string {
	known := !n.unsent[""]
	types := make([]string, 0, len(n.unsent))
	for t := range n.unsent {
		types = append(types, t)
	}
	clear(n.unsent)
	if !known || len(types) == 0 {
		return n.self
	}
	slices.Sort(types)
	return n.self + " " + strings.Join(types, ",")
}

// parsePayload reads a NOTIFY's payload (see payloadLocked): whose it is
// and the event types it announces, nil when it names none.
func parsePayload(p string) (from string, types []string) {
	from, list, ok := strings.Cut(p, " ")
	if !ok || list == "" {
		return from, nil
	}
	return from, strings.Split(list, ",")
}
