package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/arq-memory/arq/eventstore"
)

// errBatchFailed marks a fast-mode batch whose pipelined writes failed; the
// subscriber rolls it back and the projection replays it in careful mode.
var errBatchFailed = errors.New("pipelined projection batch failed")

// txBeginner begins the subscriber's transactions as sharedTx.
type txBeginner struct {
	wsql.Beginner
	pool *pgxpool.Pool
	r    *runner
}

// beginSQL is the BEGIN statement for each isolation level the subscriber
// may ask for.
var beginSQL = map[sql.IsolationLevel]string{
	sql.LevelDefault:        "BEGIN",
	sql.LevelReadCommitted:  "BEGIN ISOLATION LEVEL READ COMMITTED",
	sql.LevelRepeatableRead: "BEGIN ISOLATION LEVEL REPEATABLE READ",
	sql.LevelSerializable:   "BEGIN ISOLATION LEVEL SERIALIZABLE",
}

func (b txBeginner) BeginTx(ctx context.Context, opts *sql.TxOptions) (wsql.Tx, error) {
	begin := beginSQL[sql.LevelDefault]
	if opts != nil {
		var ok bool
		if begin, ok = beginSQL[opts.Isolation]; !ok || opts.ReadOnly {
			return nil, fmt.Errorf("subscriber transaction: isolation %v, read only %v: not supported", opts.Isolation, opts.ReadOnly)
		}
	}
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("subscriber transaction: %w", err)
	}
	b.r.inBatch.Store(0)
	b.r.wanted.Store(0)
	b.r.scanned.Store(0)
	b.r.read.reset()
	return &sharedTx{conn: conn, begin: begin, r: b.r, began: time.Now(), careful: b.r.careful.Load()}, nil
}

// sharedTx is the subscriber's transaction, shared with the handler.
//
// It costs two round trips when all goes well: BEGIN travels with the
// subscriber's first query (the batch's SELECT), and the handler's
// pipelined writes, the subscriber's checkpoint write and COMMIT travel
// together at Commit. (A transaction begun apart, written, acked and
// committed apart took five, each one waited for by read-your-writes.)
//
// In fast mode the handler queues each event's writes in pending, and so
// does ExecContext, the checkpoint write; a read in between sends them
// first. If they fail at Commit, the transaction is rolled back, and the
// projection switches to careful mode for the replay of that batch.
//
// A pgx connection serves one caller at a time, and the subscriber may run
// its checkpoint write or rollback while a cancelled handler is finishing a
// statement; mu keeps the two apart.
type sharedTx struct {
	conn  *pgxpool.Conn
	begin string
	// begun is set once BEGIN has gone to the server; closed once the
	// connection went back to the pool.
	begun, closed bool
	mu            sync.Mutex
	pending       pgx.Batch
	// coalesced gathers the Coalescers' writes in fast mode.
	coalesced coalescers
	failed    error
	careful   bool
	r         *runner
	began     time.Time
	// last is the cursor of the last event applied in this transaction.
	last eventstore.Cursor
	// ackedPos is the position of the checkpoint write queued, if acked.
	ackedPos int64
	acked    bool
}

// send sends b, preceded by BEGIN if the transaction has not begun yet.
func (t *sharedTx) send(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if !t.begun {
		b.QueuedQueries = append([]*pgx.QueuedQuery{{SQL: t.begin}}, b.QueuedQueries...)
		t.begun = true
	}
	return t.conn.SendBatch(ctx, b)
}

// take hands over the queued writes, the Coalescers' gathered ones last,
// and starts a new queue.
func (t *sharedTx) take() pgx.Batch {
	t.coalesced.flush(&t.pending)
	b := t.pending
	t.pending = pgx.Batch{}
	return b
}

// flush sends the pipelined writes. Once it failed, the transaction is
// doomed and flush keeps failing.
func (t *sharedTx) flush(ctx context.Context) error {
	if t.failed != nil {
		return t.failed
	}
	b := t.take()
	if b.Len() == 0 {
		return nil
	}
	if err := t.send(ctx, &b).Close(); err != nil {
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

// ExecContext queues a write of the subscriber (its checkpoint write) with
// the handler's; they reach the server at Commit, or before the next read.
func (t *sharedTx) ExecContext(_ context.Context, query string, args ...any) (wsql.Result, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.failed != nil {
		return nil, t.failed
	}
	t.coalesced.flush(&t.pending) // the handler's writes come first
	t.pending.Queue(query, args...)
	if len(args) == 3 && strings.Contains(query, checkpointTable) {
		pos, ok := args[0].(int64)
		if !ok {
			// Loudly: without the position, no batch could be told
			// complete, and each would be rolled back.
			return nil, fmt.Errorf("checkpoint write with an offset of type %T: the engine cannot tell which events it covers", args[0])
		}
		t.ackedPos, t.acked = pos, true
	}
	return queuedResult{}, nil
}

// unacked tells whether the handler applied an event that the checkpoint
// write does not cover. The subscriber lets go of an event unacked when
// its context ends while the event is being handled (a shutdown), and
// then commits the events before it, or nothing; the event's writes,
// queued already, must not commit without it, or the next batch applies
// them again.
func (t *sharedTx) unacked() bool {
	return t.last != (eventstore.Cursor{}) && (!t.acked || t.ackedPos != t.last.Position)
}

// queuedResult is the result of a write that has not been sent yet.
type queuedResult struct{}

func (queuedResult) RowsAffected() (int64, error) {
	return 0, errors.New("rows affected: the write is sent at commit")
}

// QueryContext sends the queued writes and the query, with BEGIN in front
// if the transaction has not begun: the subscriber's SELECT of a batch
// costs one round trip.
func (t *sharedTx) QueryContext(ctx context.Context, query string, args ...any) (wsql.Rows, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.failed != nil {
		return nil, t.failed
	}
	b := t.take()
	writes := b.Len()
	b.Queue(query, args...)
	br := t.send(ctx, &b)
	for i := 0; i < b.Len()-1; i++ { // BEGIN, if sent now, and the writes
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			if writes > 0 {
				t.fail(err)
				return nil, t.failed
			}
			return nil, err
		}
	}
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		return nil, err
	}
	return &batchRows{rows: rows, br: br}, nil
}

// batchRows are the rows of a query sent in a batch. The connection is
// busy until the batch is closed, which happens as soon as the rows are
// read: the handler reads through the same connection.
type batchRows struct {
	rows pgx.Rows
	br   pgx.BatchResults
	err  error
	done bool
}

func (r *batchRows) Next() bool {
	if r.done {
		return false
	}
	if r.rows.Next() {
		return true
	}
	r.finish()
	return false
}

func (r *batchRows) Scan(dest ...any) error { return r.rows.Scan(dest...) }

func (r *batchRows) Close() error {
	r.finish()
	return r.err
}

func (r *batchRows) finish() {
	if r.done {
		return
	}
	r.done = true
	r.rows.Close()
	r.err = errors.Join(r.rows.Err(), r.br.Close())
}

// Commit sends the queued writes and COMMIT in one round trip. A batch
// whose checkpoint write does not cover every event applied is rolled
// back instead (see unacked): its events are read again.
func (t *sharedTx) Commit() error {
	t.mu.Lock()
	err := t.failed
	discard := err == nil && t.unacked()
	if err == nil && !discard {
		b := t.take()
		if t.begun || b.Len() > 0 {
			b.Queue("COMMIT").Exec(func(ct pgconn.CommandTag) error {
				if ct.String() != "COMMIT" {
					return pgx.ErrTxCommitRollback // the transaction had failed before
				}
				return nil
			})
			if err = t.send(context.Background(), &b).Close(); err != nil && t.r.inBatch.Load() > 0 && !errors.Is(err, pgx.ErrTxCommitRollback) {
				t.fail(err) // a write failed: the batch is replayed event by event
			}
		}
	}
	if (err != nil || discard) && t.begun {
		// After a failure in a pipeline the transaction is still open,
		// aborted: end it.
		_, _ = t.conn.Exec(context.Background(), "ROLLBACK")
	}
	last := t.last
	t.release()
	t.mu.Unlock()
	if discard {
		t.r.log.Info("projection batch rolled back: an applied event was let go unacked; it is read again")
		t.done()
		return nil
	}
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
	var err error
	if t.begun && !t.closed {
		_, err = t.conn.Exec(context.Background(), "ROLLBACK")
	}
	t.release()
	t.mu.Unlock()
	t.done()
	return err
}

// errTxEnded is what a handler meets when the subscriber ended the
// batch's transaction before the handler got to its event (the
// subscriber stopped waiting for it, e.g. on shutdown): the connection
// is back in the pool and must not be used; the event is nacked, and the
// next batch reads it again.
var errTxEnded = errors.New("the batch's transaction has ended")

// release gives the connection back to the pool, once. A connection left
// inside a transaction by a failure is closed by the pool, not reused.
func (t *sharedTx) release() {
	if !t.closed {
		t.closed = true
		t.conn.Release()
	}
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
