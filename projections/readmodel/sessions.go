package readmodel

import (
	"context"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/projections"
)

// Sessions projects sessions. The number of messages each holds is the
// messages projection's (session_backlog), which applies the messages.
type Sessions struct{}

// Name is "sessions".
func (Sessions) Name() string { return "sessions" }

// Tables is the sessions table.
func (Sessions) Tables() []string { return []string{"sessions"} }

// EventTypes are the types Apply acts on (see projections.Selective).
func (Sessions) EventTypes() []string {
	return []string{domain.SessionStarted, domain.SessionExtended, domain.SessionClosed, domain.SessionExpired, domain.UserDeleted, domain.UserErased}
}

// Apply folds session events (and user deletions) into the sessions
// table. A session's message count is the messages projection's (see
// session_backlog).
func (Sessions) Apply(_ context.Context, tx projections.Tx, e eventstore.Recorded) error {
	switch e.Type {
	case domain.SessionStarted, domain.SessionExtended, domain.SessionClosed, domain.SessionExpired:
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
