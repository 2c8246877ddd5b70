package readmodel

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Derived is a memory event an extraction decided after reading a
// message (a row of the provenance projection), with the memory as it is
// now.
type Derived struct {
	MemoryID string `json:"memory_id"`
	// Action is the extraction's: add, supersede, update or superseded.
	Action string `json:"action"`
	// MemoryVersion is the memory's version the message fed;
	// MessageVersion the message's version that was read.
	MemoryVersion  int       `json:"memory_version"`
	MessageVersion int       `json:"message_version"`
	RunID          string    `json:"run_id"`
	SessionID      string    `json:"session_id"`
	RecordedAt     time.Time `json:"recorded_at"`
	// Live says whether the memory is still in every read (not deleted,
	// superseded, expired or erased); Content and Version are its
	// current ones, null when it is not.
	Live    bool    `json:"live"`
	Content *string `json:"content"`
	Version *int    `json:"version"`
}

// DerivedFrom lists what extractions made of a message: each memory
// event that read it, oldest first, with the memory's current content
// while it lives. A message nothing was derived from has none.
func (r *Reader) DerivedFrom(ctx context.Context, messageID string) ([]Derived, error) {
	if !Storable(messageID) {
		return []Derived{}, nil
	}
	rows, err := r.db.Query(ctx, `SELECT s.memory_id, s.action, s.memory_version, s.message_version, s.run_id, s.session_id, s.recorded_at,
			m.content, m.version
		FROM memory_sources s LEFT JOIN memories m ON m.id = s.memory_id AND `+live+`
		WHERE s.message_id = $1
		ORDER BY s.recorded_at, s.memory_id, s.memory_version`, messageID)
	if err != nil {
		return nil, fmt.Errorf("read memories derived from message %s: %w", messageID, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Derived, error) {
		var d Derived
		err := row.Scan(&d.MemoryID, &d.Action, &d.MemoryVersion, &d.MessageVersion, &d.RunID, &d.SessionID, &d.RecordedAt, &d.Content, &d.Version)
		d.Live = d.Version != nil
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("read memories derived from message %s: %w", messageID, err)
	}
	return out, nil
}
