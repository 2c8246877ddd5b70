package projections

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// savepoint wraps each event, so a failing event leaves no partial write.
const savepoint = "arq_event"

// eventTx is the Tx handed to Projection.Apply for one event, inside the
// subscriber's transaction.
type eventTx struct {
	tx    pgx.Tx
	batch pgx.Batch
	// opened is true once the savepoint is set on the server. Reads set it
	// first; a write-only event sends it in the same round trip as its writes.
	opened bool
}

func (t *eventTx) Exec(sql string, args ...any) { t.batch.Queue(sql, args...) }

func (t *eventTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := t.open(ctx); err != nil {
		return nil, err
	}
	return t.tx.Query(ctx, sql, args...)
}

func (t *eventTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := t.open(ctx); err != nil {
		return errRow{err}
	}
	return t.tx.QueryRow(ctx, sql, args...)
}

func (t *eventTx) open(ctx context.Context) error {
	if t.opened {
		return nil
	}
	if _, err := t.tx.Exec(ctx, "SAVEPOINT "+savepoint); err != nil {
		return fmt.Errorf("set savepoint: %w", err)
	}
	t.opened = true
	return nil
}

// applyOnce applies e through p inside a savepoint and releases it, or rolls
// back to it and returns the error. A panic in p is an error like any other.
func applyOnce(ctx context.Context, tx pgx.Tx, p Projection, e eventOf) (err error) {
	t := &eventTx{tx: tx}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("projection %s panicked: %v", p.Name(), r)
		}
		if err != nil && t.opened {
			if _, rbErr := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT "+savepoint+"; RELEASE SAVEPOINT "+savepoint); rbErr != nil {
				err = errors.Join(err, fmt.Errorf("roll back to savepoint: %w", rbErr))
			}
		}
	}()
	if err := p.Apply(ctx, t, e.rec); err != nil {
		return err
	}
	if t.batch.Len() == 0 {
		if t.opened {
			_, err = tx.Exec(ctx, "RELEASE SAVEPOINT "+savepoint)
		}
		return err
	}
	writes := t.batch.QueuedQueries
	if !t.opened {
		t.batch.QueuedQueries = append([]*pgx.QueuedQuery{{SQL: "SAVEPOINT " + savepoint}}, writes...)
		// From here on a failure may have set the savepoint: roll back to it.
		t.opened = true
	}
	t.batch.Queue("RELEASE SAVEPOINT " + savepoint)
	if err := tx.SendBatch(ctx, &t.batch).Close(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }
