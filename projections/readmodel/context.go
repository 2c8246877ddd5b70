package readmodel

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/projections"
)

// Context projects what context windows are made of beside messages and
// memories: session summaries, context snapshots, and the assistant
// messages still waiting for their snapshot. (One projection rather than
// two: each projection costs a subscriber transaction per batch.)
type Context struct{}

// Name is "context".
func (Context) Name() string { return "context" }

// Tables are session_summaries, context_snapshots and snapshots_due.
func (Context) Tables() []string {
	return []string{"session_summaries", "context_snapshots", "snapshots_due"}
}

// EventTypes are the types Apply acts on (see projections.Selective).
func (Context) EventTypes() []string {
	return []string{domain.ContextSnapshotRecorded, domain.MessageAppended, domain.SessionSummarized, domain.MessageRedacted, domain.MessageErased,
		domain.UserDeleted, domain.UserErased}
}

// DeferredTypes are appended messages: they only note assistant messages
// as due for a snapshot, which the snapshotter takes in the background
// (see projections.Deferred), so no append waits for this projection.
func (Context) DeferredTypes() []string { return []string{domain.MessageAppended} }

// Apply folds summary and snapshot events, and notes assistant messages as
// due for a snapshot.
//
// A message's erasure withdraws the summaries holding its text as its
// redaction does, those it names too (their content is erased), and
// empties the query of the snapshots it names; the message is no longer
// due for a snapshot. A user's erasure deletes all of theirs, as their
// deletion does, and moves their sessions' summary generations.
func (Context) Apply(_ context.Context, tx projections.Tx, e eventstore.Recorded) error {
	switch e.Type {
	case domain.ContextSnapshotRecorded, domain.MessageAppended, domain.SessionSummarized, domain.MessageErased:
	case domain.MessageRedacted:
		tx.Exec(`DELETE FROM snapshots_due WHERE message_id = $1`, entityID(e))
		withdrawSummaries(tx, entityID(e), nil)
		return nil
	case domain.UserErased:
		tx.Exec(`INSERT INTO cache_generations (key, gen) SELECT DISTINCT 'summary:' || session_id, 1 FROM session_summaries WHERE user_id = $1`+bumpSQL, entityID(e))
		fallthrough
	case domain.UserDeleted:
		tx.Exec(`DELETE FROM session_summaries WHERE user_id = $1`, entityID(e))
		tx.Exec(`DELETE FROM context_snapshots WHERE user_id = $1`, entityID(e))
		tx.Exec(`DELETE FROM snapshots_due WHERE user_id = $1`, entityID(e))
		return nil
	default:
		return nil
	}
	ev, err := decode(e)
	if err != nil {
		return err
	}
	switch d := ev.Data.(type) {
	case domain.MessageErasedData:
		tx.Exec(`DELETE FROM snapshots_due WHERE message_id = $1`, entityID(e))
		withdrawSummaries(tx, entityID(e), d.Summaries)
		if len(d.Snapshots) > 0 {
			tx.Exec(`UPDATE context_snapshots SET query = '' WHERE id = ANY ($1::text[]) AND query <> ''`, d.Snapshots)
		}
	case domain.SessionSummarizedData:
		bumpSummary(tx, d.SessionID)
		// A summary folds the one that ends just before it; if a
		// redaction withdrew that one while this one was being made, this
		// one holds the redacted text too, and comes in withdrawn.
		tx.Exec(`INSERT INTO session_summaries (session_id, version, user_id, content, tokens, from_seq, to_seq, method, created_at, withdrawn)
			SELECT $1, $2, $3, CASE WHEN f.withdrawn THEN '' ELSE $4 END, $5, $6, $7, $8, $9, f.withdrawn
			FROM (SELECT $6::int > 1 AND NOT EXISTS (SELECT 1 FROM session_summaries
				WHERE session_id = $1 AND to_seq = $6::int - 1 AND NOT withdrawn) AS withdrawn) f`,
			d.SessionID, e.Version, d.UserID, d.Content, d.Tokens, d.FromSeq, d.ToSeq, d.Method, e.RecordedAt)
	case domain.MessageAppendedData:
		if d.Role == "assistant" {
			tx.Coalesce("context.due", newDueRows).(*dueRows).add(d, e)
		}
	case domain.ContextSnapshotData:
		items, err := json.Marshal(d.Items)
		if err != nil {
			return fmt.Errorf("encode snapshot items: %w", err)
		}
		var msg any
		if d.MessageID != "" {
			msg = d.MessageID
			tx.Exec(`DELETE FROM snapshots_due WHERE message_id = $1`, d.MessageID)
		}
		tx.Exec(`INSERT INTO context_snapshots (id, session_id, user_id, message_id, query, max_tokens, total_tokens, items, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			d.SnapshotID, d.SessionID, d.UserID, msg, d.Query, d.Budget, d.TotalTokens, string(items), e.RecordedAt)
	}
	return nil
}

// dueRows gathers the assistant messages of consecutive events for one
// INSERT into snapshots_due.
type dueRows struct {
	messages, sessions, users []string
	seqs                      []int32
	created                   []time.Time
}

func newDueRows() projections.Coalescer { return &dueRows{} }

func (r *dueRows) add(d domain.MessageAppendedData, e eventstore.Recorded) {
	r.messages, r.sessions, r.users = append(r.messages, d.MessageID), append(r.sessions, d.SessionID), append(r.users, d.UserID)
	r.seqs, r.created = append(r.seqs, int32(e.Version)), append(r.created, e.RecordedAt)
}

// Flush inserts the gathered rows in one statement, in event order; a
// message already due stays as it is, as with one INSERT each.
func (r *dueRows) Flush(exec func(sql string, args ...any)) {
	if len(r.messages) == 0 {
		return
	}
	exec(`INSERT INTO snapshots_due (message_id, session_id, user_id, seq, created_at)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::timestamptz[])
		ON CONFLICT (message_id) DO NOTHING`, r.messages, r.sessions, r.users, r.seqs, r.created)
	*r = dueRows{} // the queued statement keeps the slices until sent
}

// withdrawSummaries withdraws the summaries that hold a removed
// message's text: each summary of its session that reaches its sequence
// number (a summary folds the one before it, so every later one too), and
// those of the summarized events named by ids (an erasure's). Their
// content is emptied, and the session's summary generation moves, in one
// statement; windows take the newest summary left, and the summary pass
// summarizes the rest anew (see Messages). Rows stay, withdrawn: the next
// summary follows the newest version, withdrawn or not. The message's
// session and sequence number come from its appended event in the log
// (by the index of migrations/00012): the context projection holds no
// messages, and the log is the same on every replay; the named summaries
// by their events' ids.
func withdrawSummaries(tx projections.Tx, messageID string, ids []string) {
	if ids == nil {
		ids = []string{}
	}
	tx.Exec(`WITH m AS (SELECT data->>'session_id' AS session_id, version AS seq FROM events
			WHERE event_type = 'message.appended' AND data->>'message_id' = $1),
		target AS (SELECT s.session_id, s.version FROM session_summaries s JOIN m ON s.session_id = m.session_id AND s.to_seq >= m.seq
			UNION ALL SELECT substr(stream_id, length($3::text) + 1) COLLATE "default", version FROM events WHERE event_id = ANY ($2::text[])),
		withdrawn AS (UPDATE session_summaries s SET withdrawn = true, content = ''
			FROM target t WHERE s.session_id = t.session_id AND s.version = t.version AND NOT s.withdrawn
			RETURNING s.session_id)
		INSERT INTO cache_generations (key, gen) SELECT DISTINCT 'summary:' || session_id, 1 FROM withdrawn`+bumpSQL,
		messageID, ids, domain.StreamID(domain.StreamSummary, ""))
}
