package readmodel

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// MessagesBefore lists up to limit messages appended before before and
// not erased yet, for the retention worker: oldest first, but those in
// last after all others; those in skip are left out (as dueExpiries
// orders them). It reads the log, not the messages table: a redacted
// message, or one of a deleted user, has left the table but not the log,
// and its text must not outlive the period either. Messages of an erased
// user are erased already. No index serves the time: a pass reads the
// appends in log order and stops at limit, looking each one's erasure up
// by its stream; the worker passes seldom (a hundredth of the period).
func (r *Reader) MessagesBefore(ctx context.Context, before time.Time, limit int, skip, last []string) ([]string, error) {
	if skip == nil {
		skip = []string{}
	}
	if last == nil {
		last = []string{}
	}
	rows, err := r.db.Query(ctx, `WITH due AS (
			SELECT a.data->>'message_id' AS id, a.transaction_id, a.position FROM events a
			WHERE a.event_type = 'message.appended' AND a.recorded_at < $1
			  AND a.data->>'message_id' <> ALL ($3::text[])
			  AND NOT EXISTS (SELECT 1 FROM events x WHERE x.stream_id = 'message-' || (a.data->>'message_id')
				AND x.event_type = 'message.erased')
			  AND NOT EXISTS (SELECT 1 FROM events u WHERE u.stream_id = 'user-' || (a.data->>'user_id')
				AND u.event_type = 'user.erased'))
		SELECT id FROM (
			(SELECT id, transaction_id, position, false AS retried FROM due
				WHERE id <> ALL ($4::text[]) ORDER BY transaction_id, position LIMIT $2)
			UNION ALL
			(SELECT id, transaction_id, position, true FROM due
				WHERE id = ANY ($4::text[]) ORDER BY transaction_id, position LIMIT $2)) d
		ORDER BY retried, transaction_id, position LIMIT $2`, before, limit, skip, last)
	if err != nil {
		return nil, fmt.Errorf("list messages past retention: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list messages past retention: %w", err)
	}
	return ids, nil
}
