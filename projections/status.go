package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/arq-memory/arq/eventstore"
)

// States of a projection.
const (
	StateRunning    = "running"
	StateStopped    = "stopped"
	StateRebuilding = "rebuilding"
)

// Status is what operators see of a projection.
type Status struct {
	Name string `json:"name"`
	// State is running, stopped (on a failing event) or rebuilding (a
	// copy of its tables is being built; see Statuses).
	State string `json:"state"`
	// Checkpoint is the cursor of the last event applied.
	Checkpoint eventstore.Cursor `json:"-"`
	// Position is the log position of the last event applied.
	Position int64 `json:"position"`
	// Behind counts the events in the log after the checkpoint.
	Behind         int64     `json:"behind"`
	LastError      string    `json:"last_error,omitempty"`
	FailedEventID  string    `json:"failed_event_id,omitempty"`
	FailedPosition int64     `json:"failed_position,omitempty"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// Statuses reads the status of the named projections, in the order given.
// A projection that never ran reads as running at the start of the log; a
// running one whose copy is being built reads as rebuilding (the live
// tables serve until the copy replaces them). Behind is counted, which
// reads the log after each checkpoint: for a loop, use States.
func Statuses(ctx context.Context, db *pgxpool.Pool, names []string) ([]Status, error) {
	st, _, err := Overview(ctx, db, names)
	return st, err
}

// Overview is Statuses and, from the same read, the copies of the named
// projections' tables that exist now (see Copies).
func Overview(ctx context.Context, db *pgxpool.Pool, names []string) ([]Status, []CopyState, error) {
	out, err := States(ctx, db, names)
	if err != nil {
		return nil, nil, err
	}
	copies, err := Copies(ctx, db, names)
	if err != nil {
		return nil, nil, err
	}
	for _, c := range copies {
		for i := range out {
			if c.Building && out[i].Name == c.Projection && out[i].State == StateRunning {
				out[i].State = StateRebuilding
			}
		}
	}
	for i := range out {
		s := &out[i]
		err = db.QueryRow(ctx, `SELECT count(*) FROM events
			WHERE (transaction_id, position) > ($1::xid8, $2::bigint)`,
			s.Checkpoint.TransactionID, s.Checkpoint.Position).Scan(&s.Behind)
		if err != nil {
			return nil, nil, fmt.Errorf("count events behind %s: %w", s.Name, err)
		}
	}
	return out, copies, nil
}

// States is Statuses without Behind (left 0): a few indexed reads, cheap
// enough to poll.
func States(ctx context.Context, db *pgxpool.Pool, names []string) ([]Status, error) {
	out := make([]Status, 0, len(names))
	for _, name := range names {
		s := Status{Name: name, State: StateRunning}
		err := db.QueryRow(ctx, `SELECT state, last_error, failed_event_id, failed_position, updated_at
			FROM projection_status WHERE name = $1`, name).
			Scan(&s.State, &s.LastError, &s.FailedEventID, &s.FailedPosition, &s.UpdatedAt)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("read status of %s: %w", name, err)
		}
		s.Checkpoint, err = checkpointOf(ctx, db, name, false)
		if err != nil {
			return nil, err
		}
		s.Position = s.Checkpoint.Position
		out = append(out, s)
	}
	return out, nil
}

// execer is a pool, a connection or a transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// setRunning records name as running, clearing the error it stopped on.
func setRunning(ctx context.Context, db execer, name string) error {
	_, err := db.Exec(ctx, `INSERT INTO projection_status (name, state) VALUES ($1, 'running')
		ON CONFLICT (name) DO UPDATE SET state = 'running', last_error = '', failed_event_id = '',
			failed_position = 0, updated_at = now()`, name)
	if err != nil {
		return fmt.Errorf("mark %s running: %w", name, err)
	}
	return nil
}

func setStopped(ctx context.Context, db *pgxpool.Pool, name string, rec eventstore.Recorded, cause error) error {
	_, err := db.Exec(ctx, `INSERT INTO projection_status (name, state, last_error, failed_event_id, failed_position)
		VALUES ($1, 'stopped', $2, $3, $4)
		ON CONFLICT (name) DO UPDATE SET state = 'stopped', last_error = $2, failed_event_id = $3,
			failed_position = $4, updated_at = now()`, name, cause.Error(), rec.EventID, rec.Position)
	if err != nil {
		return fmt.Errorf("mark %s stopped: %w", name, err)
	}
	return nil
}

// Stopped names those of the named projections stopped on a failing event
// (a copy being rebuilt online is not one of them).
func Stopped(ctx context.Context, db *pgxpool.Pool, names []string) ([]string, error) {
	rows, err := db.Query(ctx, `SELECT name FROM projection_status WHERE state = 'stopped' AND name = ANY($1) ORDER BY name`, names)
	if err != nil {
		return nil, fmt.Errorf("read stopped projections: %w", err)
	}
	stopped, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read stopped projections: %w", err)
	}
	return stopped, nil
}
