package projections

import (
	"context"
	"time"

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

// AppliesSealed says that the catalog reads no personal field of an event
// (see Sealed): its events are not opened.
func (Streams) AppliesSealed() {}

// DeferredTypes is all: no read waits for the catalog after a command
// (see Deferred). It moves in batches, a poll a second under a steady
// stream of appends, instead of a poll each.
func (Streams) DeferredTypes() []string { return nil }

// Apply records e in its stream's row. The events of a batch are gathered
// per stream and written as one upsert (see catalogWrites).
func (Streams) Apply(_ context.Context, tx Tx, e eventstore.Recorded) error {
	tx.Coalesce("streams", newCatalogWrites).(*catalogWrites).add(e)
	return nil
}

// catalogWrites gathers the catalog rows of consecutive events, one per
// stream: the first event's type, position and time (for a stream new to
// the catalog), the last one's version, position and time, and how many.
type catalogWrites struct {
	rows  []catalogRow
	index map[string]int
}

type catalogRow struct {
	streamID, streamType string
	version, count       int
	first, last          int64
	created, updated     time.Time
}

func newCatalogWrites() Coalescer { return &catalogWrites{index: map[string]int{}} }

func (c *catalogWrites) add(e eventstore.Recorded) {
	if i, ok := c.index[e.StreamID]; ok {
		r := &c.rows[i]
		r.version, r.count, r.last, r.updated = e.Version, r.count+1, e.Position, e.RecordedAt
		return
	}
	c.index[e.StreamID] = len(c.rows)
	c.rows = append(c.rows, catalogRow{streamID: e.StreamID, streamType: e.StreamType, version: e.Version, count: 1,
		first: e.Position, last: e.Position, created: e.RecordedAt, updated: e.RecordedAt})
}

// Flush writes every gathered stream in one statement, in the order the
// streams first came: a stream new to the catalog gets the row its events
// would have built one by one; a known one adds their count and takes the
// last one's version, position and time.
func (c *catalogWrites) Flush(exec func(sql string, args ...any)) {
	if len(c.rows) == 0 {
		return
	}
	n := len(c.rows)
	ids, types := make([]string, n), make([]string, n)
	versions, counts := make([]int32, n), make([]int32, n)
	firsts, lasts := make([]int64, n), make([]int64, n)
	created, updated := make([]time.Time, n), make([]time.Time, n)
	for i, r := range c.rows {
		ids[i], types[i], versions[i], counts[i] = r.streamID, r.streamType, int32(r.version), int32(r.count)
		firsts[i], lasts[i], created[i], updated[i] = r.first, r.last, r.created, r.updated
	}
	exec(`INSERT INTO streams AS s (stream_id, stream_type, version, event_count, first_position, last_position, created_at, updated_at)
		SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::int[], $5::bigint[], $6::bigint[], $7::timestamptz[], $8::timestamptz[])
		ON CONFLICT (stream_id) DO UPDATE SET
			version = EXCLUDED.version,
			event_count = s.event_count + EXCLUDED.event_count,
			last_position = EXCLUDED.last_position,
			updated_at = EXCLUDED.updated_at`,
		ids, types, versions, counts, firsts, lasts, created, updated)
	c.rows = c.rows[:0]
	clear(c.index)
}
