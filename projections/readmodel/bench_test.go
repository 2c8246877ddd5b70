package readmodel

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/internal/testdb"
)

// summedDueSQL is how the summary pass found due sessions before the
// backlog table (4de48c5): each session with messages after its last
// summary summed them. Kept here as the baseline of BenchmarkDueSummaries.
const summedDueSQL = `SELECT s.id, s.user_id, coalesce(l.version, 0), coalesce(l.to_seq, 0), coalesce(l.content, '')
	FROM sessions s
	LEFT JOIN LATERAL (SELECT version, to_seq, content FROM session_summaries
		WHERE session_id = s.id ORDER BY version DESC LIMIT 1) l ON true
	CROSS JOIN LATERAL (SELECT sum(m.tokens + $4::int) AS cost FROM messages m
		WHERE m.session_id = s.id AND m.seq > coalesce(l.to_seq, 0)) t
	WHERE s.last_seq > coalesce(l.to_seq, 0) AND t.cost > $1::int + $2::int
	LIMIT $3`

// BenchmarkDueSummaries measures one summary pass's search for due
// sessions over sessions=N sessions of 30 messages each (half of them
// with a summary of their first 20), none of them due but five: what
// every arq process runs every ARQ_BACKGROUND_INTERVAL. find=summed is
// the query before the backlog table (with the reads of the due
// sessions' messages that follow it), find=backlog DueSummaries now.
func BenchmarkDueSummaries(b *testing.B) {
	const threshold, recent = 2000, 1000
	for _, n := range []int{1000, 10000} {
		ctx := context.Background()
		pool := testdb.Pool(b, testdb.New(b))
		for _, q := range []string{
			`INSERT INTO sessions (id, user_id, tenant, title, metadata, token_hash, status, version, created_at, updated_at)
				SELECT 's' || i, 'u' || (i % 100), 'default', '', '{}', 'h' || i, 'open', 1, now(), now() FROM generate_series(1, $1::int) i`,
			// Five sessions are due: their messages cost 204 tokens each.
			`INSERT INTO messages (id, session_id, user_id, tenant, seq, role, content, name, metadata, tokens, version, created_at, updated_at)
				SELECT 'm' || i || '.' || j, 's' || i, 'u' || (i % 100), 'default', j, 'user', 'a short message', '', '{}',
					CASE WHEN i <= 5 THEN 200 ELSE 20 END, 1, now(), now()
				FROM generate_series(1, $1::int) i, generate_series(1, 30) j`,
			`INSERT INTO session_summaries (session_id, version, user_id, content, tokens, from_seq, to_seq, method, created_at)
				SELECT 's' || i, 1, 'u' || (i % 100), 'earlier', 10, 1, 20, 'extractive', now() FROM generate_series(6, $1::int, 2) i`,
			`INSERT INTO session_backlog (session_id, user_id, summarized_to, cost)
				SELECT m.session_id, min(m.user_id), coalesce(max(s.to_seq), 0),
					coalesce(sum(m.tokens + $2::int) FILTER (WHERE m.seq > coalesce(s.to_seq, 0)), 0)
				FROM messages m LEFT JOIN session_summaries s USING (session_id) WHERE $1::int > 0 GROUP BY m.session_id`,
			`ANALYZE`,
		} {
			var args []any
			if strings.Contains(q, "$1") {
				args = append(args, n)
			}
			if strings.Contains(q, "$2") {
				args = append(args, domain.ItemOverhead)
			}
			if _, err := pool.Exec(ctx, q, args...); err != nil {
				b.Fatal(err)
			}
		}
		r := NewReader(pool)
		b.Run(fmt.Sprintf("find=summed/sessions=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				rows, err := pool.Query(ctx, summedDueSQL, threshold, recent, 20, domain.ItemOverhead)
				if err != nil {
					b.Fatal(err)
				}
				var found []domain.DueSummary
				for rows.Next() {
					var d domain.DueSummary
					if err := rows.Scan(&d.SessionID, &d.UserID, &d.After, &d.FromSeq, &d.Previous); err != nil {
						b.Fatal(err)
					}
					found = append(found, d)
				}
				if rows.Close(); rows.Err() != nil || len(found) != 5 {
					b.Fatalf("found %d due sessions (%v), want 5", len(found), rows.Err())
				}
				for _, d := range found { // as DueSummaries does after its query
					if _, err := r.MessagesAfter(ctx, d.SessionID, d.FromSeq); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
		b.Run(fmt.Sprintf("find=backlog/sessions=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				due, err := r.DueSummaries(ctx, threshold, recent, 20, nil, nil)
				if err != nil || len(due) != 5 {
					b.Fatalf("found %d due sessions (%v), want 5", len(due), err)
				}
			}
		})
	}
}
