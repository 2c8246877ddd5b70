package projections

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/arq-memory/arq/eventstore"
)

// Signal counts commits of projection batches in this process, so a waiter
// can sleep until the next one instead of polling.
type Signal struct {
	mu   sync.Mutex
	gen  uint64
	wake chan struct{}
}

// NewSignal returns a Signal no one has fired.
func NewSignal() *Signal { return &Signal{wake: make(chan struct{})} }

func (s *Signal) fire() {
	s.mu.Lock()
	s.gen++
	close(s.wake)
	s.wake = make(chan struct{})
	s.mu.Unlock()
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

func (s *Signal) generation() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen
}

// Waiter tells when every projection has applied the log up to a cursor:
// a command answers once the query tables include its change, and a read
// sent with a minimum position waits for it.
type Waiter struct {
	db     *pgxpool.Pool
	names  []string
	signal *Signal
	// poll is how often the checkpoints are read when no commit signal
	// arrives (projections running in another process).
	poll time.Duration
}

// NewWaiter waits on the checkpoints of the named projections. signal is
// the engine's in this process (Engine.Committed), or nil when projections
// run elsewhere.
func NewWaiter(db *pgxpool.Pool, names []string, signal *Signal) *Waiter {
	if signal == nil {
		signal = NewSignal()
	}
	return &Waiter{db: db, names: names, signal: signal, poll: 5 * time.Millisecond}
}

// Reached reports whether every projection has applied the log up to c.
func (w *Waiter) Reached(ctx context.Context, c eventstore.Cursor) (bool, error) {
	var n int
	err := w.db.QueryRow(ctx, `SELECT count(*) FROM `+checkpointTable+`
		WHERE consumer_group = ANY ($1)
		  AND (last_processed_transaction_id, offset_acked) >= ($2::xid8, $3::bigint)`,
		w.names, c.TransactionID, c.Position).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("read projection checkpoints: %w", err)
	}
	return n == len(w.names), nil
}

// Wait returns nil once every projection has applied the log up to c, or
// ctx's error when ctx ends first (the caller bounds the wait with it).
func (w *Waiter) Wait(ctx context.Context, c eventstore.Cursor) error {
	if c.IsZero() {
		return nil
	}
	for {
		seen := w.signal.generation()
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
		w.signal.wait(ctx, seen, w.poll)
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}
