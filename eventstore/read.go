package eventstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Columns is the select list that ScanRecorded reads, in order.
const Columns = `position, transaction_id, event_id, stream_id, stream_type, version,
	event_type, schema_version, data, metadata, recorded_at`

// ScanRecorded reads one row selected with Columns.
func ScanRecorded(row pgx.Row) (Recorded, error) {
	var r Recorded
	// The JSON columns are scanned as bytes: into a json.RawMessage pgx
	// would run the JSON decoder over them, to validate what Postgres
	// already validated (a fifth of a rebuild's CPU).
	var data, md []byte
	err := row.Scan(&r.Position, &r.TransactionID, &r.EventID, &r.StreamID, &r.StreamType, &r.Version,
		&r.Type, &r.SchemaVersion, &data, &md, &r.RecordedAt)
	if err != nil {
		return r, fmt.Errorf("scan event: %w", err)
	}
	r.Data = data
	if err := decodeMetadata(md, &r.Metadata); err != nil {
		return r, fmt.Errorf("event %s: %w", r.EventID, err)
	}
	return r, nil
}

// ReadStream returns a stream's events with version >= from, oldest first.
func (s *Store) ReadStream(ctx context.Context, streamID string, from int) ([]Recorded, error) {
	return s.query(ctx, `SELECT `+Columns+` FROM events
		WHERE stream_id = $1 AND version >= $2 ORDER BY version`, streamID, from)
}

// ReadStreamToVersion returns a stream's events up to and including version,
// oldest first: the history from which the stream's state at that version folds.
func (s *Store) ReadStreamToVersion(ctx context.Context, streamID string, version int) ([]Recorded, error) {
	return s.query(ctx, `SELECT `+Columns+` FROM events
		WHERE stream_id = $1 AND version <= $2 ORDER BY version`, streamID, version)
}

// ReadStreamAsOf returns a stream's events recorded at or before t, oldest
// first, up to the first one recorded after t: the history from which the
// stream's state at time t folds, with no version missing. (recorded_at is
// the appending transaction's start, so a version that waited for the
// stream's lock can carry an earlier time than the version before it; a
// history filtered by time alone would skip that one.) history.Reader.At
// cuts an entity's history by the same rule.
func (s *Store) ReadStreamAsOf(ctx context.Context, streamID string, t time.Time) ([]Recorded, error) {
	return s.query(ctx, `SELECT `+Columns+` FROM events
		WHERE stream_id = $1 AND version < coalesce(
			(SELECT min(version) FROM events WHERE stream_id = $1 AND recorded_at > $2), 2147483647)
		ORDER BY version`, streamID, t)
}

// Filter narrows a read of the whole log; zero fields match everything.
type Filter struct {
	StreamID   string
	StreamType string
	EventTypes []string
	// Streams, when not empty, are the only streams read.
	Streams []string
	// UserID, when set, keeps only the events whose data names this user
	// (data's user_id). An index serves it, so a read of one user's
	// events after an old cursor costs that user's events, not the log's;
	// after a recent cursor Postgres reads the log's tail instead.
	UserID string
	// SessionID, when set, keeps only the events whose data names this
	// session (data's session_id). No index serves it alone: with UserID
	// (the session's user) it costs the user's events at most.
	SessionID string
	// SharedType and Owner, when set, keep of the streams of type
	// SharedType (streams that several owners take turns on, such as an
	// external id's claims) only the events whose data's user_id is Owner.
	SharedType, Owner string
	// Tenant, when set, keeps only the events recorded in this tenant
	// (their metadata's tenant); an index serves it.
	Tenant string
	// Sealed leaves the events' personal fields sealed, as the log holds
	// them: for copies opened only when handed out (the live topic), so
	// that what an erasure shreds is unreadable there too.
	Sealed bool
	// From and To, when not zero, bound when the events were recorded
	// (From inclusive, To exclusive).
	From, To time.Time
}

// ReadAll returns up to limit events after cursor, in commit-safe order.
// Only events below the oldest running transaction are returned, so a
// reader that passes back the last event's cursor never skips one.
func (s *Store) ReadAll(ctx context.Context, after Cursor, limit int, f Filter) ([]Recorded, error) {
	if limit <= 0 {
		limit = 1000
	}
	var types, streams []string
	if len(f.EventTypes) > 0 {
		types = f.EventTypes
	}
	if len(f.Streams) > 0 {
		streams = f.Streams
	}
	var from, to *time.Time
	if !f.From.IsZero() {
		from = &f.From
	}
	if !f.To.IsZero() {
		to = &f.To
	}
	query := s.query
	if f.Sealed {
		query = s.queryRaw
	}
	return query(ctx, `SELECT `+Columns+` FROM events
		WHERE (transaction_id, position) > ($1::xid8, $2::bigint)
		  AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
		  AND ($3 = '' OR stream_id = $3)
		  AND ($4 = '' OR stream_type = $4)
		  AND ($5::text[] IS NULL OR event_type = ANY ($5))
		  AND ($7::text[] IS NULL OR stream_id = ANY ($7))
		  AND ($8::timestamptz IS NULL OR recorded_at >= $8)
		  AND ($9::timestamptz IS NULL OR recorded_at < $9)
		  AND ($10 = '' OR stream_type <> $10 OR data->>'user_id' = $11)
		  AND ($12 = '' OR data->>'session_id' = $12)
		  AND ($13 = '' OR (data ? 'user_id' AND data->>'user_id' = $13))
		  AND ($14 = '' OR metadata->>'tenant' = $14)
		ORDER BY transaction_id, position
		LIMIT $6`, after.TransactionID, after.Position, f.StreamID, f.StreamType, types, limit, streams, from, to, f.SharedType, f.Owner, f.SessionID, f.UserID, f.Tenant)
}

// Last is the cursor of the last committed event, also one that readers
// of the whole log cannot see yet because an older transaction is still
// open: what a reader that means to catch up must reach.
func (s *Store) Last(ctx context.Context) (Cursor, error) {
	var c Cursor
	err := s.pool.QueryRow(ctx, `SELECT transaction_id, position FROM events
		ORDER BY transaction_id DESC, position DESC LIMIT 1`).Scan(&c.TransactionID, &c.Position)
	if errors.Is(err, pgx.ErrNoRows) {
		return Start, nil
	}
	if err != nil {
		return Start, fmt.Errorf("read end of log: %w", err)
	}
	return c, nil
}

// Head is the cursor of the last event a reader of the whole log can see now.
func (s *Store) Head(ctx context.Context) (Cursor, error) {
	var c Cursor
	err := s.pool.QueryRow(ctx, `SELECT transaction_id, position FROM events
		WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())
		ORDER BY transaction_id DESC, position DESC LIMIT 1`).Scan(&c.TransactionID, &c.Position)
	if errors.Is(err, pgx.ErrNoRows) {
		return Start, nil
	}
	if err != nil {
		return Start, fmt.Errorf("read head of log: %w", err)
	}
	return c, nil
}

// Count is how many events a reader of the log can see now: those below
// the commit-safe horizon, as ReadAll and Head see them, so a commit that
// may yet be overtaken by an earlier transaction is not counted until it
// is safe to read. It sizes the progress of a pass over the whole log.
func (s *Store) Count(ctx context.Context) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM events
		WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count events: %w", err)
	}
	return n, nil
}

// query reads events and opens them (see Sealer).
func (s *Store) query(ctx context.Context, sql string, args ...any) ([]Recorded, error) {
	events, err := s.queryRaw(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return s.open(ctx, events)
}

// queryRaw reads events as the log holds them.
func (s *Store) queryRaw(ctx context.Context, sql string, args ...any) ([]Recorded, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	defer rows.Close()
	var out []Recorded
	for rows.Next() {
		r, err := ScanRecorded(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return out, nil
}

// ReadStreamRange returns a stream's events with from <= version <= to.
func (s *Store) ReadStreamRange(ctx context.Context, streamID string, from, to int) ([]Recorded, error) {
	return s.query(ctx, `SELECT `+Columns+` FROM events
		WHERE stream_id = $1 AND version BETWEEN $2 AND $3 ORDER BY version`, streamID, from, to)
}

// StreamVersion is a stream's version: its last event's, 0 when it has
// none.
func (s *Store) StreamVersion(ctx context.Context, streamID string) (int, error) {
	var v int
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM events WHERE stream_id = $1`, streamID).Scan(&v); err != nil {
		return 0, fmt.Errorf("read version of stream %s: %w", streamID, err)
	}
	return v, nil
}

// MessageAppendedEvent returns the event that appended message id to its
// session's log (migrations/00012 indexes the lookup), so a message's
// history is found after the message left the query tables.
func (s *Store) MessageAppendedEvent(ctx context.Context, messageID string) ([]Recorded, error) {
	return s.query(ctx, `SELECT `+Columns+` FROM events
		WHERE event_type = 'message.appended' AND data->>'message_id' = $1`, messageID)
}

// MessageAppendedEvents is MessageAppendedEvent of each of messageIDs,
// in one query; a message never appended has none.
func (s *Store) MessageAppendedEvents(ctx context.Context, messageIDs []string) ([]Recorded, error) {
	return s.query(ctx, `SELECT `+Columns+` FROM events
		WHERE event_type = 'message.appended' AND data->>'message_id' = ANY ($1::text[])`, messageIDs)
}

// ReadStreamsUpTo returns the events of streams up to and including at in
// the log's commit-safe order, in one query, by stream and version. A
// stream's versions follow that order (its writers hold its lock until
// they commit), so each stream's are a prefix of it.
func (s *Store) ReadStreamsUpTo(ctx context.Context, streams []string, at Cursor) ([]Recorded, error) {
	return s.query(ctx, `SELECT `+Columns+` FROM events
		WHERE stream_id = ANY ($1::text[]) AND (transaction_id, position) <= ($2::xid8, $3::bigint)
		ORDER BY stream_id, version`, streams, at.TransactionID, at.Position)
}

// UserStreams lists the streams of a user and of everything of theirs:
// the user's own, and every stream with an event naming the user (their
// sessions, session logs, summaries, memories, context snapshots, external
// id claims), plus the streams of the messages appended in their sessions.
// migrations/00013 indexes the lookup.
func (s *Store) UserStreams(ctx context.Context, userID string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT 'user-' || $1::text
		UNION SELECT stream_id FROM events WHERE data ? 'user_id' AND data->>'user_id' = $1
		UNION SELECT 'message-' || (data->>'message_id') FROM events
			WHERE data ? 'user_id' AND data->>'user_id' = $1 AND event_type = 'message.appended'`, userID)
	if err != nil {
		return nil, fmt.Errorf("find streams of user %s: %w", userID, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("find streams of user %s: %w", userID, err)
	}
	return out, nil
}
