package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/oklog/ulid/v2"
)

// Store appends to and reads the event log in Postgres.
type Store struct {
	pool     *pgxpool.Pool
	onAppend func(...Appended)
	group    *group // nil: every append on its own
	sealer   Sealer // nil: events are stored as given
	log      *slog.Logger
	// outcomeWait bounds how long an append whose caller gave up is
	// still seen through, so that the caller hears whether it was written.
	outcomeWait time.Duration
	// appendLimit bounds an append's statements from when they are
	// started (AppendLimit).
	appendLimit time.Duration
}

// AppendLimit bounds how long an append's statements run once started
// (waiting for a stream's lock included): an append not ended by then is
// cut short, and its error is ErrOutcomeUnknown. Whoever decides that an
// append has been abandoned (see api.Idempotency) can count on it: no
// append started earlier than this commits later, as long as the store's
// pool cancels statements in Postgres (see internal/pgcancel).
const AppendLimit = 40 * time.Second

// Option configures a Store.
type Option func(*Store)

// WithAppendHook calls f after appends that wrote events, with what each
// wrote, e.g. to wake projectors (see Notifier.Notify). f must not block.
func WithAppendHook(f func(...Appended)) Option { return func(s *Store) { s.onAppend = f } }

// WithLogger logs what the store works around on its own, such as a batch
// of appends that failed and was redone append by append. The default
// discards it.
func WithLogger(l *slog.Logger) Option { return func(s *Store) { s.log = l } }

// New returns a Store over pool, whose database has ARQ's migrations applied.
func New(pool *pgxpool.Pool, opts ...Option) *Store {
	s := &Store{pool: pool, onAppend: func(...Appended) {}, group: newGroup(DefaultGroupCommit), log: slog.New(slog.DiscardHandler), outcomeWait: 10 * time.Second, appendLimit: AppendLimit}
	for _, o := range opts {
		o(s)
	}
	return s
}

// StreamAppend is one stream's part of an AppendMulti. With no events it is
// a guard: the stream must be at Expected and stay there until the append
// commits, but gets nothing, e.g. a message append guards its session
// against a concurrent close. A guard takes the stream's lock shared, so
// appends guarding one stream (the sessions of one user) do not wait for
// each other; a writer of the stream waits for them, and they for it.
type StreamAppend struct {
	Stream   Stream
	Expected Expected
	Events   []Event
}

// appendSQL appends one stream's events if the stream is at the expected
// version ($3; -1 for any) and of the given type, and returns no row
// otherwise. It first takes the stream's advisory lock (see
// migrations/00001_event_log.sql for why every writer takes it before
// writing). The statement's snapshot may predate the lock: if another
// writer committed to the stream meanwhile, the computed versions collide
// with its rows and the insert fails on events_stream_version_key, which
// the caller treats like any concurrent writer. A repeated event id fails
// on events_event_id_key. Unusual outcomes are explained afterwards by
// explain; the common case is this one statement. Each event's hash
// chains to the one before it (the head's, then each new event's in turn;
// see migrations/00011_hash_chain.sql).
const appendSQL = `WITH RECURSIVE head AS (
		SELECT version, stream_type, hash FROM events WHERE stream_id = $1 ORDER BY version DESC LIMIT 1
	), n AS (
		SELECT * FROM unnest($4::text[], $5::text[], $6::integer[], $7::jsonb[], $8::jsonb[]) WITH ORDINALITY AS n(id, typ, sv, d, m, ord)
	), chain (ord, hash) AS (
		SELECT 0::bigint, (SELECT hash FROM head)
		UNION ALL
		SELECT n.ord, arq_event_hash(chain.hash, n.id, $1, $2, coalesce((SELECT version FROM head), 0) + n.ord::integer,
			n.typ, n.sv, now(), n.d, n.m)
		FROM chain JOIN n ON n.ord = chain.ord + 1
	)
	INSERT INTO events AS e (event_id, stream_id, stream_type, version, event_type, schema_version, data, metadata, recorded_at, hash)
	SELECT n.id, $1, $2, coalesce((SELECT version FROM head), 0) + n.ord::integer, n.typ, n.sv, n.d, n.m, now(), chain.hash
	FROM n JOIN chain ON chain.ord = n.ord
	WHERE (SELECT pg_advisory_xact_lock(hashtextextended($1, 0))) IS NOT NULL
	  AND ($3::bigint < 0 OR coalesce((SELECT version FROM head), 0) = $3::bigint)
	  AND coalesce((SELECT stream_type FROM head), $2) = $2
	ORDER BY n.ord
	RETURNING e.stream_id, e.event_id, e.position, e.version, e.transaction_id, e.recorded_at`

// appendOneSQL is appendSQL for one event, without the recursive chain and
// with scalar parameters instead of arrays to unnest: most appends carry
// one event, and this form is the cheaper one on both ends of the wire.
const appendOneSQL = `WITH head AS (
		SELECT version, stream_type, hash FROM events WHERE stream_id = $1 ORDER BY version DESC LIMIT 1
	)
	INSERT INTO events AS e (event_id, stream_id, stream_type, version, event_type, schema_version, data, metadata, recorded_at, hash)
	SELECT $4::text, $1, $2, coalesce((SELECT version FROM head), 0) + 1, $5::text, $6::integer, $7::jsonb, $8::jsonb, now(),
		arq_event_hash((SELECT hash FROM head), $4::text, $1, $2, coalesce((SELECT version FROM head), 0) + 1, $5::text, $6::integer, now(), $7::jsonb, $8::jsonb)
	WHERE (SELECT pg_advisory_xact_lock(hashtextextended($1, 0))) IS NOT NULL
	  AND ($3::bigint < 0 OR coalesce((SELECT version FROM head), 0) = $3::bigint)
	  AND coalesce((SELECT stream_type FROM head), $2) = $2
	RETURNING e.stream_id, e.event_id, e.position, e.version, e.transaction_id, e.recorded_at`

// lockStreamsSQL takes the advisory locks of the streams $1 in key order,
// so that writers of overlapping streams never wait on each other in a
// circle: exclusive for a stream written ($2 true), shared for a guarded
// one. (The locks are volatile calls, so Postgres makes them after the
// sort.) A statement sent after it in the same transaction reads the
// streams with a snapshot taken under the locks.
const lockStreamsSQL = `SELECT CASE WHEN x THEN pg_advisory_xact_lock(k) ELSE pg_advisory_xact_lock_shared(k) END FROM (
		SELECT hashtextextended(s, 0) AS k, bool_or(x) AS x FROM unnest($1::text[], $2::bool[]) AS u (s, x) GROUP BY 1) keys ORDER BY k`

// Constraint names of the events table (migrations/00001_event_log.sql).
const (
	constraintStreamVersion = "events_stream_version_key"
	constraintEventID       = "events_event_id_key"
	codeUniqueViolation     = "23505"
	// Raised by arq_check_stream (migrations/00006_stream_check.sql).
	codeVersionCheck = "AQ001"
	codeTypeCheck    = "AQ002"
)

// maxRaces bounds how often an append with Any() is retried when another
// writer of the same stream committed first.
const maxRaces = 20

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
// happen or none does. Every stream's lock is taken before the first
// write, so each stream's events stay in version order in the commit-safe
// read of the log. Under concurrent load the append may share its
// transaction with others (see WithGroupCommit). If ctx ends while the
// append waits for its batch, it is not written; once its batch is being
// written, the call returns at once but the append may still be written,
// as when a statement is cancelled in flight.
func (s *Store) AppendMulti(ctx context.Context, appends ...StreamAppend) ([]AppendResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("append: %w", err) // given up before anything was sent
	}
	appends, keep, err := s.seal(ctx, appends)
	if err != nil {
		return nil, err
	}
	args, err := buildArgs(appends)
	if err != nil {
		return nil, err
	}
	args[0].keep = keep
	writes := 0
	for _, a := range args {
		if !a.guard() {
			writes++
		}
	}
	if writes == 0 {
		return nil, fmt.Errorf("%w: no events to append", ErrInvalid)
	}
	if s.group != nil && groupable(args) {
		return s.group.append(ctx, s, args)
	}
	return s.appendDirect(ctx, args, time.Now().Add(s.appendLimit))
}

// appendDirect appends on its own, in the statements that suit args.
// Once sent, an append is seen through when its caller gives up, for
// s.outcomeWait more: a statement cut short may have committed all the
// same, and the caller must hear whether it did (a client retrying an
// append it was told failed would append it twice). Cut short after that,
// the error is ErrOutcomeUnknown, as it is when deadline (AppendLimit
// from the start) passes first.
func (s *Store) appendDirect(callerCtx context.Context, args []appendArgs, deadline time.Time) ([]AppendResult, error) {
	ctx, cancel := context.WithDeadline(context.WithoutCancel(callerCtx), deadline)
	defer cancel()
	var cutShort atomic.Bool
	stop := context.AfterFunc(callerCtx, func() {
		time.AfterFunc(s.outcomeWait, func() { cutShort.Store(true); cancel() })
	})
	defer stop()
	results, err := s.appendDirectOn(ctx, args)
	if err != nil && (cutShort.Load() || errors.Is(ctx.Err(), context.DeadlineExceeded)) {
		return nil, fmt.Errorf("%w (%w): %w", ErrOutcomeUnknown, context.Cause(ctx), err)
	}
	if lostInFlight(err) {
		return nil, fmt.Errorf("%w (the connection was lost once the append was sent): %w", ErrOutcomeUnknown, err)
	}
	return results, err
}

// lostInFlight tells whether err is the loss of the connection after an
// append was sent: the server may have committed it all the same, and a
// client told it failed would append it twice. A connection that could
// not be had, a write that sent nothing (pgconn.SafeToRetry), and an
// answer of the server (a PgError, even one ending the connection: it
// ended the statement first) are not.
func lostInFlight(err error) bool {
	if err == nil || pgconn.SafeToRetry(err) || !unreachable(err) {
		return false
	}
	var pgErr *pgconn.PgError
	var connectErr *pgconn.ConnectError
	return !errors.As(err, &pgErr) && !errors.As(err, &connectErr)
}

func (s *Store) appendDirectOn(ctx context.Context, args []appendArgs) ([]AppendResult, error) {
	for race := 0; ; race++ {
		var err error
		var results []AppendResult
		if len(args) == 1 {
			results, err = s.appendOne(ctx, args[0])
		} else {
			results, err = s.appendMany(ctx, args)
		}
		var lost lostRace
		if errors.As(err, &lost) && race < maxRaces {
			continue // another writer moved an Any() stream first
		}
		if err != nil {
			return nil, err
		}
		if a, ok := appended(args, results); ok {
			s.onAppend(a)
		}
		return results, nil
	}
}

// appendOne appends to one stream in one autocommit statement.
func (s *Store) appendOne(ctx context.Context, a appendArgs) ([]AppendResult, error) {
	if a.keep != nil {
		return s.appendMany(ctx, []appendArgs{a}) // the keys first, in its transaction
	}
	rows, err := s.pool.Query(ctx, a.sql(), a.queryArgs()...)
	if err != nil {
		return nil, fmt.Errorf("append: %w", err)
	}
	r, err := scanPlaced(rows, a.streamID)
	if err == nil && len(r.Events) == len(a.ids) {
		return []AppendResult{r}, nil
	}
	r, err = s.explain(ctx, a, err)
	if err != nil {
		return nil, err
	}
	return []AppendResult{r}, nil
}

// appendMany appends to several streams in one round trip: the locks, in
// key order, then a head check of every stream (arq_check_stream, see
// migrations/00006_stream_check.sql), then one insert per writing stream.
// pgx sends a batch as one implicit transaction, so a failed check or
// insert rolls back all of it.
func (s *Store) appendMany(ctx context.Context, args []appendArgs) ([]AppendResult, error) {
	ids := make([]string, len(args))
	writes := make([]bool, len(args))
	for i, a := range args {
		ids[i], writes[i] = a.streamID, !a.guard()
	}
	b := &pgx.Batch{}
	b.Queue(lockStreamsSQL, ids, writes)
	keep := args[0].keep
	if keep != nil {
		b.Queue(keep.SQL, keep.Args...)
	}
	res := make([]AppendResult, len(args))
	failed := -1
	var failure error
	writers := 0
	for _, a := range args {
		if !a.guard() {
			writers++
		}
	}
	for i, a := range args {
		if !a.guard() && writers == 1 {
			// A lone writer's insert checks its own head; with nothing else
			// to write, it cannot leave a part behind.
			continue
		}
		b.Queue(`SELECT arq_check_stream($1, $2, $3)`, a.streamID, a.streamType, a.expected.v).QueryRow(func(row pgx.Row) error {
			var v int64
			err := row.Scan(&v)
			if err != nil && failed < 0 {
				failed, failure = i, err
			}
			res[i] = AppendResult{StreamID: a.streamID, Version: int(v)}
			return err
		})
	}
	for i, a := range args {
		if a.guard() {
			continue
		}
		b.Queue(a.sql(), a.queryArgs()...).Query(func(rows pgx.Rows) error {
			r, err := scanPlaced(rows, a.streamID)
			res[i] = r
			if err != nil && failed < 0 {
				failed, failure = i, err
			}
			return err
		})
	}
	batchErr := s.pool.SendBatch(ctx, b).Close()
	if err := refusal(keep, batchErr); err != nil {
		return nil, err // the events' person was erased: nothing was written
	}
	if batchErr == nil {
		for i, a := range args {
			if a.guard() || len(res[i].Events) == len(a.ids) {
				continue
			}
			if writers > 1 {
				// Cannot happen under the locks and checks; never report
				// a part as the whole.
				return nil, fmt.Errorf("append: stream %s took %d of %d events", a.streamID, len(res[i].Events), len(a.ids))
			}
			failed = i // the lone writer's head was not as expected
			break
		}
		if failed < 0 {
			return res, nil
		}
	} else if failed < 0 {
		return nil, fmt.Errorf("append: %w", batchErr)
	}
	a := args[failed]
	var pgErr *pgconn.PgError
	if errors.As(failure, &pgErr) {
		switch pgErr.Code {
		case codeVersionCheck:
			current, _ := strconv.Atoi(pgErr.Detail)
			return nil, &ConflictError{StreamID: a.streamID, Expected: a.expected, Current: current}
		case codeTypeCheck:
			return nil, fmt.Errorf("append: %w: stream %s has type %s, not %s", ErrStreamType, a.streamID, pgErr.Detail, a.streamType)
		}
	}
	r, err := s.explain(ctx, a, failure)
	if err != nil {
		return nil, err
	}
	if r.Repeated {
		if res, ok := repeatedWithGuards(args, failed, r); ok {
			return res, nil
		}
		// A repeat of one stream's part alone is no retry of the whole.
		return nil, fmt.Errorf("append: %w", ErrEventIDReused)
	}
	return nil, lostRace{}
}

// repeatedWithGuards is the original result of an append whose one
// writing stream, args[writer], repeated all its events, and whose other
// streams are guards at exact versions: those versions are what the guards
// were at when it was first made. False when the append wrote to more
// than one stream or has a guard at any version.
func repeatedWithGuards(args []appendArgs, writer int, r AppendResult) ([]AppendResult, bool) {
	res := make([]AppendResult, len(args))
	for i, a := range args {
		switch {
		case i == writer:
			res[i] = r
		case !a.guard() || a.expected.v < 0:
			return nil, false
		default:
			res[i] = AppendResult{StreamID: a.streamID, Version: int(a.expected.v), Repeated: true}
		}
	}
	return res, true
}

// lostRace reports that another writer committed to an Any() stream between
// reading its version and inserting; the append is tried again.
type lostRace struct{}

func (lostRace) Error() string { return "append: lost a race with another writer" }

// explain says why an append statement wrote fewer events than it was
// given: a repeat (the original result), a version conflict, a stream type
// mismatch, reused ids, or a race to retry. cause is the statement's error,
// if it failed rather than matched no row.
func (s *Store) explain(ctx context.Context, a appendArgs, cause error) (AppendResult, error) {
	var pgErr *pgconn.PgError
	if cause != nil && !(errors.As(cause, &pgErr) && pgErr.Code == codeUniqueViolation) {
		return AppendResult{}, fmt.Errorf("append: %w", cause)
	}
	recorded, err := s.recorded(ctx, a)
	if err != nil {
		return AppendResult{}, err
	}
	switch {
	case len(recorded.Events) == len(a.ids):
		return recorded, nil
	case len(recorded.Events) > 0:
		return AppendResult{}, fmt.Errorf("append: %w", ErrEventIDReused)
	}
	var current int
	var typ string
	err = s.pool.QueryRow(ctx, `SELECT version, stream_type FROM events WHERE stream_id = $1
		ORDER BY version DESC LIMIT 1`, a.streamID).Scan(&current, &typ)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return AppendResult{}, fmt.Errorf("append: read stream head: %w", err)
	}
	switch {
	case typ != "" && typ != a.streamType:
		return AppendResult{}, fmt.Errorf("append: %w: stream %s has type %s, not %s", ErrStreamType, a.streamID, typ, a.streamType)
	case a.expected.v >= 0 && int64(current) != a.expected.v:
		return AppendResult{}, &ConflictError{StreamID: a.streamID, Expected: a.expected, Current: current}
	}
	return AppendResult{}, lostRace{}
}

// recorded returns the events of a that the log holds already, as the
// original append reported them. Ids the log holds in another stream are
// no repeat of a: ErrEventIDReused.
func (s *Store) recorded(ctx context.Context, a appendArgs) (AppendResult, error) {
	rows, err := s.pool.Query(ctx, `SELECT stream_id, event_id, position, version, transaction_id, recorded_at
		FROM events WHERE event_id = ANY ($1) ORDER BY position`, a.ids)
	if err != nil {
		return AppendResult{}, fmt.Errorf("append: look up event ids: %w", err)
	}
	r := AppendResult{StreamID: a.streamID, Repeated: true}
	elsewhere := false
	err = eachPlaced(rows, func(stream string, p Placed) {
		elsewhere = elsewhere || stream != a.streamID
		r.Events = append(r.Events, p)
	})
	if err != nil {
		return AppendResult{}, fmt.Errorf("append: look up event ids: %w", err)
	}
	if elsewhere {
		return AppendResult{}, fmt.Errorf("append: %w: in another stream than %s", ErrEventIDReused, a.streamID)
	}
	r.Version = r.Last().Version
	return r, nil
}

// eachPlaced calls f with each row of rows (stream_id, event_id,
// position, version, transaction_id, recorded_at), then closes them.
func eachPlaced(rows pgx.Rows, f func(stream string, p Placed)) error {
	defer rows.Close()
	for rows.Next() {
		var stream string
		var p Placed
		if err := rows.Scan(&stream, &p.EventID, &p.Cursor.Position, &p.Version, &p.Cursor.TransactionID, &p.RecordedAt); err != nil {
			return fmt.Errorf("scan event place: %w", err)
		}
		f(stream, p)
	}
	return rows.Err()
}

type appendArgs struct {
	streamID, streamType string
	expected             Expected
	ids, types           []string
	schemaVersions       []int32
	data, metadata       []string
	// keep, on an append's first stream only, is the append's Keep.
	keep *Keep
}

func (a appendArgs) guard() bool { return len(a.ids) == 0 }

// sql is the append statement for a's number of events.
func (a appendArgs) sql() string {
	if len(a.ids) == 1 {
		return appendOneSQL
	}
	return appendSQL
}

func (a appendArgs) queryArgs() []any {
	if len(a.ids) == 1 {
		return []any{a.streamID, a.streamType, a.expected.v, a.ids[0], a.types[0], a.schemaVersions[0], a.data[0], a.metadata[0]}
	}
	return []any{a.streamID, a.streamType, a.expected.v, a.ids, a.types, a.schemaVersions, a.data, a.metadata}
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
		if len(a.Events) == 0 && len(appends) == 1 {
			return nil, fmt.Errorf("%w: no events for stream %s", ErrInvalid, a.Stream.ID)
		}
		x := appendArgs{
			streamID: a.Stream.ID, streamType: a.Stream.Type, expected: a.Expected,
			ids: make([]string, len(a.Events)), types: make([]string, len(a.Events)),
			schemaVersions: make([]int32, len(a.Events)),
			data:           make([]string, len(a.Events)), metadata: make([]string, len(a.Events)),
		}
		for j, e := range a.Events {
			id := e.ID
			if id == "" {
				id = newEventID()
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
	err := eachPlaced(rows, func(_ string, p Placed) { r.Events = append(r.Events, p) })
	if err != nil {
		return r, err
	}
	r.Version = r.Last().Version
	return r, nil
}

// appended is what an append of args that gave results wrote, for the
// append hook; ok is false when it wrote nothing (every stream's events
// were recorded before, or it only guarded streams).
func appended(args []appendArgs, results []AppendResult) (a Appended, ok bool) {
	for i, r := range results {
		if r.Repeated || args[i].guard() {
			continue
		}
		ok = true
		if last := r.Last().Cursor; a.Last.Less(last) {
			a.Last = last
		}
		for _, t := range args[i].types {
			if !slices.Contains(a.Types, t) {
				a.Types = append(a.Types, t)
			}
		}
	}
	return a, ok
}
