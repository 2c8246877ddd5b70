package readmodel

import (
	"context"
	"time"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/projections"
)

// Messages projects messages. A message's sequence number is the version
// of its appended event in the session's log; its version is 1 plus the
// version of its own stream (edits, redaction).
//
// It also keeps each session's backlog: the cost of its messages after
// the last one its newest summary covers (migrations/00016), which the
// summary pass reads instead of summing messages, and the last message
// of each summary standing (migrations/00020), to go back to when a
// redaction withdraws the newest.
type Messages struct{}

// Name is "messages".
func (Messages) Name() string { return "messages" }

// Tables are messages and session_backlog.
func (Messages) Tables() []string { return []string{"messages", "session_backlog"} }

// EventTypes are the types Apply acts on (see projections.Selective).
func (Messages) EventTypes() []string {
	return []string{domain.MessageAppended, domain.MessageEdited, domain.MessageRedacted, domain.MessageErased, domain.SessionSummarized,
		domain.UserDeleted, domain.UserErased}
}

// Apply folds message events into the messages table, and messages and
// summaries into the sessions' backlogs. An erased message leaves as a
// redacted one does, also when it was redacted before (its summaries are
// withdrawn anew); a user's erasure deletes their messages as their
// deletion does, and moves their sessions' generations, so that no window
// cached with the messages' text is read again.
func (Messages) Apply(_ context.Context, tx projections.Tx, e eventstore.Recorded) error {
	switch e.Type {
	case domain.MessageAppended, domain.MessageEdited, domain.MessageRedacted, domain.SessionSummarized:
	case domain.MessageErased:
		ev, err := decode(e)
		if err != nil {
			return err
		}
		if d, _ := ev.Data.(domain.MessageErasedData); d.SessionID != "" {
			bumpSession(tx, d.SessionID)
		} else {
			bumpSessionOfMessage(tx, entityID(e))
		}
		removeMessage(tx, entityID(e), `SELECT data->>'session_id' AS session_id, version AS seq FROM events
			WHERE event_type = 'message.appended' AND data->>'message_id' = $1`)
		return nil
	case domain.UserErased:
		tx.Exec(`INSERT INTO cache_generations (key, gen) SELECT DISTINCT 'session:' || session_id, 1 FROM messages WHERE user_id = $1`+bumpSQL, entityID(e))
		fallthrough
	case domain.UserDeleted:
		tx.Exec(`DELETE FROM messages WHERE user_id = $1`, entityID(e))
		tx.Exec(`DELETE FROM session_backlog WHERE user_id = $1`, entityID(e))
		return nil
	default:
		return nil
	}
	ev, err := decode(e)
	if err != nil {
		return err
	}
	switch d := ev.Data.(type) {
	case domain.MessageAppendedData:
		bumpSession(tx, d.SessionID)
		if d.Embedding != nil {
			// Arrays of arrays of different lengths do not pass through
			// unnest: such a message is written alone (after those
			// gathered before it).
			tx.Exec(`WITH added AS (INSERT INTO messages (id, session_id, user_id, tenant, seq, role, content, name, metadata, tokens, version, created_at, updated_at, embedding)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1, $11, $11, $12)
				RETURNING session_id, user_id, tokens, role, seq, created_at) `+addToBacklog("$13"),
				d.MessageID, d.SessionID, d.UserID, e.Metadata.Tenant, e.Version, d.Role, d.Content, d.Name, jsonOf(d.Metadata), d.Tokens, e.RecordedAt, d.Embedding, domain.ItemOverhead)
			break
		}
		tx.Coalesce("messages.appended", newMessageRows).(*messageRows).add(d, e)
	case domain.MessageEditedData:
		bumpSessionOfMessage(tx, entityID(e))
		// A message after the last summary moves its session's backlog
		// by the change of its tokens (read before the row changes).
		tx.Exec(`UPDATE session_backlog b SET cost = b.cost + $2 - m.tokens
			FROM messages m WHERE m.id = $1 AND b.session_id = m.session_id AND m.seq > b.summarized_to`, entityID(e), d.Tokens)
		tx.Exec(`UPDATE messages SET content = $2, tokens = $3, metadata = coalesce($4, metadata), version = $5, updated_at = $6, embedding = $7
			WHERE id = $1`,
			entityID(e), d.Content, d.Tokens, jsonOrNil(d.Metadata), e.Version+1, e.RecordedAt, d.Embedding)
	case domain.MessageRedactedData:
		bumpSessionOfMessage(tx, entityID(e))
		removeMessage(tx, entityID(e), `SELECT session_id, seq FROM messages WHERE id = $1`)
	case domain.SessionSummarizedData:
		// The summary covers messages up to ToSeq: the backlog is what
		// lives after them. Summaries of a session only move forward.
		// A summary whose predecessor (the one ending just before it) a
		// redaction withdrew meanwhile comes in withdrawn (see Context):
		// it moves nothing.
		tx.Exec(`UPDATE session_backlog b SET summarized_to = $2, summary_tos = b.summary_tos || $2::int,
				cost = (SELECT coalesce(sum(m.tokens + $3), 0) FROM messages m WHERE m.session_id = $1 AND m.seq > $2)
			WHERE b.session_id = $1 AND b.summarized_to < $2 AND ($4::int <= 1 OR $4::int - 1 = ANY (b.summary_tos))`,
			d.SessionID, d.ToSeq, domain.ItemOverhead, d.FromSeq)
	}
	return nil
}

// removeMessage removes message id from the messages table and its
// session's backlog. place is a query of the message's session_id and seq
// by its id ($1): its row, for a redaction (a message redacted before is
// gone, and nothing more moves); its appended event, for an erasure,
// which withdraws the summaries reaching it also when it was redacted
// before (as Context does).
func removeMessage(tx projections.Tx, id, place string) {
	// A message still held leaves its session's count, and its backlog
	// when no summary covers it (one redacted before is gone already).
	tx.Exec(`UPDATE session_backlog b SET message_count = b.message_count - 1,
			cost = b.cost - CASE WHEN m.seq > b.summarized_to THEN m.tokens + $2 ELSE 0 END
		FROM messages m WHERE m.id = $1 AND b.session_id = m.session_id`, id, domain.ItemOverhead)
	// A message a summary covers withdraws that summary and every
	// later one (see Context): the backlog goes back to the newest
	// summary before the message, and counts the live messages after
	// it anew.
	tx.Exec(`WITH m AS (`+place+`),
			standing AS (SELECT b.session_id, coalesce(array_agg(x ORDER BY x) FILTER (WHERE x < m.seq), '{}') AS tos
				FROM session_backlog b JOIN m ON b.session_id = m.session_id
				LEFT JOIN LATERAL unnest(b.summary_tos) x ON true
				WHERE m.seq <= b.summarized_to GROUP BY b.session_id)
		UPDATE session_backlog b SET summary_tos = st.tos, summarized_to = coalesce(st.tos[array_upper(st.tos, 1)], 0),
			cost = (SELECT coalesce(sum(o.tokens + $2), 0) FROM messages o
				WHERE o.session_id = b.session_id AND o.id <> $1 AND o.seq > coalesce(st.tos[array_upper(st.tos, 1)], 0))
		FROM standing st WHERE b.session_id = st.session_id`, id, domain.ItemOverhead)
	tx.Exec(`DELETE FROM messages WHERE id = $1`, id)
}

// messageRows gathers the rows of consecutive appended messages (without
// embeddings) for one INSERT.
type messageRows struct {
	ids, sessions, users, tenants, roles, contents, names, metadata []string
	seqs, tokens                                                    []int32
	created                                                         []time.Time
}

func newMessageRows() projections.Coalescer { return &messageRows{} }

func (r *messageRows) add(d domain.MessageAppendedData, e eventstore.Recorded) {
	r.ids, r.sessions, r.users, r.tenants = append(r.ids, d.MessageID), append(r.sessions, d.SessionID), append(r.users, d.UserID), append(r.tenants, e.Metadata.Tenant)
	r.roles, r.contents, r.names, r.metadata = append(r.roles, d.Role), append(r.contents, d.Content), append(r.names, d.Name), append(r.metadata, jsonOf(d.Metadata))
	r.seqs, r.tokens, r.created = append(r.seqs, int32(e.Version)), append(r.tokens, int32(d.Tokens)), append(r.created, e.RecordedAt)
}

// addToBacklog is the statement that, after a CTE "added" of inserted
// messages (session_id, user_id, tokens, role, seq, created_at), adds
// them and their cost to their sessions' counts and backlogs, and moves
// the place of each session's newest user message (which extraction
// finds due sessions by); overhead is the parameter holding
// domain.ItemOverhead. A message appended is always newer than the last
// summary of its session.
func addToBacklog(overhead string) string {
	return `INSERT INTO session_backlog (session_id, user_id, cost, message_count, last_user_seq, last_user_at)
	SELECT session_id, min(user_id), sum(tokens + ` + overhead + `::int), count(*),
		coalesce(max(seq) FILTER (WHERE role = 'user'), 0), max(created_at) FILTER (WHERE role = 'user')
	FROM added GROUP BY session_id
	ON CONFLICT (session_id) DO UPDATE SET cost = session_backlog.cost + excluded.cost,
		message_count = session_backlog.message_count + excluded.message_count,
		last_user_seq = greatest(session_backlog.last_user_seq, excluded.last_user_seq),
		last_user_at = greatest(session_backlog.last_user_at, excluded.last_user_at)`
}

// Flush inserts the gathered messages in one statement, in event order:
// the rows one INSERT each would make, and their sessions' backlogs.
func (r *messageRows) Flush(exec func(sql string, args ...any)) {
	if len(r.ids) == 0 {
		return
	}
	exec(`WITH added AS (INSERT INTO messages (id, session_id, user_id, tenant, seq, role, content, name, metadata, tokens, version, created_at, updated_at)
		SELECT id, session_id, user_id, tenant, seq, role, content, name, metadata::jsonb, tokens, 1, created_at, created_at
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::text[], $7::text[], $8::text[], $9::text[], $10::int[], $11::timestamptz[])
			AS u (id, session_id, user_id, tenant, seq, role, content, name, metadata, tokens, created_at)
		RETURNING session_id, user_id, tokens, role, seq, created_at) `+addToBacklog("$12"),
		r.ids, r.sessions, r.users, r.tenants, r.seqs, r.roles, r.contents, r.names, r.metadata, r.tokens, r.created, domain.ItemOverhead)
	*r = messageRows{} // the queued statement keeps the slices until sent
}
