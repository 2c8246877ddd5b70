package readmodel

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/projections"
)

// Provenance projects which memories were made or changed from which
// messages (memory_sources): one row per message an extraction read for
// a memory event, so that the memories derived from a message are found
// by index. A memory a client stored or changed has none. The rows hold
// ids, versions and actions alone; the texts stay in the log (see
// history.Reader.Provenance).
type Provenance struct{}

// Name is "provenance".
func (Provenance) Name() string { return "provenance" }

// Tables is the memory_sources table.
func (Provenance) Tables() []string { return []string{"memory_sources"} }

// EventTypes are the types Apply acts on (see projections.Selective).
func (Provenance) EventTypes() []string {
	return []string{domain.MemoryStored, domain.MemoryUpdated, domain.MemorySuperseded, domain.MemoryErased,
		domain.UserDeleted, domain.UserErased}
}

// DeferredTypes are all it applies (see projections.Deferred): no
// memory command waits for this projection, so a client's memory writes
// cost what they did before extraction. A read of what was derived from
// a message waits for it by the position it names (X-Arq-Min-Position),
// as every read does.
func (Provenance) DeferredTypes() []string { return nil }

// AppliesSealed says that Apply reads no personal field (see
// projections.Sealed): a provenance is ids and versions, kept in the
// clear, and the model's reason, which is personal, is not projected.
func (Provenance) AppliesSealed() {}

// derivation is what Provenance reads of a memory event: the fields an
// extraction sets, all in the clear.
type derivation struct {
	UserID     string             `json:"user_id"`
	Provenance *domain.Provenance `json:"provenance"`
	Supersedes string             `json:"supersedes"`
}

// Apply records the messages behind each memory event that carries
// provenance. A memory's rows go with its erasure, a user's with their
// deletion or erasure; a deleted or superseded memory keeps its rows, as
// its history keeps its events.
func (Provenance) Apply(_ context.Context, tx projections.Tx, e eventstore.Recorded) error {
	switch e.Type {
	case domain.MemoryStored, domain.MemoryUpdated, domain.MemorySuperseded:
	case domain.MemoryErased:
		tx.Exec(`DELETE FROM memory_sources WHERE memory_id = $1`, entityID(e))
		return nil
	case domain.UserDeleted, domain.UserErased:
		tx.Exec(`DELETE FROM memory_sources WHERE user_id = $1`, entityID(e))
		return nil
	default:
		return nil
	}
	// The event as the log holds it, its personal fields sealed: only
	// fields in the clear are read, and no schema version of these
	// events moved them.
	var d derivation
	if err := json.Unmarshal(e.Data, &d); err != nil {
		return fmt.Errorf("provenance: decode %s %s: %w", e.Type, e.EventID, err)
	}
	p := d.Provenance
	if p == nil || len(p.Messages) == 0 {
		return nil
	}
	ids, versions := make([]string, len(p.Messages)), make([]int32, len(p.Messages))
	for i, m := range p.Messages {
		ids[i], versions[i] = m.ID, int32(m.Version)
	}
	// An update or a supersession names no user: the memory's stored
	// event, its stream's first, does (an event before this one in the
	// log, so a rebuild finds it the same).
	tx.Exec(`INSERT INTO memory_sources (message_id, memory_id, memory_version, user_id, tenant, session_id, run_id, action, message_version, recorded_at)
		SELECT m.id, $1, $2, coalesce(nullif($3, ''), (SELECT data->>'user_id' FROM events WHERE stream_id = $4 AND version = 1), ''),
			$5, $6, $7, $8, m.version, $9
		FROM unnest($10::text[], $11::int[]) AS m(id, version)
		ON CONFLICT (message_id, memory_id, memory_version) DO NOTHING`,
		entityID(e), e.Version, d.UserID, e.StreamID, e.Metadata.Tenant, p.SessionID, p.RunID,
		domain.DerivationAction(e.Type, d.Supersedes), e.RecordedAt, ids, versions)
	return nil
}
