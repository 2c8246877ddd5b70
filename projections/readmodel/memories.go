package readmodel

import (
	"context"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/projections"
)

// Memories projects memories. Reads hide a memory from its expiry time on;
// its expired event removes the row, as its deletion and its supersession
// do.
type Memories struct{}

// Name is "memories".
func (Memories) Name() string { return "memories" }

// Tables is the memories table.
func (Memories) Tables() []string { return []string{"memories"} }

// EventTypes are the types Apply acts on (see projections.Selective).
func (Memories) EventTypes() []string {
	return []string{domain.MemoryStored, domain.MemoryUpdated, domain.MemoryDeleted, domain.MemorySuperseded, domain.MemoryExpired, domain.MemoryErased,
		domain.UserDeleted, domain.UserErased}
}

// Apply folds memory events into the memories table. An erased memory, or
// a memory of an erased user, is deleted.
func (Memories) Apply(_ context.Context, tx projections.Tx, e eventstore.Recorded) error {
	switch e.Type {
	case domain.MemoryStored, domain.MemoryUpdated, domain.MemoryDeleted, domain.MemorySuperseded, domain.MemoryExpired, domain.MemoryErased:
	case domain.UserDeleted, domain.UserErased:
		bumpUser(tx, entityID(e))
		tx.Exec(`DELETE FROM memories WHERE user_id = $1`, entityID(e))
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
	case domain.MemoryStoredData:
		var source domain.MemorySource
		if d.Source != nil {
			source = *d.Source
		}
		bumpUser(tx, d.UserID)
		// The stored event's place in the log: a window at a place
		// before it leaves the memory out (see WindowAt).
		tx.Exec(`INSERT INTO memories (id, user_id, tenant, type, content, importance, tags, metadata,
				source_session_id, source_message_id, tokens, expires_at, version, created_at, updated_at, embedding,
				stored_tx, stored_position)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, nullif($9, ''), nullif($10, ''), $11, $12, $13, $14, $14, $15, $16::xid8, $17)`,
			d.MemoryID, d.UserID, e.Metadata.Tenant, d.Type, d.Content, d.Importance, nonNil(d.Tags), jsonOf(d.Metadata),
			source.SessionID, source.MessageID, d.Tokens, d.ExpiresAt, e.Version, e.RecordedAt, d.Embedding,
			e.TransactionID, e.Position)
	case domain.MemoryUpdatedData:
		bumpUserOfMemory(tx, id)
		tx.Exec(`UPDATE memories SET
				content = coalesce($2, content), tokens = coalesce($3, tokens), importance = coalesce($4, importance),
				tags = coalesce($5, tags), metadata = coalesce($6, metadata),
				expires_at = CASE WHEN $7 THEN NULL ELSE coalesce($8, expires_at) END,
				version = $9, updated_at = $10,
				embedding = CASE WHEN $11 THEN NULL ELSE coalesce($12, embedding) END
			WHERE id = $1`,
			id, d.Content, d.Tokens, d.Importance, d.Tags, jsonOrNil(d.Metadata), d.ClearExpiry, d.ExpiresAt, e.Version, e.RecordedAt,
			d.ClearEmbedding, d.Embedding)
	case domain.MemoryDeletedData, domain.MemorySupersededData, domain.MemoryExpiredData:
		// A superseded memory leaves current reads as a deleted one
		// does; reads as of a time before it was superseded fold it
		// from the log.
		bumpUserOfMemory(tx, id)
		tx.Exec(`DELETE FROM memories WHERE id = $1`, id)
	case domain.MemoryErasedData:
		if d.UserID != "" {
			bumpUser(tx, d.UserID)
		} else {
			bumpUserOfMemory(tx, id)
		}
		tx.Exec(`DELETE FROM memories WHERE id = $1`, id)
	}
	return nil
}
