package projections

import (
	"context"
	"fmt"
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

// known reports whether c is reached by what this process already knows.
func (w *Waiter) known(c eventstore.Cursor) bool {
	w.mu.Lock()
	floor := w.floor
	w.mu.Unlock()
	return !floor.Less(c) || w.signal.reached(w.names, c)
}

// Reached reports whether every projection has applied the log up to c,
// reading the checkpoints unless they were read less than a poll ago.
func (w *Waiter) Reached(ctx context.Context, c eventstore.Cursor) (bool, error) {
	if w.known(c) {
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
	return w.known(c), nil
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
	// With projections here, a new position is almost always reached by a
	// local commit: the database is first asked after poll.
	var nextRead time.Time
	if w.local {
		nextRead = time.Now().Add(w.poll)
	}
	for {
		seen := w.signal.generation()
		if w.known(c) {
			return nil
		}
		if !time.Now().Before(nextRead) {
			ok, err := w.Reached(ctx, c)
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
		w.signal.wait(ctx, seen, time.Until(nextRead))
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
