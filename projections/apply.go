package projections

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/arq-memory/arq/eventstore"
)

// savepoint wraps each event in careful mode, so a failing event leaves no
// partial write.
const savepoint = "arq_event"

// eventTx is the Tx handed to Projection.Apply for one event, inside the
// subscriber's transaction. Writes go to a batch: the event's own (careful
// mode) or the transaction's pipeline (fast mode).
type eventTx struct {
	shared *sharedTx
	batch  *pgx.Batch
	// opened is true once the careful-mode savepoint is set on the server.
	opened  bool
	careful bool
	// own are the event's Coalescers in careful mode (in fast mode the
	// transaction's are used).
	own coalescers
}

// coalesced are the Coalescers of the unit of writes t belongs to.
func (t *eventTx) coalesced() *coalescers {
	if t.careful {
		return &t.own
	}
	return &t.shared.coalesced
}

func (t *eventTx) Exec(sql string, args ...any) {
	t.coalesced().flush(t.batch)
	t.batch.Queue(sql, args...)
}

func (t *eventTx) Coalesce(key string, create func() Coalescer) Coalescer {
	return t.coalesced().get(key, create)
}

func (t *eventTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := t.beforeRead(ctx); err != nil {
		return nil, err
	}
	return t.shared.conn.Query(ctx, sql, args...)
}

func (t *eventTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := t.beforeRead(ctx); err != nil {
		return errRow{err}
	}
	return t.shared.conn.QueryRow(ctx, sql, args...)
}

// beforeRead makes the server state what a read must see: in fast mode the
// writes of the events before this one, in careful mode this event's
// savepoint.
func (t *eventTx) beforeRead(ctx context.Context) error {
	if !t.careful {
		return t.shared.flush(ctx)
	}
	t.own.flush(t.batch) // sent with the event's writes, after the read
	if t.opened {
		return nil
	}
	if _, err := t.shared.conn.Exec(ctx, "SAVEPOINT "+savepoint); err != nil {
		return fmt.Errorf("set savepoint: %w", err)
	}
	t.opened = true
	return nil
}

// applyPipelined applies e in fast mode: its writes join the transaction's
// pipeline, sent with the checkpoint write (see sharedTx.flush).
func applyPipelined(ctx context.Context, tx *sharedTx, p Projection, e eventstore.Recorded) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("projection %s panicked: %v", p.Name(), r)
		}
	}()
	return p.Apply(ctx, &eventTx{shared: tx, batch: &tx.pending}, e)
}

// applyCareful applies e in careful mode: inside its own savepoint, sent
// with its writes in one round trip and released, or rolled back on error.
func applyCareful(ctx context.Context, tx *sharedTx, p Projection, e eventstore.Recorded) (err error) {
	t := &eventTx{shared: tx, batch: &pgx.Batch{}, careful: true}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("projection %s panicked: %v", p.Name(), r)
		}
		if err != nil && t.opened {
			if _, rbErr := tx.conn.Exec(ctx, "ROLLBACK TO SAVEPOINT "+savepoint+"; RELEASE SAVEPOINT "+savepoint); rbErr != nil {
				err = errors.Join(err, fmt.Errorf("roll back to savepoint: %w", rbErr))
			}
		}
	}()
	if err := p.Apply(ctx, t, e); err != nil {
		return err
	}
	t.own.flush(t.batch)
	if t.batch.Len() == 0 {
		if t.opened {
			_, err = tx.conn.Exec(ctx, "RELEASE SAVEPOINT "+savepoint)
		}
		return err
	}
	if !t.opened {
		t.batch.QueuedQueries = append([]*pgx.QueuedQuery{{SQL: "SAVEPOINT " + savepoint}}, t.batch.QueuedQueries...)
		// From here on a failure may have set the savepoint: roll back to it.
		t.opened = true
	}
	t.batch.Queue("RELEASE SAVEPOINT " + savepoint)
	if err := tx.send(ctx, t.batch).Close(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }
