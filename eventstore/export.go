package eventstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Exported is an event as `arq export` writes it and `arq import` reads
// it: the recorded event and its hash (see Verify), so an imported log
// keeps its chain and verifies the same.
type Exported struct {
	Recorded
	Hash []byte `json:"hash"`
	// Checkpoint, on the export of a whole log, is the log's signed
	// checkpoint of the events up to and including this one, when one was
	// signed at that size (see SignedCheckpoint); an importer recomputes
	// the tree of the file's events and checks its root. Readers that do
	// not know the field ignore it.
	Checkpoint string `json:"checkpoint,omitempty"`
}

// SignedCheckpoint is the log's signed checkpoint of its first Size
// events: the signed note its Merkle tree keeps (see package ledger and
// logproof).
type SignedCheckpoint struct {
	Size int64
	Note string
}

// CheckpointPager lists the log's signed checkpoints of more than after
// events, smallest first, at most limit.
type CheckpointPager func(ctx context.Context, after int64, limit int) ([]SignedCheckpoint, error)

// Export hands every event recorded at or after since (zero: all) to fn,
// in commit-safe order.
func (s *Store) Export(ctx context.Context, since time.Time, fn func(Exported) error) error {
	after := Start
	for {
		rows, err := s.pool.Query(ctx, `SELECT `+Columns+`, hash FROM events
			WHERE (transaction_id, position) > ($1::xid8, $2::bigint)
			  AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
			  AND recorded_at >= $3
			ORDER BY transaction_id, position LIMIT 1000`, after.TransactionID, after.Position, since)
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		n := 0
		for rows.Next() {
			var e Exported
			var data, md []byte // bytes, not json.RawMessage: see ScanRecorded
			if err := rows.Scan(&e.Position, &e.TransactionID, &e.EventID, &e.StreamID, &e.StreamType, &e.Version,
				&e.Type, &e.SchemaVersion, &data, &md, &e.RecordedAt, &e.Hash); err != nil {
				rows.Close()
				return fmt.Errorf("export: %w", err)
			}
			e.Data = data
			if err := decodeMetadata(md, &e.Metadata); err != nil {
				rows.Close()
				return fmt.Errorf("export: event %s: %w", e.EventID, err)
			}
			if err := fn(e); err != nil {
				rows.Close()
				return err
			}
			after = e.Cursor()
			n++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		if n < 1000 {
			return nil
		}
	}
}

// Empty reports whether the log holds no event.
func (s *Store) Empty(ctx context.Context) (bool, error) {
	var any bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM events)`).Scan(&any); err != nil {
		return false, fmt.Errorf("look at the log: %w", err)
	}
	return !any, nil
}

// Import appends exported events as they are: ids, versions, times,
// metadata and hashes kept; positions and transaction ids are this log's
// own, given in the order of events, which keeps their commit-safe order.
// One call is one transaction. The store's uniqueness rules still hold: an
// event id or a stream version that exists already fails the call.
func (s *Store) Import(ctx context.Context, events []Exported) error {
	rows := make([][]any, len(events))
	for i, e := range events {
		md, err := encodeMetadata(e.Metadata)
		if err != nil {
			return fmt.Errorf("import: event %s: %w", e.EventID, err)
		}
		rows[i] = []any{e.EventID, e.StreamID, e.StreamType, e.Version, e.Type, e.SchemaVersion, []byte(e.Data), md, e.RecordedAt, e.Hash}
	}
	_, err := s.pool.CopyFrom(ctx, pgx.Identifier{"events"},
		[]string{"event_id", "stream_id", "stream_type", "version", "event_type", "schema_version", "data", "metadata", "recorded_at", "hash"},
		pgx.CopyFromRows(rows))
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	s.onAppend(Appended{}) // of types not looked at: every reader wakes
	return nil
}
