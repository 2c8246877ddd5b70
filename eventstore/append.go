package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/oklog/ulid/v2"
)

// Store appends to and reads the event log in Postgres.
type Store struct {
	pool     *pgxpool.Pool
	onAppend func()
}

// Option configures a Store.
type Option func(*Store)

// WithAppendHook calls f after every append that wrote events, e.g. to wake
// projectors (see Notifier.Notify). f must not block.
func WithAppendHook(f func()) Option { return func(s *Store) { s.onAppend = f } }

// New returns a Store over pool, whose database has ARQ's migrations applied.
func New(pool *pgxpool.Pool, opts ...Option) *Store {
	s := &Store{pool: pool, onAppend: func() {}}
	for _, o := range opts {
		o(s)
	}
	return s
}

// StreamAppend is one stream's part of an AppendMulti.
type StreamAppend struct {
	Stream   Stream
	Expected Expected
	Events   []Event
}

// SQLSTATEs raised by arq_append (migrations/00001_event_log.sql).
const (
	codeConflict     = "AQ001"
	codeIDReused     = "AQ002"
	codeStreamType   = "AQ003"
	codeUniqueViolat = "23505"
)

// Append appends events to one stream atomically, if the stream is at the
// expected version. A conflict returns a *ConflictError (errors.Is
// ErrConflict) and writes nothing. Repeating an append with the same event
// ids writes nothing and returns the original result.
func (s *Store) Append(ctx context.Context, stream Stream, expected Expected, events ...Event) (AppendResult, error) {
	res, err := s.AppendMulti(ctx, StreamAppend{Stream: stream, Expected: expected, Events: events})
	if err != nil {
		return AppendResult{}, err
	}
	return res[0], nil
}

// AppendMulti appends to several streams in one transaction: all appends
// happen or none does. Streams are locked before the first write, so each
// stream's events stay in version order in the commit-safe read of the log.
func (s *Store) AppendMulti(ctx context.Context, appends ...StreamAppend) ([]AppendResult, error) {
	args, err := buildArgs(appends)
	if err != nil {
		return nil, err
	}

	results := make([]AppendResult, len(appends))
	b := &pgx.Batch{}
	if len(appends) > 1 {
		ids := make([]string, len(appends))
		for i, a := range appends {
			ids[i] = a.Stream.ID
		}
		b.Queue(`SELECT arq_lock_streams($1)`, ids)
	}
	for i, a := range args {
		i := i
		b.Queue(`SELECT event_id, position, version, transaction_id, recorded_at, repeated FROM arq_append($1, $2, $3, $4, $5, $6, $7, $8)`,
			a.streamID, a.streamType, a.expected, a.ids, a.types, a.schemaVersions, a.data, a.metadata,
		).Query(func(rows pgx.Rows) error {
			r, err := scanPlaced(rows, appends[i].Stream.ID)
			results[i] = r
			return err
		})
	}

	// A batch sent outside a transaction runs as one implicit transaction:
	// any failing statement rolls back every statement before it.
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, appendError(err, appends)
	}
	for _, r := range results {
		if !r.Repeated {
			s.onAppend()
			break
		}
	}
	return results, nil
}

type appendArgs struct {
	streamID, streamType string
	expected             int64
	ids, types           []string
	schemaVersions       []int32
	data, metadata       []string
}

func buildArgs(appends []StreamAppend) ([]appendArgs, error) {
	if len(appends) == 0 {
		return nil, fmt.Errorf("%w: no streams", ErrInvalid)
	}
	seen := make(map[string]bool, len(appends))
	out := make([]appendArgs, len(appends))
	for i, a := range appends {
		if a.Stream.ID == "" || a.Stream.Type == "" {
			return nil, fmt.Errorf("%w: stream id and type are required", ErrInvalid)
		}
		if seen[a.Stream.ID] {
			return nil, fmt.Errorf("%w: stream %s named twice", ErrInvalid, a.Stream.ID)
		}
		seen[a.Stream.ID] = true
		if len(a.Events) == 0 {
			return nil, fmt.Errorf("%w: no events for stream %s", ErrInvalid, a.Stream.ID)
		}
		x := appendArgs{
			streamID: a.Stream.ID, streamType: a.Stream.Type, expected: a.Expected.v,
			ids: make([]string, len(a.Events)), types: make([]string, len(a.Events)),
			schemaVersions: make([]int32, len(a.Events)),
			data:           make([]string, len(a.Events)), metadata: make([]string, len(a.Events)),
		}
		for j, e := range a.Events {
			id := e.ID
			if id == "" {
				id = ulid.Make().String()
			} else if _, err := ulid.ParseStrict(id); err != nil {
				return nil, fmt.Errorf("%w: event id %q is not a ULID", ErrInvalid, id)
			}
			if e.Type == "" {
				return nil, fmt.Errorf("%w: event %d of stream %s has no type", ErrInvalid, j, a.Stream.ID)
			}
			sv := e.SchemaVersion
			if sv == 0 {
				sv = 1
			}
			data := e.Data
			if len(data) == 0 {
				data = json.RawMessage(`{}`)
			}
			if !json.Valid(data) {
				return nil, fmt.Errorf("%w: event %d of stream %s: data is not JSON", ErrInvalid, j, a.Stream.ID)
			}
			md := e.Metadata
			if md.Tenant == "" {
				md.Tenant = DefaultTenant
			}
			mdJSON, err := json.Marshal(md)
			if err != nil {
				return nil, fmt.Errorf("encode metadata: %w", err)
			}
			x.ids[j], x.types[j], x.schemaVersions[j] = id, e.Type, int32(sv)
			x.data[j], x.metadata[j] = string(data), string(mdJSON)
		}
		out[i] = x
	}
	return out, nil
}

func scanPlaced(rows pgx.Rows, streamID string) (AppendResult, error) {
	r := AppendResult{StreamID: streamID}
	for rows.Next() {
		var p Placed
		if err := rows.Scan(&p.EventID, &p.Cursor.Position, &p.Version, &p.Cursor.TransactionID, &p.RecordedAt, &r.Repeated); err != nil {
			return r, fmt.Errorf("scan appended event: %w", err)
		}
		r.Events = append(r.Events, p)
	}
	if err := rows.Err(); err != nil {
		return r, err
	}
	r.Version = r.Last().Version
	return r, nil
}

// appendError turns the database's answer into the store's errors.
func appendError(err error, appends []StreamAppend) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return fmt.Errorf("append: %w", err)
	}
	switch pgErr.Code {
	case codeConflict:
		var d struct {
			StreamID string `json:"stream_id"`
			Current  int    `json:"current"`
		}
		if jerr := json.Unmarshal([]byte(pgErr.Detail), &d); jerr != nil {
			return fmt.Errorf("append: conflict with unreadable detail %q: %w", pgErr.Detail, ErrConflict)
		}
		ce := &ConflictError{StreamID: d.StreamID, Current: d.Current}
		for _, a := range appends {
			if a.Stream.ID == d.StreamID {
				ce.Expected = a.Expected
			}
		}
		return ce
	case codeIDReused:
		return fmt.Errorf("append: %w", ErrEventIDReused)
	case codeStreamType:
		return fmt.Errorf("append: %w: %s", ErrStreamType, pgErr.Message)
	case codeUniqueViolat:
		// Two appends of the same event ids to different streams raced past
		// the id check; the loser's ids are recorded now.
		return fmt.Errorf("append: %w", ErrEventIDReused)
	}
	return fmt.Errorf("append: %w", err)
}
