package eventstore

import (
	"context"
	"fmt"
	"sort"
)

// Break is one place where a stream's hash chain is broken: an event whose
// stored hash does not match its content and its predecessor's hash (it
// was changed or moved, or its predecessor's hash was), versions missing
// before an event (removed), or a stream that ends before the version the
// stream catalog last saw (removed from the end).
type Break struct {
	StreamID string `json:"stream_id"`
	Version  int    `json:"version"`
	EventID  string `json:"event_id,omitempty"`
	Position int64  `json:"position,omitempty"`
	Problem  string `json:"problem"`
}

// Verification is what Verify found.
type Verification struct {
	Events  int64   `json:"events"`
	Streams int64   `json:"streams"`
	Breaks  []Break `json:"breaks"`
	// First is the first broken link in the log's order, if any.
	First *Break `json:"first_break"`
}

// Intact reports whether no link is broken.
func (v Verification) Intact() bool { return len(v.Breaks) == 0 }

// Verify walks the hash chains of every stream (or of streamID alone, when
// not "") and reports every broken link. progress, if not nil, hears how many events
// it has checked (see migrations/00011_hash_chain.sql for the hash).
func (s *Store) Verify(ctx context.Context, streamID string, progress func(done int64)) (Verification, error) {
	var v Verification
	rows, err := s.pool.Query(ctx, `SELECT stream_id, version, event_id, position,
			hash = arq_event_hash(lag(hash) OVER w, event_id, stream_id, stream_type, version,
				event_type, schema_version, recorded_at, data, metadata), lag(version) OVER w
		FROM events e WHERE $1 = '' OR stream_id = $1
		WINDOW w AS (PARTITION BY stream_id ORDER BY version)
		ORDER BY stream_id, version`, streamID)
	if err != nil {
		return v, fmt.Errorf("verify: %w", err)
	}
	defer rows.Close()
	last := ""
	for rows.Next() {
		var b Break
		var ok bool
		var prev *int
		if err := rows.Scan(&b.StreamID, &b.Version, &b.EventID, &b.Position, &ok, &prev); err != nil {
			return v, fmt.Errorf("verify: %w", err)
		}
		v.Events++
		if b.StreamID != last {
			v.Streams++
			last = b.StreamID
		}
		want := 1
		if prev != nil {
			want = *prev + 1
		}
		switch {
		case b.Version != want:
			b.Problem = fmt.Sprintf("versions %d to %d are missing before this event", want, b.Version-1)
			v.Breaks = append(v.Breaks, b)
		case !ok:
			b.Problem = "the stored hash does not match the event's content and its predecessor's hash: the event was changed or moved"
			v.Breaks = append(v.Breaks, b)
		}
		if progress != nil && v.Events%1000 == 0 {
			progress(v.Events)
		}
	}
	if err := rows.Err(); err != nil {
		return v, fmt.Errorf("verify: %w", err)
	}
	// The end of a stream leaves no link behind; the stream catalog, if it
	// was built before, remembers how far each stream went.
	tail, err := s.pool.Query(ctx, `SELECT c.stream_id, c.version, coalesce(e.v, 0) FROM streams c
		LEFT JOIN (SELECT stream_id, max(version) AS v FROM events GROUP BY stream_id) e USING (stream_id)
		WHERE ($1 = '' OR c.stream_id = $1) AND coalesce(e.v, 0) < c.version`, streamID)
	if err != nil {
		return v, fmt.Errorf("verify stream ends: %w", err)
	}
	defer tail.Close()
	for tail.Next() {
		var b Break
		var have int
		if err := tail.Scan(&b.StreamID, &b.Version, &have); err != nil {
			return v, fmt.Errorf("verify stream ends: %w", err)
		}
		b.Problem = fmt.Sprintf("the stream ends at version %d but reached version %d: events were removed from its end", have, b.Version)
		v.Breaks = append(v.Breaks, b)
	}
	if err := tail.Err(); err != nil {
		return v, fmt.Errorf("verify stream ends: %w", err)
	}
	if progress != nil {
		progress(v.Events)
	}
	if len(v.Breaks) > 0 {
		sorted := append([]Break(nil), v.Breaks...)
		sort.SliceStable(sorted, func(i, j int) bool {
			pi, pj := sorted[i].Position, sorted[j].Position
			return pi != 0 && (pj == 0 || pi < pj)
		})
		v.First = &sorted[0]
	}
	return v, nil
}

// VerifyStream walks the hash chain of one stream, as Verify. A stream
// that has no events and no break (none were removed from it) does not
// exist: ErrNoStream, as is "" (which Verify reads as the whole log).
func (s *Store) VerifyStream(ctx context.Context, streamID string, progress func(done int64)) (Verification, error) {
	if streamID == "" {
		return Verification{}, fmt.Errorf("%w: %q", ErrNoStream, streamID)
	}
	v, err := s.Verify(ctx, streamID, progress)
	if err != nil {
		return v, err
	}
	if v.Events == 0 && v.Intact() {
		return Verification{}, fmt.Errorf("%w: %s", ErrNoStream, streamID)
	}
	return v, nil
}
