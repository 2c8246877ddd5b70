package idempotency

import (
	"context"
	"fmt"
)

// erasedStatus is the status of an erased answer (410 Gone), which keeps
// no body and no headers.
const erasedStatus = 410

// Erasure names the events whose requests' answers Erase forgets.
type Erasure struct {
	// Streams and EventIDs hold the erased events.
	Streams, EventIDs []string
	// Owner, when set, keeps of the events in Streams those whose data
	// names no user or this one: an external id's claim stream is shared
	// by the users who held the id in turn.
	Owner string
	// Actor and Key name the erasing request, whose answer is kept.
	Actor, Key string
}

// Erase forgets the answers of the requests behind the events e names:
// each becomes an erased answer (see Answer.Erased), also a claim still
// unanswered, whose answer Save then no longer keeps. A key taken again
// after the request (its day over) holds another request's answer and
// is left alone: the claim must precede the events. It says how many
// answers it forgot.
func (s *Store) Erase(ctx context.Context, e Erasure) (int64, error) {
	streams, ids := e.Streams, e.EventIDs
	if streams == nil {
		streams = []string{}
	}
	if ids == nil {
		ids = []string{}
	}
	tag, err := s.db.Exec(ctx, `UPDATE idempotency_keys k SET status = $6, headers = NULL, body = NULL
		FROM (SELECT metadata->>'actor' AS actor, metadata->>'idempotency_key' AS key, max(transaction_id) AS xid
			FROM events
			WHERE (stream_id = ANY ($1::text[]) AND ($3 = '' OR NOT data ? 'user_id' OR data->>'user_id' = $3)
			       OR event_id = ANY ($2::text[]))
			  AND metadata ? 'idempotency_key'
			GROUP BY 1, 2) e
		WHERE k.actor = coalesce(e.actor, '') AND k.key = e.key AND k.claimed_in < e.xid
		  AND NOT (k.actor = $4 AND k.key = $5)
		  AND NOT (k.status IS NOT DISTINCT FROM $6 AND k.body IS NULL)`,
		streams, ids, e.Owner, e.Actor, e.Key, erasedStatus)
	if err != nil {
		return 0, fmt.Errorf("forget the answers of erased requests: %w", err)
	}
	return tag.RowsAffected(), nil
}
