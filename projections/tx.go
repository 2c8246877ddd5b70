package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/jackc/pgx/v5"

	"github.com/arq-memory/arq/eventstore"
)

// errBatchFailed marks a fast-mode batch whose pipelined writes failed; the
// subscriber rolls it back and the projection replays it in careful mode.
var errBatchFailed = errors.New("pipelined projection batch failed")

// txBeginner begins the subscriber's transactions as sharedTx.
type txBeginner struct {
	wsql.Beginner
	r *runner
}

func (b txBeginner) BeginTx(ctx context.Context, opts *sql.TxOptions) (wsql.Tx, error) {
	tx, err := b.Beginner.BeginTx(ctx, opts)
	if err != nil {
		return tx, err
	}
	ptx, ok := tx.(*wsql.PgxTx)
	if !ok {
		return nil, fmt.Errorf("subscriber began a %T, want *sql.PgxTx", tx)
	}
	b.r.inBatch.Store(0)
	b.r.scanned.Store(0)
	b.r.read.reset()
	return &sharedTx{Tx: tx, pgx: ptx.Tx, r: b.r, began: time.Now(), careful: b.r.careful.Load()}, nil
}

// sharedTx is the subscriber's transaction, shared with the handler.
//
// In fast mode the handler queues each event's writes in pending, and they
// reach the server in one round trip right before the subscriber's
// checkpoint write, which passes through ExecContext here. If they fail,
// the checkpoint write fails too, the subscriber rolls the batch back, and
// the projection switches to careful mode for the replay of that batch.
//
// A pgx connection serves one caller at a time, and the subscriber may run
// its checkpoint write or rollback while a cancelled handler is finishing a
// statement; mu keeps the two apart.
type sharedTx struct {
	wsql.Tx
	pgx     pgx.Tx
	mu      sync.Mutex
	pending pgx.Batch
	// once holds the keys of the ExecOnce writes queued in fast mode.
	once map[string]struct{}
	// coalesced gathers the Coalescers' writes in fast mode.
	coalesced coalescers
	failed    error
	careful   bool
	r         *runner
	began     time.Time
	// last is the cursor of the last event applied in this transaction.
	last eventstore.Cursor
}

// flush sends the pipelined writes. Once it failed, the transaction is
// doomed and flush keeps failing.
func (t *sharedTx) flush(ctx context.Context) error {
	if t.failed != nil {
		return t.failed
	}
	t.coalesced.flush(&t.pending)
	if t.pending.Len() == 0 {
		return nil
	}
	b := t.pending
	t.pending = pgx.Batch{}
	if err := t.pgx.SendBatch(ctx, &b).Close(); err != nil {
		t.fail(err)
		return t.failed
	}
	return nil
}

func (t *sharedTx) fail(err error) {
	if t.failed == nil {
		t.failed = fmt.Errorf("%w: %w", errBatchFailed, err)
		t.r.careful.Store(true)
		t.r.log.Info("projection batch failed, replaying it event by event", "err", err)
	}
}

func (t *sharedTx) ExecContext(ctx context.Context, query string, args ...any) (wsql.Result, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	return t.Tx.ExecContext(ctx, query, args...)
}

func (t *sharedTx) QueryContext(ctx context.Context, query string, args ...any) (wsql.Rows, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.Tx.QueryContext(ctx, query, args...)
}

func (t *sharedTx) Commit() error {
	t.mu.Lock()
	err := t.flush(context.Background())
	if err != nil {
		_ = t.Tx.Rollback()
	} else {
		err = t.Tx.Commit()
	}
	last := t.last
	t.mu.Unlock()
	if err == nil && t.r.inBatch.Load() > 0 {
		if t.careful {
			t.r.careful.Store(false) // the replayed batch went through
		}
		t.r.engine.committed.fire(t.r.p.Name(), last)
	}
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

// done records how long the transaction held the log's snapshot.
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
