package readmodel

import (
	"context"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/projections"
)

// Sessions projects sessions, with the number of messages each holds (those
// appended, less those redacted since).
type Sessions struct{}

// Name is "sessions".
func (Sessions) Name() string { return "sessions" }

// Tables is the sessions table.
func (Sessions) Tables() []string { return []string{"sessions"} }

// EventTypes are the types Apply acts on (see projections.Selective).
func (Sessions) EventTypes() []string {
	return []string{domain.SessionStarted, domain.SessionExtended, domain.SessionClosed, domain.SessionExpired, domain.MessageAppended, domain.MessageRedacted,
		domain.MessageErased, domain.UserDeleted, domain.UserErased}
}

// Apply folds session events (and appended messages, and user deletions)
// into the sessions table.
func (Sessions) Apply(_ context.Context, tx projections.Tx, e eventstore.Recorded) error {
	switch e.Type {
	case domain.SessionStarted, domain.SessionExtended, domain.SessionClosed, domain.SessionExpired:
	case domain.MessageAppended:
		// The log's version is the message's sequence number. A batch's
		// messages are counted per session and written as one update.
		tx.Coalesce("sessions.messages", newMessageCounts).(*messageCounts).add(entityID(e), e.Version)
		return nil
	case domain.MessageRedacted:
		// The message's session is named by its appended event, earlier in
		// the log (migrations/00012 indexes the lookup); the log never
		// changes, so a rebuild finds the same.
		tx.Exec(`UPDATE sessions SET message_count = message_count - 1
			WHERE id = (SELECT data->>'session_id' FROM events WHERE event_type = 'message.appended' AND data->>'message_id' = $1)`, entityID(e))
		return nil
	case domain.MessageErased:
		// An erased message leaves the session as a redacted one does,
		// unless it was redacted before (its own stream says so, by
		// index).
		tx.Exec(`UPDATE sessions SET message_count = message_count - 1
			WHERE id = (SELECT data->>'session_id' FROM events WHERE event_type = 'message.appended' AND data->>'message_id' = $1)
			  AND NOT EXISTS (SELECT 1 FROM events WHERE stream_id = $2 AND version < $3 AND event_type = 'message.redacted')`,
			entityID(e), e.StreamID, e.Version)
		return nil
	case domain.UserDeleted, domain.UserErased:
		tx.Exec(`DELETE FROM sessions WHERE user_id = $1`, entityID(e))
		return nil
	default:
		return nil
	}
	ev, err := decode(e)
	if err != nil {
		return err
	}
	id := entityID(e)
	switch d := ev.Data.(type) {
	case domain.SessionStartedData:
		tx.Exec(`INSERT INTO sessions (id, user_id, tenant, title, metadata, token_hash, status, expires_at, version, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $8, $9, $9)`,
			d.SessionID, d.UserID, e.Metadata.Tenant, d.Title, jsonOf(d.Metadata), d.TokenHash, d.ExpiresAt, e.Version, e.RecordedAt)
	case domain.SessionExtendedData:
		tx.Exec(`UPDATE sessions SET expires_at = $2, version = $3, updated_at = $4 WHERE id = $1`, id, d.ExpiresAt, e.Version, e.RecordedAt)
	case domain.SessionClosedData:
		tx.Exec(`UPDATE sessions SET status = 'closed', closed_at = $3, version = $2, updated_at = $3 WHERE id = $1`, id, e.Version, e.RecordedAt)
	case domain.SessionExpiredData:
		tx.Exec(`UPDATE sessions SET status = 'expired', version = $2, updated_at = $3 WHERE id = $1`, id, e.Version, e.RecordedAt)
	}
	return nil
}

// messageCounts gathers, per session, how many messages consecutive events
// appended and the last one's sequence number.
type messageCounts struct {
	ids        []string
	n, lastSeq []int32
	index      map[string]int
}

func newMessageCounts() projections.Coalescer { return &messageCounts{index: map[string]int{}} }

func (c *messageCounts) add(sessionID string, seq int) {
	i, ok := c.index[sessionID]
	if !ok {
		i = len(c.ids)
		c.index[sessionID] = i
		c.ids, c.n, c.lastSeq = append(c.ids, sessionID), append(c.n, 0), append(c.lastSeq, 0)
	}
	c.n[i]++
	c.lastSeq[i] = int32(seq)
}

// Flush updates every gathered session in one statement: as many updates
// of one message each would.
func (c *messageCounts) Flush(exec func(sql string, args ...any)) {
	if len(c.ids) == 0 {
		return
	}
	exec(`UPDATE sessions s SET message_count = s.message_count + u.n, last_seq = u.last_seq
		FROM unnest($1::text[], $2::int[], $3::int[]) AS u (id, n, last_seq) WHERE s.id = u.id`,
		c.ids, c.n, c.lastSeq)
	// The queued statement keeps the slices until the batch is sent.
	c.ids, c.n, c.lastSeq = nil, nil, nil
	clear(c.index)
}
