package projections

import (
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"

	"github.com/arq-memory/arq/eventstore"
)

// topic is the Watermill topic name of the event log.
const topic = "events"

// checkpointTable holds one row per projection in the layout of
// watermill-sql's Postgres offsets adapter (migrations/00002_projections.sql).
const checkpointTable = "projection_checkpoints"

// offsetsAdapter stores each projection's checkpoint.
var offsetsAdapter = wsql.DefaultPostgreSQLOffsetsAdapter{
	GenerateMessagesOffsetsTableName: func(string) string { return checkpointTable },
}

// logSource is a watermill-sql SchemaAdapter over ARQ's events table: the
// subscriber reads the log where commands wrote it, with no second copy.
type logSource struct {
	batchSize, carefulBatchSize int
	careful                     *atomic.Bool
	// until, when set, bounds the read (see Config.Until).
	until func() eventstore.Cursor
	// types, when not nil, are the only event types the projection
	// applies (see Selective); a batch then looks at up to window events
	// and reads those of these types, and the last one it looked at.
	types  []string
	window int
	// scanned is how many events the current batch looked at, when it
	// reads selectively: a batch that looked at window events may have
	// more waiting.
	scanned *atomic.Int64
}

// SelectQuery reads the next batch after the projection's checkpoint in
// commit-safe order: by transaction id, then position, and only below the
// oldest transaction still running (see eventstore.Cursor).
func (s logSource) SelectQuery(p wsql.SelectQueryParams) (wsql.Query, error) {
	next, err := p.OffsetsAdapter.NextOffsetQuery(wsql.NextOffsetQueryParams{Topic: p.Topic, ConsumerGroup: p.ConsumerGroup})
	if err != nil {
		return wsql.Query{}, err
	}
	// The checkpoint row is locked FOR UPDATE in the CTE, so two processes
	// running one projection take turns batch by batch.
	// ORDER BY and LIMIT sit inside the query with the CTE: outside it,
	// Postgres cannot push them into the subquery and reads every event
	// after the checkpoint to sort them (2 s a batch on a log of 1M).
	after := `(transaction_id, position) > (
			(SELECT last_processed_transaction_id FROM last_processed),
			(SELECT offset_acked FROM last_processed))
		  AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())` + s.bound()
	if s.types != nil {
		return s.selectiveQuery(next, after), nil
	}
	q := `WITH last_processed AS (` + next.Query + `)
		SELECT ` + eventstore.Columns + ` FROM events
		WHERE ` + after + `
		ORDER BY transaction_id, position
		LIMIT ` + strconv.Itoa(s.limit())
	return wsql.Query{Query: q, Args: next.Args}, nil
}

// selectiveQuery reads the next batch of a Selective projection: it looks
// at the next window events after the checkpoint and returns those of the
// projection's types, up to the batch size, and the last event it looked
// at if that is of another type (a marker, which Apply ignores). The
// subscriber acks the last row it gets, so the checkpoint moves over every
// event looked at, as if each had been applied: waiters, status and
// online rebuilds see the same checkpoints as without the selection.
//
// In the window, nth counts the events wanted so far and rn the events
// looked at; at_end marks the last event readable now. The batch ends at
// its batch-th wanted event (the outer LIMIT stops the scan there), or at
// the window's last event, or at the end of what is readable.
func (s logSource) selectiveQuery(next wsql.Query, after string) wsql.Query {
	wanted := `event_type = ANY ($` + strconv.Itoa(len(next.Args)+1) + `::text[])`
	limit, window := strconv.Itoa(s.limit()), strconv.Itoa(s.window)
	q := `WITH last_processed AS (` + next.Query + `)
		SELECT ` + eventstore.Columns + `, rn FROM (
			SELECT ` + eventstore.Columns + `, ` + wanted + ` AS wanted,
				count(*) FILTER (WHERE ` + wanted + `) OVER w AS nth,
				row_number() OVER w AS rn,
				lead(position) OVER w IS NULL AS at_end
			FROM events
			WHERE ` + after + `
			WINDOW w AS (ORDER BY transaction_id, position ROWS UNBOUNDED PRECEDING)
			ORDER BY transaction_id, position
			LIMIT ` + window + `
		) scan
		WHERE (wanted AND nth <= ` + limit + `) OR (NOT wanted AND (rn = ` + window + ` OR at_end))
		ORDER BY transaction_id, position
		LIMIT ` + limit
	return wsql.Query{Query: q, Args: append(append([]any{}, next.Args...), s.types)}
}

// bound is the condition that stops the read at s.until, if set; it is
// asked anew for every poll. The cursor's numbers are written into the
// query: they are integers.
func (s logSource) bound() string {
	if s.until == nil {
		return ""
	}
	u := s.until()
	return "\n\t\t  AND (transaction_id, position) <= ('" + strconv.FormatUint(u.TransactionID, 10) +
		"'::xid8, " + strconv.FormatInt(u.Position, 10) + ")"
}

func (s logSource) limit() int {
	if s.careful != nil && s.careful.Load() {
		return s.carefulBatchSize
	}
	return s.batchSize
}

// UnmarshalMessage turns a row into a message whose payload is the event's
// data and whose metadata carries the rest of the event (see decode).
func (s logSource) UnmarshalMessage(p wsql.UnmarshalMessageParams) (wsql.Row, error) {
	var row pgx.Row = p.Row
	var rn int64
	if s.types != nil {
		row = withExtra{p.Row, []any{&rn}}
	}
	r, err := eventstore.ScanRecorded(row)
	if err != nil {
		return wsql.Row{}, err
	}
	if s.types != nil {
		s.scanned.Store(rn)
	}
	msg := message.NewMessage(r.EventID, message.Payload(r.Data))
	msg.Metadata = message.Metadata{
		"position":       strconv.FormatInt(r.Position, 10),
		"transaction_id": strconv.FormatUint(r.TransactionID, 10),
		"stream_id":      r.StreamID,
		"stream_type":    r.StreamType,
		"version":        strconv.Itoa(r.Version),
		"event_type":     r.Type,
		"schema_version": strconv.Itoa(r.SchemaVersion),
		"recorded_at":    r.RecordedAt.Format(time.RFC3339Nano),
		"correlation_id": r.Metadata.CorrelationID,
		"causation_id":   r.Metadata.CausationID,
		"actor":          r.Metadata.Actor,
		"tenant":         r.Metadata.Tenant,
	}
	return wsql.Row{
		Offset:    r.Position,
		UUID:      []byte(r.EventID),
		Payload:   r.Data,
		Msg:       msg,
		ExtraData: map[string]any{"transaction_id": wsql.XID8(r.TransactionID)},
	}, nil
}

// withExtra scans a row's columns after eventstore.Columns into extra.
type withExtra struct {
	row   wsql.Scanner
	extra []any
}

func (r withExtra) Scan(dest ...any) error { return r.row.Scan(append(dest, r.extra...)...) }

// decode is UnmarshalMessage's inverse.
func decode(msg *message.Message) (eventstore.Recorded, error) {
	m := msg.Metadata
	var errs []error
	num := func(key string) int64 {
		n, err := strconv.ParseInt(m.Get(key), 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
		return n
	}
	r := eventstore.Recorded{
		Position:      num("position"),
		EventID:       msg.UUID,
		StreamID:      m.Get("stream_id"),
		StreamType:    m.Get("stream_type"),
		Version:       int(num("version")),
		Type:          m.Get("event_type"),
		SchemaVersion: int(num("schema_version")),
		Data:          []byte(msg.Payload),
		Metadata: eventstore.Metadata{
			CorrelationID: m.Get("correlation_id"),
			CausationID:   m.Get("causation_id"),
			Actor:         m.Get("actor"),
			Tenant:        m.Get("tenant"),
		},
	}
	tx, err := strconv.ParseUint(m.Get("transaction_id"), 10, 64)
	if err != nil {
		errs = append(errs, fmt.Errorf("transaction_id: %w", err))
	}
	r.TransactionID = tx
	if r.RecordedAt, err = time.Parse(time.RFC3339Nano, m.Get("recorded_at")); err != nil {
		errs = append(errs, fmt.Errorf("recorded_at: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return r, fmt.Errorf("decode event message %s: %w", msg.UUID, err)
	}
	return r, nil
}

// InsertQuery is refused: events enter the log through eventstore.Store only.
func (logSource) InsertQuery(wsql.InsertQueryParams) (wsql.Query, error) {
	return wsql.Query{}, errors.New("the event log is appended through eventstore.Store, not published to")
}

// SchemaInitializingQueries is empty: migrations own the schema.
func (logSource) SchemaInitializingQueries(wsql.SchemaInitializingQueriesParams) ([]wsql.Query, error) {
	return nil, nil
}

// SubscribeIsolationLevel is repeatable read, as watermill-sql's Postgres
// schema uses: one snapshot for the checkpoint lock and the batch.
func (logSource) SubscribeIsolationLevel() sql.IsolationLevel { return sql.LevelRepeatableRead }
