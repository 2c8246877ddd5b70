package projections

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Reset empties p's tables and its checkpoint in one transaction and marks
// it rebuilding; running projectors (in this process or others) then replay
// the log into it from the start. It waits for a batch in flight to commit.
func Reset(ctx context.Context, db *pgxpool.Pool, p Projection) error {
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO `+checkpointTable+` (consumer_group, offset_acked, last_processed_transaction_id)
			VALUES ($1, 0, '0') ON CONFLICT DO NOTHING`, p.Name()); err != nil {
			return fmt.Errorf("reset %s: %w", p.Name(), err)
		}
		// Locking the checkpoint waits for the batch in flight and keeps the
		// next one out until the tables are empty.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM `+checkpointTable+` WHERE consumer_group = $1 FOR UPDATE`, p.Name()); err != nil {
			return fmt.Errorf("lock checkpoint of %s: %w", p.Name(), err)
		}
		tables := make([]string, len(p.Tables()))
		for i, t := range p.Tables() {
			tables[i] = pgx.Identifier{t}.Sanitize()
		}
		if len(tables) > 0 {
			if _, err := tx.Exec(ctx, `TRUNCATE `+strings.Join(tables, ", ")); err != nil {
				return fmt.Errorf("empty tables of %s: %w", p.Name(), err)
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE `+checkpointTable+` SET offset_acked = 0, last_processed_transaction_id = '0'
			WHERE consumer_group = $1`, p.Name()); err != nil {
			return fmt.Errorf("reset checkpoint of %s: %w", p.Name(), err)
		}
		if _, err := tx.Exec(ctx, bumpRebuilds); err != nil {
			return fmt.Errorf("reset %s: %w", p.Name(), err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO projection_status (name, state) VALUES ($1, 'rebuilding')
			ON CONFLICT (name) DO UPDATE SET state = 'rebuilding', last_error = '', failed_event_id = '',
				failed_position = 0, updated_at = now()`, p.Name()); err != nil {
			return fmt.Errorf("mark %s rebuilding: %w", p.Name(), err)
		}
		return nil
	})
}

// bumpRebuilds moves the generation every cached context window names
// (see migrations/00008_cache_generations.sql): a rebuild exists to change
// rows, also rows no replayed event names.
const bumpRebuilds = `INSERT INTO cache_generations AS g (key, gen) VALUES ('rebuilds', 1)
	ON CONFLICT (key) DO UPDATE SET gen = g.gen + 1`

// MarkRebuilt records that a rebuilding projection has caught up.
func MarkRebuilt(ctx context.Context, db *pgxpool.Pool, name string) error {
	_, err := db.Exec(ctx, `UPDATE projection_status SET state = 'running', updated_at = now()
		WHERE name = $1 AND state = 'rebuilding'`, name)
	if err != nil {
		return fmt.Errorf("mark %s rebuilt: %w", name, err)
	}
	return nil
}
