package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"

	"github.com/arq-memory/arq/eventstore"
)

// eventOf pairs a decoded event with its message.
type eventOf struct {
	rec eventstore.Recorded
}

// runner is one projection's Watermill handler.
type runner struct {
	engine *Engine
	p      Projection
	sub    *wsql.Subscriber
	log    *slog.Logger
	// inBatch counts events applied in the current subscriber transaction.
	inBatch atomic.Int64
}

// handle applies one event. On success the message is acked and the
// subscriber moves the checkpoint in the same transaction. After the last
// failed attempt the projection stops at the event: the handler records why,
// stops its subscription, and never acks, so the event is not skipped.
func (r *runner) handle(msg *message.Message) error {
	ctx := msg.Context()
	tx, err := subscriberTx(ctx)
	if err != nil {
		return r.stop(ctx, eventstore.Recorded{EventID: msg.UUID}, err)
	}
	rec, err := decode(msg)
	if err != nil {
		return r.stop(ctx, rec, err)
	}
	delay := r.engine.cfg.RetryDelay
	for attempt := 1; ; attempt++ {
		tx.mu.Lock()
		err = applyOnce(ctx, tx.pgx, r.p, eventOf{rec})
		tx.mu.Unlock()
		if err == nil {
			r.inBatch.Add(1)
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("apply %s: %w", rec.EventID, ctx.Err())
		}
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

// stop records that the projection stopped at rec and closes its
// subscriber. Closing (rather than cancelling) makes the subscriber commit
// the events of the batch before rec and let go of rec unacked, so the
// checkpoint rests just before the failing event.
func (r *runner) stop(ctx context.Context, rec eventstore.Recorded, cause error) error {
	r.log.Error("projection stopped at failing event", "event_id", rec.EventID, "position", rec.Position, "event_type", rec.Type, "err", cause)
	if err := setStopped(context.WithoutCancel(ctx), r.engine.pool, r.p.Name(), rec, cause); err != nil {
		r.log.Error("record projection stop", "err", err)
	}
	go r.sub.Close()
	<-ctx.Done()
	return fmt.Errorf("projection %s stopped at event %s: %w", r.p.Name(), rec.EventID, cause)
}

// subscriberTx is the transaction in which the subscriber handed out the
// message; the projection writes in it so that its writes and the
// checkpoint commit together.
func subscriberTx(ctx context.Context) (*sharedTx, error) {
	tx, ok := wsql.TxFromContext(ctx)
	if !ok {
		return nil, errors.New("message carries no subscriber transaction")
	}
	t, ok := tx.(*sharedTx)
	if !ok {
		return nil, fmt.Errorf("subscriber transaction is a %T, want *projections.sharedTx", tx)
	}
	return t, nil
}

// timedBeginner begins the subscriber's transactions as sharedTx and
// measures how long each is open.
type timedBeginner struct {
	wsql.Beginner
	r *runner
}

func (b timedBeginner) BeginTx(ctx context.Context, opts *sql.TxOptions) (wsql.Tx, error) {
	tx, err := b.Beginner.BeginTx(ctx, opts)
	if err != nil {
		return tx, err
	}
	ptx, ok := tx.(*wsql.PgxTx)
	if !ok {
		return nil, fmt.Errorf("subscriber began a %T, want *sql.PgxTx", tx)
	}
	b.r.inBatch.Store(0)
	return &sharedTx{Tx: tx, pgx: ptx.Tx, r: b.r, began: time.Now()}, nil
}

// sharedTx is the subscriber's transaction, shared with the handler. A pgx
// connection serves one caller at a time, and the subscriber may run its
// checkpoint write or rollback while a cancelled handler is still finishing
// its own statement; mu keeps the two apart.
type sharedTx struct {
	wsql.Tx
	pgx   pgx.Tx
	mu    sync.Mutex
	r     *runner
	began time.Time
}

func (t *sharedTx) ExecContext(ctx context.Context, query string, args ...any) (wsql.Result, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.Tx.ExecContext(ctx, query, args...)
}

func (t *sharedTx) QueryContext(ctx context.Context, query string, args ...any) (wsql.Rows, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.Tx.QueryContext(ctx, query, args...)
}

func (t *sharedTx) Commit() error {
	t.mu.Lock()
	err := t.Tx.Commit()
	t.mu.Unlock()
	t.done()
	return err
}

func (t *sharedTx) Rollback() error {
	t.mu.Lock()
	err := t.Tx.Rollback()
	t.mu.Unlock()
	t.done()
	return err
}

func (t *sharedTx) done() {
	n := t.r.inBatch.Load()
	if n == 0 {
		return // an empty poll, not a batch
	}
	held := time.Since(t.began)
	t.r.engine.recordBatch(t.r.p.Name(), held, n)
	if held > t.r.engine.cfg.SlowBatch {
		t.r.log.Warn("slow projection batch held the log's snapshot", "held", held, "events", n)
	}
}
