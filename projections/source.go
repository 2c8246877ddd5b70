package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

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
	// read receives the events of the batch (see readEvents).
	read *readEvents
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
// data; the event itself goes to the batch's readEvents, where the handler
// takes it (see readEvents).
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
	s.read.put(&r)
	// The subscriber reads only Offset, Msg and ExtraData of a row.
	return wsql.Row{
		Offset:    r.Position,
		Msg:       message.NewMessage(r.EventID, message.Payload(r.Data)),
		ExtraData: map[string]any{"transaction_id": wsql.XID8(r.TransactionID)},
	}, nil
}

// withExtra scans a row's columns after eventstore.Columns into extra.
type withExtra struct {
	row   wsql.Scanner
	extra []any
}

func (r withExtra) Scan(dest ...any) error { return r.row.Scan(append(dest, r.extra...)...) }

// readEvents are the events the subscriber read for the batch in hand, by
// event id. A message carries only its event's id and data through the
// subscriber, and the handler takes the event from here: spelling the
// event out as message metadata, to be parsed back, cost more than some
// projections' Apply. A batch's events are all read before the first is
// handed out, and the next batch begins (emptying this) after the last is
// acked; a message handed out again (nacked) is still here.
//
// With an opener, the first take opens every event of the batch at once
// (one read of the key store a batch, not one an event).
type readEvents struct {
	mu   sync.Mutex
	byID map[string]*readEvent
	// opener opens the events (nil: they are handed out as stored);
	// only those of types, when not nil, are opened: the others are
	// markers Apply ignores (see Selective).
	opener eventstore.Opener
	types  []string
	// unopened are the batch's events to open, in log order.
	unopened []*readEvent
	// one is set once the batch failed to open for a reason of one of
	// its events: each is then opened alone, so that the projection
	// stops at the event that fails.
	one bool
	// failed is why the batch could not be opened, after a passing error:
	// its other events fail alike, without asking the key store again
	// (the batch is doomed and read again).
	failed error
}

// readEvent is one event of the batch, and whether it is opened yet.
type readEvent struct {
	rec    eventstore.Recorded
	opened bool
}

func (r *readEvents) reset() {
	r.mu.Lock()
	clear(r.byID)
	r.unopened, r.one, r.failed = nil, false, nil
	r.mu.Unlock()
}

func (r *readEvents) put(e *eventstore.Recorded) {
	r.mu.Lock()
	if r.byID == nil {
		r.byID = map[string]*readEvent{}
	}
	x := &readEvent{rec: *e, opened: r.opener == nil || (r.types != nil && !slices.Contains(r.types, e.Type))}
	r.byID[e.EventID] = x
	if !x.opened {
		r.unopened = append(r.unopened, x)
	}
	r.mu.Unlock()
}

// take returns the event of msg, opened.
func (r *readEvents) take(ctx context.Context, msg *message.Message) (eventstore.Recorded, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.byID[msg.UUID]
	if !ok {
		return eventstore.Recorded{EventID: msg.UUID}, fmt.Errorf("event %s is not among those read for this batch", msg.UUID)
	}
	if !e.opened {
		if err := r.open(ctx, e); err != nil {
			return e.rec, err
		}
	}
	return e.rec, nil
}

// open opens e: with the rest of the batch, unless the batch failed to
// open for one of its events.
func (r *readEvents) open(ctx context.Context, e *readEvent) error {
	if r.failed != nil {
		return r.failed
	}
	if !r.one {
		err := openEach(ctx, r.opener, r.unopened)
		if err == nil {
			r.unopened = nil
			return nil
		}
		if transient(err) {
			r.failed = fmt.Errorf("open the batch's events: %w", err)
			return r.failed
		}
		r.one = true
	}
	if err := openEach(ctx, r.opener, []*readEvent{e}); err != nil {
		return fmt.Errorf("open event %s: %w", e.rec.EventID, err)
	}
	return nil
}

// openEach opens es with o in one call; they change only if all open.
func openEach(ctx context.Context, o eventstore.Opener, es []*readEvent) error {
	recs := make([]eventstore.Recorded, len(es))
	for i, e := range es {
		recs[i] = e.rec
	}
	if err := o.Open(ctx, recs); err != nil {
		return err
	}
	for i, e := range es {
		e.rec, e.opened = recs[i], true
	}
	return nil
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
