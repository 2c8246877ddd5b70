package projections

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/arq-memory/arq/eventstore"
)

// runner is one projection's Watermill handler.
type runner struct {
	engine *Engine
	p      Projection
	sub    *wsql.Subscriber
	log    *slog.Logger
	// inBatch counts events applied in the current subscriber transaction.
	inBatch atomic.Int64
	// wanted counts those of them whose appends wake the projection
	// (see wakeTypes): a batch of none only moved the checkpoint or
	// applied what it defers, and leaves the projector idle.
	wanted atomic.Int64
	// types are the event types whose appends wake the projection; nil:
	// all.
	types []string
	// scanned counts the events of the log the current transaction looked
	// at, when the projection is Selective (see logSource.scanned).
	scanned atomic.Int64
	// read holds the events of the batch in hand.
	read readEvents
	// careful is set after a fast-mode batch failed: the next batch is
	// applied event by event, each in its own savepoint with retries.
	careful atomic.Bool
	// transientDelay is the pause before the batch is read again after
	// the last of a run of passing errors (see transient); 0 after a
	// success. Only the projection's loop touches it.
	transientDelay time.Duration
}

// maxTransientDelay bounds the pause between tries of a batch that failed
// on passing errors.
const maxTransientDelay = 5 * time.Second

// transientWait returns the pause before the next try of a batch that
// failed on a passing error: RetryDelay first, doubling up to
// maxTransientDelay.
func (r *runner) transientWait() time.Duration {
	if r.transientDelay == 0 {
		r.transientDelay = r.engine.cfg.RetryDelay
	} else {
		r.transientDelay = min(2*r.transientDelay, maxTransientDelay)
	}
	return r.transientDelay
}

// consume applies the subscriber's messages in turn, until it closes.
func (r *runner) consume(msgs <-chan *message.Message) {
	for msg := range msgs {
		if err := r.handle(msg); err != nil {
			msg.Nack()
			continue
		}
		msg.Ack()
	}
}

// handle applies one event. On success the message is acked and the
// subscriber moves the checkpoint in the same transaction.
//
// In fast mode the event's writes are pipelined (see sharedTx); a failure
// dooms the batch, which is then replayed in careful mode. In careful mode
// each event is applied in its own savepoint, and after the last failed
// attempt the projection stops at the event: the handler records why,
// closes its subscription, and never acks, so the event is not skipped.
func (r *runner) handle(msg *message.Message) error {
	ctx := msg.Context()
	tx, err := subscriberTx(ctx)
	if err != nil {
		return r.stop(ctx, eventstore.Recorded{EventID: msg.UUID}, err)
	}
	rec, err := r.read.take(ctx, msg)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("open %s: %w", rec.EventID, ctx.Err())
		case transient(err):
			return r.unopened(ctx, tx, rec, err)
		}
		return r.stop(ctx, rec, err)
	}
	if r.types == nil || slices.Contains(r.types, rec.Type) {
		r.wanted.Add(1)
	}
	if !tx.careful {
		tx.mu.Lock()
		if tx.closed {
			tx.mu.Unlock()
			return fmt.Errorf("apply %s: %w", rec.EventID, errTxEnded)
		}
		if tx.failed == nil {
			if err := applyPipelined(ctx, tx, r.p, rec); err != nil {
				tx.fail(err)
			}
			tx.last = rec.Cursor()
		}
		tx.mu.Unlock()
		// Acked even when doomed: the checkpoint write then fails and the
		// subscriber rolls back the batch.
		r.inBatch.Add(1)
		return nil
	}
	delay := r.engine.cfg.RetryDelay
	for attempt := 1; ; attempt++ {
		tx.mu.Lock()
		if tx.closed {
			tx.mu.Unlock()
			return fmt.Errorf("apply %s: %w", rec.EventID, errTxEnded)
		}
		if tx.failed != nil {
			// Doomed by a passing error: acked, and rolled back with
			// the rest of the batch at its commit.
			tx.mu.Unlock()
			r.inBatch.Add(1)
			return nil
		}
		err = applyCareful(ctx, tx, r.p, rec)
		if err == nil {
			tx.last = rec.Cursor()
		}
		tx.mu.Unlock()
		if err == nil {
			r.transientDelay = 0
			r.inBatch.Add(1)
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("apply %s: %w", rec.EventID, ctx.Err())
		}
		if transient(err) {
			// The connection or the server failed, not the event: the
			// batch is doomed (its commit fails, the subscriber rolls it
			// back) and read again, event by event, after a pause that
			// grows while the failures last.
			wait := r.transientWait()
			r.log.Warn("event failed on a passing error; the batch is tried again", "event_id", rec.EventID, "position", rec.Position, "retry_in", wait, "err", err)
			tx.mu.Lock()
			tx.fail(err)
			tx.mu.Unlock()
			select {
			case <-time.After(wait):
			case <-ctx.Done():
			}
			r.inBatch.Add(1)
			return nil
		}
		r.transientDelay = 0
		if attempt >= r.engine.cfg.Attempts {
			return r.stop(ctx, rec, err)
		}
		r.log.Warn("event failed, retrying", "event_id", rec.EventID, "position", rec.Position, "attempt", attempt, "err", err)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
		delay *= 2
	}
}

// unopened handles an event whose batch could not be opened for a passing
// reason (the key store did not answer): like an event that failed on a
// passing error, it dooms the batch, which is read again, event by event,
// after a pause that grows while the failures last. The event is acked:
// the batch's commit fails, and the subscriber rolls it back.
func (r *runner) unopened(ctx context.Context, tx *sharedTx, rec eventstore.Recorded, err error) error {
	tx.mu.Lock()
	if tx.closed {
		tx.mu.Unlock()
		return fmt.Errorf("apply %s: %w", rec.EventID, errTxEnded)
	}
	first := tx.failed == nil
	tx.fail(err)
	tx.mu.Unlock()
	if first && tx.careful {
		wait := r.transientWait()
		r.log.Warn("events could not be opened; the batch is tried again", "event_id", rec.EventID, "position", rec.Position, "retry_in", wait, "err", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
	}
	r.inBatch.Add(1)
	return nil
}

// stop records that the projection stopped at rec and closes its
// subscriber. Closing (rather than cancelling) makes the subscriber commit
// the events of the batch before rec and let go of rec unacked, so the
// checkpoint rests just before the failing event.
func (r *runner) stop(ctx context.Context, rec eventstore.Recorded, cause error) error {
	r.log.Error("projection stopped at failing event", "event_id", rec.EventID, "position", rec.Position, "event_type", rec.Type, "err", cause)
	go r.sub.Close()
	// The stop is what /readyz and 'arq projections status' read: it is
	// recorded, also when the database refuses at first, until the
	// engine stops.
	for wait := r.engine.cfg.RetryDelay; ; wait = min(2*wait, maxTransientDelay) {
		err := setStopped(context.WithoutCancel(ctx), r.engine.pool, r.p.Name(), rec, cause)
		if err == nil {
			break
		}
		r.log.Error("record projection stop; trying again", "retry_in", wait, "err", err)
		select {
		case <-time.After(wait):
			continue
		case <-ctx.Done():
		}
		break
	}
	<-ctx.Done()
	return fmt.Errorf("projection %s stopped at event %s: %w", r.p.Name(), rec.EventID, cause)
}
