package projections

import (
	"context"

	"github.com/arq-memory/arq/eventstore"
)

// Streams is the stream catalog: one row per stream with its type, version,
// event count and first and last positions. Audit tooling lists streams
// from it; its event count equal to its version is a standing check that
// every event was applied exactly once.
type Streams struct{}

// Name is "streams".
func (Streams) Name() string { return "streams" }

// Tables is the catalog table.
func (Streams) Tables() []string { return []string{"streams"} }

// Apply records e in its stream's row.
func (Streams) Apply(_ context.Context, tx Tx, e eventstore.Recorded) error {
	tx.Exec(`INSERT INTO streams (stream_id, stream_type, version, event_count, first_position, last_position, created_at, updated_at)
		VALUES ($1, $2, $3, 1, $4, $4, $5, $5)
		ON CONFLICT (stream_id) DO UPDATE SET
			version = EXCLUDED.version,
			event_count = streams.event_count + 1,
			last_position = EXCLUDED.last_position,
			updated_at = EXCLUDED.updated_at`,
		e.StreamID, e.StreamType, e.Version, e.Position, e.RecordedAt)
	return nil
}
