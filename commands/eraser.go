package commands

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
)

// Waiter waits until every projection includes the event at a cursor
// (projections.Waiter).
type Waiter interface {
	Wait(ctx context.Context, c eventstore.Cursor) error
}

// CacheForgetter deletes what caches hold of erased entities
// (cache.Forgetter): deleted, not only left unused, as the text must be
// kept nowhere.
type CacheForgetter interface {
	ForgetErased(ctx context.Context, e Erased) error
}

// ErrErasurePending is the error of an erasure whose data keys are
// deleted and whose event is in the log, but which the projections did
// not apply in time: their tables, and the caches filled from them, may
// hold copies of the text until they do. Erasing again finishes it.
var ErrErasurePending = errors.New("erasure pending")

// Eraser runs erasures to their end, the same for the API, the command
// line and the retention worker: the command (see Service.EraseUser),
// then, once the projections have applied it (so that their tables hold
// the text no more), the caches' copies. A message's erasure runs twice
// around that wait: a summary or a context snapshot taken from the query
// tables while they still held the text is found by the second run and
// erased too.
type Eraser struct {
	svc    *Service
	waiter Waiter
	caches CacheForgetter
	wait   time.Duration
}

// NewEraser returns an Eraser waiting up to wait for the projections
// (nil waiter: it does not wait) and then deleting from caches (nil: it
// has none).
func NewEraser(svc *Service, waiter Waiter, caches CacheForgetter, wait time.Duration) *Eraser {
	return &Eraser{svc: svc, waiter: waiter, caches: caches, wait: wait}
}

// EraseUser erases a user to the end (see Service.EraseUser).
func (e *Eraser) EraseUser(ctx context.Context, meta Meta, id string) (Result, error) {
	return e.run(ctx, func() (Result, error) { return e.svc.EraseUser(ctx, meta, id) }, false)
}

// EraseMessage erases a message to the end (see Service.EraseMessage).
func (e *Eraser) EraseMessage(ctx context.Context, meta Meta, id string) (Result, error) {
	return e.eraseMessage(ctx, meta, id, domain.ErasedOnRequest)
}

// EraseMemory erases a memory to the end (see Service.EraseMemory).
func (e *Eraser) EraseMemory(ctx context.Context, meta Meta, id string) (Result, error) {
	return e.run(ctx, func() (Result, error) { return e.svc.EraseMemory(ctx, meta, id) }, false)
}

func (e *Eraser) eraseMessage(ctx context.Context, meta Meta, id, reason string) (Result, error) {
	return e.run(ctx, func() (Result, error) { return e.svc.eraseMessage(ctx, meta, id, reason) }, true)
}

// run runs erase, waits for the projections, runs it again if twice, and
// deletes the caches' copies. The result is the first run's, with the
// cursor of the last event either run appended.
func (e *Eraser) run(ctx context.Context, erase func() (Result, error), twice bool) (Result, error) {
	res, err := erase()
	if err != nil {
		return res, err
	}
	settled := e.settle(ctx, res.Cursor)
	if settled == nil && twice {
		again, err := erase()
		if err != nil {
			return res, err
		}
		if !again.Cursor.IsZero() {
			res.Cursor = again.Cursor
			settled = e.settle(ctx, again.Cursor)
		}
	}
	// Forgotten also when the wait ran out: nothing is lost, and a copy
	// made meanwhile goes with the next erasure.
	if e.caches != nil && res.Erased != nil {
		if err := e.caches.ForgetErased(ctx, *res.Erased); err != nil {
			return res, fmt.Errorf("%w: the data is erased, but the cache could not be cleared (%w); erase again to finish", ErrErasurePending, err)
		}
	}
	return res, settled
}

// settle waits, up to e.wait, until the projections include the event at
// c, or, when the erasure appended nothing (it was recorded before), the
// log's last event.
func (e *Eraser) settle(ctx context.Context, c eventstore.Cursor) error {
	if e.waiter == nil {
		return nil
	}
	if c.IsZero() {
		last, err := e.svc.store.Last(ctx)
		if err != nil {
			return err
		}
		c = last
	}
	wctx, cancel := context.WithTimeout(ctx, e.wait)
	defer cancel()
	if err := e.waiter.Wait(wctx, c); err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return fmt.Errorf("%w: the data is erased, but the projections have not applied it after %s, so their tables may still hold copies; erase again to finish", ErrErasurePending, e.wait)
		}
		return err
	}
	return nil
}
