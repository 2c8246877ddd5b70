package readmodel

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// MessagesBefore lists up to limit messages created before before, for
// the retention worker: oldest first, but those in last after all
// others; those in skip are left out (as dueExpiries orders them).
// Messages redacted or of a deleted user are not in the table, and not
// listed. No index serves the order: a pass reads the table once, which
// the worker does seldom (a hundredth of the retention period).
func (r *Reader) MessagesBefore(ctx context.Context, before time.Time, limit int, skip, last []string) ([]string, error) {
	if skip == nil {
		skip = []string{}
	}
	if last == nil {
		last = []string{}
	}
	rows, err := r.db.Query(ctx, `SELECT id FROM (
			(SELECT id, created_at, false AS retried FROM messages
				WHERE created_at < $1 AND id <> ALL ($3::text[]) AND id <> ALL ($4::text[]) ORDER BY created_at LIMIT $2)
			UNION ALL
			(SELECT id, created_at, true FROM messages
				WHERE created_at < $1 AND id = ANY ($4::text[]) AND id <> ALL ($3::text[]) ORDER BY created_at LIMIT $2)) due
		ORDER BY retried, created_at, id LIMIT $2`, before, limit, skip, last)
	if err != nil {
		return nil, fmt.Errorf("list messages past retention: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list messages past retention: %w", err)
	}
	return ids, nil
}
