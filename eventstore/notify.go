package eventstore

import (
	"context"
	"fmt"
	"log/slog"
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
}

// NewNotifier returns a Notifier that speaks through pool's database. Call
// Run to connect it to other processes.
func NewNotifier(pool *pgxpool.Pool, log *slog.Logger) *Notifier {
	return &Notifier{pool: pool, log: log, send: make(chan struct{}, 1), wake: make(chan struct{}), self: ulid.Make().String()}
}

// Notify announces that the log grew. It never blocks.
func (n *Notifier) Notify() {
	n.bump()
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
	n.mu.Lock()
	if n.gen > seen {
		n.mu.Unlock()
		return true
	}
	wake := n.wake
	n.mu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-wake:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

func (n *Notifier) bump() {
	n.mu.Lock()
	n.gen++
	close(n.wake)
	n.wake = make(chan struct{})
	n.mu.Unlock()
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
		if nt.Payload != n.self {
			n.bump()
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
		if _, err := n.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, notifyChannel, n.self); err != nil && ctx.Err() == nil {
			n.log.Warn("announce appended events", "err", err)
		}
	}
}
