package projections

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/singleflight"

	"github.com/arq-memory/arq/eventstore"
)

// Signal counts commits of projection batches in this process and keeps
// where each projection stands, so a waiter can sleep until the next commit
// and tell from memory whether its position is reached, instead of asking
// the database after every batch.
type Signal struct {
	mu   sync.Mutex
	gen  uint64
	wake chan struct{}
	at   map[string]eventstore.Cursor
}

// NewSignal returns a Signal no one has fired.
func NewSignal() *Signal {
	return &Signal{wake: make(chan struct{}), at: map[string]eventstore.Cursor{}}
}

// fire records that projection name committed the log up to c.
func (s *Signal) fire(name string, c eventstore.Cursor) {
	s.mu.Lock()
	if s.at[name].Less(c) {
		s.at[name] = c
	}
	s.bumpLocked()
	s.mu.Unlock()
}

// bumpLocked starts a new generation and wakes its waiters; s.mu is held.
func (s *Signal) bumpLocked() {
	s.gen++
	close(s.wake)
	s.wake = make(chan struct{})
}

// reached reports whether every named projection committed c in this
// process. False may be stale (another process applied it); true is final.
func (s *Signal) reached(names []string, c eventstore.Cursor) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range names {
		if s.at[n].Less(c) {
			return false
		}
	}
	return true
}

// wait returns when the signal fires after seen, or after d.
func (s *Signal) wait(ctx context.Context, seen uint64, d time.Duration) {
	s.mu.Lock()
	if s.gen > seen {
		s.mu.Unlock()
		return
	}
	wake := s.wake
	s.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-wake:
	case <-t.C:
	case <-ctx.Done():
	}
}

// wakeAll wakes every waiter without news of a projection's commit: the
// Waiter learned something from the database.
func (s *Signal) wakeAll() {
	s.mu.Lock()
	s.bumpLocked()
	s.mu.Unlock()
}

func (s *Signal) generation() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen
}

// Waiter tells when every projection has applied the log up to a cursor:
// a command answers once the query tables include its change, and a read
// sent with a minimum position waits for it.
//
// With the projections in this process it learns their progress from the
// engine's Signal and asks the database only when a wait runs longer than
// poll (another process may be the one applying). The lowest position all
// projections were seen at in the database is remembered, so reads of old
// positions cost nothing. However many requests wait at once, the
// checkpoints are read by one of them at a time and at most once a poll,
// and the others learn the result: under load every waiter would
// otherwise read them every poll.
type Waiter struct {
	db     *pgxpool.Pool
	names  []string
	signal *Signal
	local  bool
	// poll is how often the checkpoints are read while waiting.
	poll  time.Duration
	reads singleflight.Group

	// appends, when set (Knowing), tells which event types an append of
	// this process wrote, and wakes the projectors; types are the event
	// types each named projection applies (nil: all).
	appends *eventstore.Notifier
	types   map[string][]string

	mu       sync.Mutex
	floor    eventstore.Cursor
	lastRead time.Time
}

// NewWaiter waits on the checkpoints of the named projections. signal is
// the engine's in this process (Engine.Committed), or nil when projections
// run elsewhere.
func NewWaiter(db *pgxpool.Pool, names []string, signal *Signal) *Waiter {
	local := signal != nil
	if signal == nil {
		signal = NewSignal()
	}
	return &Waiter{db: db, names: names, signal: signal, local: local, poll: 5 * time.Millisecond}
}

// Knowing returns w told the projections behind its names (ps, the
// binary's, wherever they run) and this process's Notifier, so that
// WaitAppended waits only for the projections that apply what an append
// wrote, and Wait wakes projectors that sleep through appends of types
// they do not apply (see waker).
func (w *Waiter) Knowing(ps []Projection, n *eventstore.Notifier) *Waiter {
	w.appends, w.types = n, map[string][]string{}
	for _, p := range ps {
		w.types[p.Name()] = wakeTypes(p)
	}
	return w
}

// appliers are the names of the projections a command that appended
// events of types waits for: those that apply one of them and do not
// defer it (see Deferred); all when types is nil.
func (w *Waiter) appliers(types []string) []string {
	if types == nil || w.types == nil {
		return w.names
	}
	var out []string
	for _, name := range w.names {
		applies, ok := w.types[name]
		if !ok || applies == nil || slices.ContainsFunc(types, func(t string) bool { return slices.Contains(applies, t) }) {
			out = append(out, name)
		}
	}
	return out
}

// known reports whether the named projections reached c by what this
// process already knows.
func (w *Waiter) known(c eventstore.Cursor, names []string) bool {
	w.mu.Lock()
	floor := w.floor
	w.mu.Unlock()
	return !floor.Less(c) || w.signal.reached(names, c)
}

// reached reports whether the named projections have applied the log up
// to c, reading the checkpoints unless they were read less than a poll
// ago.
func (w *Waiter) reached(ctx context.Context, c eventstore.Cursor, names []string) (bool, error) {
	if w.known(c, names) {
		return true, nil
	}
	w.mu.Lock()
	fresh := time.Since(w.lastRead) < w.poll
	w.mu.Unlock()
	if !fresh {
		// One read for all who ask meanwhile, on a context none of them
		// can cancel for the others.
		_, err, _ := w.reads.Do("", func() (any, error) {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			return nil, w.readFloor(rctx)
		})
		if err != nil {
			return false, err
		}
	}
	return w.known(c, names), nil
}

// readFloor reads the checkpoints and raises the floor to the lowest of
// them, waking the other waiters of this process if it rose.
func (w *Waiter) readFloor(ctx context.Context) error {
	w.mu.Lock()
	w.lastRead = time.Now()
	w.mu.Unlock()
	rows, err := w.db.Query(ctx, `SELECT last_processed_transaction_id::text::bigint, offset_acked FROM `+checkpointTable+`
		WHERE consumer_group = ANY ($1)`, w.names)
	if err != nil {
		return fmt.Errorf("read projection checkpoints: %w", err)
	}
	var floor eventstore.Cursor
	n := 0
	for rows.Next() {
		var at eventstore.Cursor
		if err := rows.Scan(&at.TransactionID, &at.Position); err != nil {
			rows.Close()
			return fmt.Errorf("read projection checkpoints: %w", err)
		}
		if n == 0 || at.Less(floor) {
			floor = at
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read projection checkpoints: %w", err)
	}
	if n < len(w.names) {
		return nil // a projection has no checkpoint yet
	}
	w.mu.Lock()
	rose := w.floor.Less(floor)
	if rose {
		w.floor = floor
	}
	w.mu.Unlock()
	if rose {
		w.signal.wakeAll()
	}
	return nil
}

// Wait returns nil once every projection has applied the log up to c, or
// ctx's error when ctx ends first (the caller bounds the wait with it).
func (w *Waiter) Wait(ctx context.Context, c eventstore.Cursor) error {
	if c.IsZero() {
		return nil
	}
	return w.wait(ctx, c, w.names, w.appends != nil)
}

// WaitFor is Wait for the named projections alone, waking those that
// sleep through appends of types they do not apply: for a reader that
// needs their tables current, not every table.
func (w *Waiter) WaitFor(ctx context.Context, c eventstore.Cursor, names []string) error {
	if c.IsZero() {
		return nil
	}
	return w.wait(ctx, c, names, w.appends != nil)
}

// WaitAppended is Wait for a command's own append, whose last event is at
// c: it waits only for the projections that apply an event type the
// append wrote, when this process made the append and Knowing told it
// which those are; for every projection otherwise. Once it returns, the
// query tables hold the append's effects (read-your-writes); tables no
// event of it changes may not have moved past older events of other
// writers yet, which a read asks for with a minimum position (Wait).
func (w *Waiter) WaitAppended(ctx context.Context, c eventstore.Cursor) error {
	if c.IsZero() {
		return nil
	}
	if w.appends == nil {
		return w.Wait(ctx, c)
	}
	types, ok := w.appends.TypesAt(c)
	if !ok {
		return w.Wait(ctx, c)
	}
	names := w.appliers(types)
	if len(names) == 0 {
		return nil
	}
	return w.wait(ctx, c, names, false)
}

// wait returns once the named projections have applied the log up to c.
// With poke, it pokes the projectors (Notifier.Poke) whenever it finds
// them short of c, at most once a poll: projections that sleep through
// appends of types they do not wake for move their checkpoints now, not
// at their next safety poll, also over an event that was still hidden
// when the previous poke came (see waker.pending).
func (w *Waiter) wait(ctx context.Context, c eventstore.Cursor, names []string, poke bool) error {
	// With projections here, a new position is almost always reached by a
	// local commit: the database is first asked after poll.
	var nextRead, nextPoke time.Time
	if w.local {
		nextRead = time.Now().Add(w.poll)
	}
	for {
		seen := w.signal.generation()
		if w.known(c, names) {
			return nil
		}
		if poke && !time.Now().Before(nextPoke) {
			w.appends.Poke()
			nextPoke = time.Now().Add(w.poll)
		}
		if !time.Now().Before(nextRead) {
			ok, err := w.reached(ctx, c, names)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return err
			}
			if ok {
				return nil
			}
			nextRead = time.Now().Add(w.poll)
		}
		until := nextRead
		if poke && nextPoke.Before(until) {
			until = nextPoke
		}
		w.signal.wait(ctx, seen, time.Until(until))
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// Querier is what CheckpointFloor reads through: a pool, or a transaction
// whose snapshot the caller shares with reads of the tables.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// CheckpointFloor is the lowest checkpoint of the named projections: each
// has applied the log up to it, and their tables, read in the same
// snapshot, hold every event up to it. ok is false when one of them has
// no checkpoint yet.
func CheckpointFloor(ctx context.Context, q Querier, names []string) (floor eventstore.Cursor, ok bool, err error) {
	rows, err := q.Query(ctx, `SELECT last_processed_transaction_id::text::bigint, coalesce(offset_acked, 0) FROM `+checkpointTable+`
		WHERE consumer_group = ANY ($1)`, names)
	if err != nil {
		return eventstore.Start, false, fmt.Errorf("read projection checkpoints: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var at eventstore.Cursor
		if err := rows.Scan(&at.TransactionID, &at.Position); err != nil {
			return eventstore.Start, false, fmt.Errorf("read projection checkpoints: %w", err)
		}
		if n == 0 || at.Less(floor) {
			floor = at
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return eventstore.Start, false, fmt.Errorf("read projection checkpoints: %w", err)
	}
	if n < len(names) {
		return eventstore.Start, false, nil
	}
	return floor, true, nil
}
