package readmodel

import (
	"context"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/projections"
)

// Messages projects messages. A message's sequence number is the version
// of its appended event in the session's log; its version is 1 plus the
// version of its own stream (edits, redaction).
type Messages struct{}

// Name is "messages".
func (Messages) Name() string { return "messages" }

// Tables is the messages table.
func (Messages) Tables() []string { return []string{"messages"} }

// EventTypes are the types Apply acts on (see projections.Selective).
func (Messages) EventTypes() []string {
	return []string{domain.MessageAppended, domain.MessageEdited, domain.MessageRedacted, domain.UserDeleted}
}

// Apply folds message events into the messages table.
func (Messages) Apply(_ context.Context, tx projections.Tx, e eventstore.Recorded) error {
	switch e.Type {
	case domain.MessageAppended, domain.MessageEdited, domain.MessageRedacted:
	case domain.UserDeleted:
		tx.Exec(`DELETE FROM messages WHERE user_id = $1`, entityID(e))
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
		tx.Exec(`INSERT INTO messages (id, session_id, user_id, tenant, seq, role, content, name, metadata, tokens, version, created_at, updated_at, embedding)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1, $11, $11, $12)`,
			d.MessageID, d.SessionID, d.UserID, e.Metadata.Tenant, e.Version, d.Role, d.Content, d.Name, jsonOf(d.Metadata), d.Tokens, e.RecordedAt, d.Embedding)
	case domain.MessageEditedData:
		bumpSessionOfMessage(tx, entityID(e))
		tx.Exec(`UPDATE messages SET content = $2, tokens = $3, metadata = coalesce($4, metadata), version = $5, updated_at = $6, embedding = $7
			WHERE id = $1`,
			entityID(e), d.Content, d.Tokens, jsonOrNil(d.Metadata), e.Version+1, e.RecordedAt, d.Embedding)
	case domain.MessageRedactedData:
		bumpSessionOfMessage(tx, entityID(e))
		tx.Exec(`DELETE FROM messages WHERE id = $1`, entityID(e))
	}
	return nil
}
