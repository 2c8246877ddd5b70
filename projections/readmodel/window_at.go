package readmodel

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/projections"
)

// Past folds messages and memories to their state at a place in the log
// (history.Reader does), many in one read: those that existed there, by
// id (not yet appended or stored, or redacted, deleted or recorded
// expired by then: absent).
type Past interface {
	MessagesAt(ctx context.Context, ids []string, at eventstore.Cursor) (map[string]*domain.Message, error)
	MemoriesAt(ctx context.Context, ids []string, at eventstore.Cursor) (map[string]*domain.Memory, error)
}

// WindowAt is the context window behind an assistant message: the window
// of the messages before it, with budget, as the log stood at the
// message's appended event. It is the same however late it is computed
// (the snapshot pass runs a moment later, or after a restart or a
// rebuild).
//
// What came after that event is left out by bounds the query tables
// answer by index: messages by sequence number, memories by the place of
// their stored event (StoredBy), summaries by version. What changed after
// it an item that existed then (edited, redacted, updated, deleted,
// expired; found by the log's index of such changes) is put back as it
// was, folded by past in one read, and the window is chosen among them as
// it would have been then. When nothing did, the window is read from the
// query tables alone, as Window reads it, so a pass far behind a busy log
// costs what a prompt one does.
func (r *Reader) WindowAt(ctx context.Context, messageID string, budget domain.Budget, tc domain.TokenCounter, past Past) (Window, error) {
	// One snapshot for the log and the tables: a row the tables show
	// changed after the message's event comes from an event this
	// snapshot sees too, so it is found below and put back.
	tx, err := r.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return Window{}, fmt.Errorf("window at message %s: %w", messageID, err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	in := &Reader{db: tx, pool: r.pool, opener: r.opener, vectors: r.vectors}
	at, err := in.placeOf(ctx, messageID)
	if err != nil {
		return Window{}, err
	}
	ch, err := in.changedAfter(ctx, at)
	if err != nil {
		return Window{}, err
	}
	req := WindowRequest{Budget: budget, BeforeSeq: at.seq, Now: at.recordedAt, UserID: at.userID, StoredBy: &at.cursor}
	var p *pastItems
	if !ch.none() {
		if p, err = in.pastAt(ctx, at, ch, past); err != nil {
			return Window{}, fmt.Errorf("window at message %s: %w", messageID, err)
		}
	}
	w, err := in.window(ctx, at.sessionID, req, tc, p)
	if err != nil {
		return Window{}, fmt.Errorf("window at message %s: %w", messageID, err)
	}
	return w, nil
}

// place is where a message was appended: its event's place in the log,
// its session, user and sequence number, and when.
type place struct {
	cursor            eventstore.Cursor
	sessionID, userID string
	seq               int
	recordedAt        time.Time
}

// placeOf finds a message's appended event (by the index of
// migrations/00012), also when the message is gone from the tables.
func (r *Reader) placeOf(ctx context.Context, messageID string) (place, error) {
	var p place
	err := r.db.QueryRow(ctx, `SELECT transaction_id::text::bigint, position, data->>'session_id', data->>'user_id', version, recorded_at
		FROM events WHERE event_type = $1 AND data->>'message_id' = $2`, domain.MessageAppended, messageID).
		Scan(&p.cursor.TransactionID, &p.cursor.Position, &p.sessionID, &p.userID, &p.seq, &p.recordedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, fmt.Errorf("%w: message %s", domain.ErrNotFound, messageID)
	}
	if err != nil {
		return p, fmt.Errorf("find message %s in the log: %w", messageID, err)
	}
	return p, nil
}

// changes are the things of a window that changed after a place in the
// log (or that the tables do not hold up to it yet).
type changes struct {
	messages, memories []string
	// redactedSeqs are the sequence numbers of the messages redacted:
	// a redaction withdraws summaries.
	redactedSeqs []int
	// summaries says the session has summaries after the place (or
	// after the tables' checkpoint); summariesAt is how many it had by
	// the place.
	summaries   bool
	summariesAt int
	// behind says the tables lack some events up to the place.
	behind bool
}

func (c changes) none() bool {
	return len(c.messages) == 0 && len(c.memories) == 0 && len(c.redactedSeqs) == 0 && !c.summaries
}

// windowProjections are the projections whose tables a window reads.
var windowProjections = []string{Messages{}.Name(), Memories{}.Name(), Context{}.Name()}

// changesAfterSQL lists, among the events after $1.$2 that change a
// message or a memory existing before them (the partial index of
// migrations/00024 holds just those, so the scan costs the changes, not
// the log after the place), those of the session's messages before seq
// $4 (found by their appended events in the session's log $3), and those
// of the user's ($5) memories stored by $1.$2 (a memory stored later is
// left out of the window by its stored place, whatever came after). Then
// the session's summaries ($6): how many after $7.$8, and how many by
// $1.$2. The conditions on the tail are the index's predicate, spelled as
// it is; each change looks up its entity's first event by index (LIMIT
// keeps the planner from reading those from the other end; a message id
// is compared in the collation of migrations/00012's index, not in the
// stream id's "C").
var changesAfterSQL = `WITH tail AS (
		SELECT stream_id, stream_type, event_type FROM events
		WHERE (transaction_id, position) > ($1::xid8, $2::bigint)
		  AND (stream_type = '` + domain.StreamMessage + `' OR (stream_type = '` + domain.StreamMemory + `' AND version > 1)))
	SELECT 'message', a.message_id, a.version, t.event_type FROM tail t
		CROSS JOIN LATERAL (SELECT data->>'message_id' AS message_id, version, stream_id FROM events
			WHERE event_type = '` + domain.MessageAppended + `'
			  AND data->>'message_id' = substr(t.stream_id, ` + strconv.Itoa(len(domain.StreamID(domain.StreamMessage, ""))+1) + `) COLLATE "default"
			LIMIT 1) a
		WHERE t.stream_type = '` + domain.StreamMessage + `' AND a.stream_id = $3 AND a.version < $4
	UNION ALL
	SELECT 'memory', substr(t.stream_id, ` + strconv.Itoa(len(domain.StreamID(domain.StreamMemory, ""))+1) + `), 0, t.event_type FROM tail t
		CROSS JOIN LATERAL (SELECT data->>'user_id' AS user_id, transaction_id, position FROM events
			WHERE stream_id = t.stream_id AND version = 1 LIMIT 1) s
		WHERE t.stream_type = '` + domain.StreamMemory + `' AND s.user_id = $5
		  AND (s.transaction_id, s.position) <= ($1::xid8, $2::bigint)
	UNION ALL
	SELECT 'summaries', '', count(*) FILTER (WHERE (transaction_id, position) <= ($1::xid8, $2::bigint)),
		(count(*) FILTER (WHERE (transaction_id, position) > ($7::xid8, $8::bigint)))::text
		FROM events WHERE stream_id = $6`

// changedBetweenSQL lists, among the events after $1.$2 and up to
// $12.$13 (what the window's tables lack up to the place, when they are
// behind it), those of the session's messages before seq $4 (their own
// streams, found by their appended events in the session's log $3, and
// appends to that log) and of the user's ($5) memories (by their stored
// event). One range scan of the log, each event of the kinds a window
// holds looked up by index.
const changedBetweenSQL = `WITH tail AS (
		SELECT stream_id, stream_type, event_type, version, data FROM events
		WHERE (transaction_id, position) > ($1::xid8, $2::bigint) AND (transaction_id, position) <= ($12::xid8, $13::bigint)
		  AND stream_type = ANY ($6::text[]))
	SELECT 'message', a.data->>'message_id', a.version, t.event_type FROM tail t
		JOIN events a ON a.event_type = $9 AND a.data->>'message_id' = substr(t.stream_id, length($7::text) + 1) COLLATE "default"
		WHERE t.stream_type = $10 AND a.stream_id = $3 AND a.version < $4
	UNION ALL
	SELECT 'message', t.data->>'message_id', t.version, t.event_type FROM tail t WHERE t.stream_id = $3 AND t.version < $4
	UNION ALL
	SELECT 'memory', substr(t.stream_id, length($8::text) + 1), 0, t.event_type FROM tail t
		JOIN events s ON s.stream_id = t.stream_id AND s.version = 1
		WHERE t.stream_type = $11 AND s.data->>'user_id' = $5`

// changedAfter finds what changed after at: in the log after at, and
// after the window's tables' checkpoint when they are behind it (then
// what they lack up to at is put back too).
func (r *Reader) changedAfter(ctx context.Context, at place) (changes, error) {
	from := at.cursor
	floor, ok, err := projections.CheckpointFloor(ctx, r.db, windowProjections)
	if err != nil {
		return changes{}, err
	}
	if !ok {
		from = eventstore.Start
	} else if floor.Less(from) {
		from = floor
	}
	var c changes
	seen := map[string]bool{}
	if from.Less(at.cursor) {
		c.behind = true
		rows, err := r.db.Query(ctx, changedBetweenSQL, from.TransactionID, from.Position,
			domain.StreamID(domain.StreamMessageLog, at.sessionID), at.seq, at.userID,
			[]string{domain.StreamMessage, domain.StreamMessageLog, domain.StreamMemory},
			domain.StreamID(domain.StreamMessage, ""), domain.StreamID(domain.StreamMemory, ""),
			domain.MessageAppended, domain.StreamMessage, domain.StreamMemory, at.cursor.TransactionID, at.cursor.Position)
		if err := c.add(rows, err, seen); err != nil {
			return changes{}, fmt.Errorf("find changes before message at %s: %w", at.cursor, err)
		}
	}
	rows, err := r.db.Query(ctx, changesAfterSQL, at.cursor.TransactionID, at.cursor.Position,
		domain.StreamID(domain.StreamMessageLog, at.sessionID), at.seq, at.userID, domain.StreamID(domain.StreamSummary, at.sessionID),
		from.TransactionID, from.Position)
	if err := c.add(rows, err, seen); err != nil {
		return changes{}, fmt.Errorf("find changes after message at %s: %w", at.cursor, err)
	}
	return c, nil
}

// add adds the changes rows list (kind, id, sequence number, event type;
// for "summaries": how many by the place, and how many after as text).
func (c *changes) add(rows pgx.Rows, err error, seen map[string]bool) error {
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var kind, id, typ string
		var seq int
		if err := rows.Scan(&kind, &id, &seq, &typ); err != nil {
			return err
		}
		switch {
		case kind == "summaries":
			c.summariesAt = seq
			c.summaries = typ != "0"
			continue
		case kind == "message" && (typ == domain.MessageRedacted || typ == domain.MessageErased):
			c.redactedSeqs = append(c.redactedSeqs, seq)
		}
		if seen[kind+":"+id] {
			continue
		}
		seen[kind+":"+id] = true
		if kind == "message" {
			c.messages = append(c.messages, id)
		} else {
			c.memories = append(c.memories, id)
		}
	}
	return rows.Err()
}

// pastAt folds what changed to its state at at.
func (r *Reader) pastAt(ctx context.Context, at place, ch changes, past Past) (*pastItems, error) {
	p := &pastItems{messageIDs: nonNil(ch.messages), memoryIDs: nonNil(ch.memories), messageEmb: map[string][]float32{}}
	msgs, err := past.MessagesAt(ctx, ch.messages, at.cursor)
	if err != nil {
		return nil, err
	}
	mems, err := past.MemoriesAt(ctx, ch.memories, at.cursor)
	if err != nil {
		return nil, err
	}
	var rows []pastMessage
	for _, id := range ch.messages {
		if m, ok := msgs[id]; ok {
			p.messageEmb[id] = m.Embedding()
			rows = append(rows, pastMessageOf(m))
		}
	}
	for _, id := range ch.memories {
		if m, ok := mems[id]; ok {
			p.memories = append(p.memories, pastMemoryOf(m))
		}
	}
	if p.messageRows, err = jsonRows(rows); err != nil {
		return nil, err
	}
	if p.memoryRows, err = jsonRows(p.memories); err != nil {
		return nil, err
	}
	switch {
	case len(ch.redactedSeqs) > 0 || (ch.summaries && ch.behind):
		// A redaction withdraws summaries (and so may a summary
		// coming in after it): the standing ones are worked out
		// from the log.
		p.summaryKnown = true
		if p.summary, err = r.summaryAt(ctx, at); err != nil {
			return nil, err
		}
	case ch.summaries:
		// Only summaries came after: the table holds the ones before,
		// standing as they stood then.
		p.summaryKnown = true
		if ch.summariesAt == 0 {
			break // none by then
		}
		s, ok, err := r.latestSummary(ctx, at.sessionID, at.seq, ch.summariesAt)
		if err != nil {
			return nil, err
		}
		if ok {
			p.summary = &s
		}
	}
	return p, nil
}

// summaryAt is the summary a window before at.seq took at at: the newest
// of the session's summaries recorded by then and standing then. It
// replays the context projection's withdrawals (see Context.Apply) from
// the log: a redaction withdraws every summary reaching the message, and
// a summary whose predecessor stood withdrawn comes in withdrawn. What
// was erased is gone from every window, also from those before the
// erasure: an erased summary stands for nothing, and a message's erasure
// withdraws the summaries reaching it, whenever it came.
func (r *Reader) summaryAt(ctx context.Context, at place) (*Summary, error) {
	sums, err := r.eventsUpTo(ctx, at.cursor, `SELECT `+eventstore.Columns+` FROM events
		WHERE stream_id = $3 AND (transaction_id, position) <= ($1::xid8, $2::bigint) ORDER BY version`,
		domain.StreamID(domain.StreamSummary, at.sessionID))
	if err != nil || len(sums) == 0 {
		return nil, err
	}
	type redaction struct {
		at  eventstore.Cursor
		seq int
	}
	rows, err := r.db.Query(ctx, `SELECT x.transaction_id::text::bigint, x.position, a.version FROM events a
		JOIN events x ON x.stream_id = $5 || (a.data->>'message_id') AND x.event_type IN ($6, $7)
		WHERE a.stream_id = $3 AND a.version < $4 AND ((x.transaction_id, x.position) <= ($1::xid8, $2::bigint) OR x.event_type = $7)
		ORDER BY x.transaction_id, x.position`, at.cursor.TransactionID, at.cursor.Position,
		domain.StreamID(domain.StreamMessageLog, at.sessionID), at.seq, domain.StreamID(domain.StreamMessage, ""), domain.MessageRedacted,
		domain.MessageErased)
	if err != nil {
		return nil, fmt.Errorf("read redactions of session %s: %w", at.sessionID, err)
	}
	reds, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (redaction, error) {
		var x redaction
		return x, row.Scan(&x.at.TransactionID, &x.at.Position, &x.seq)
	})
	if err != nil {
		return nil, fmt.Errorf("read redactions of session %s: %w", at.sessionID, err)
	}
	type standing struct {
		s         Summary
		withdrawn bool
	}
	var all []standing
	for i, j := 0, 0; i < len(sums) || j < len(reds); {
		if i < len(sums) && (j == len(reds) || sums[i].Cursor().Less(reds[j].at)) {
			e, err := decode(sums[i])
			if err != nil {
				return nil, fmt.Errorf("summary %d of session %s: %w", sums[i].Version, at.sessionID, err)
			}
			d, _ := e.Data.(domain.SessionSummarizedData)
			withdrawn := d.FromSeq > 1
			for _, o := range all {
				if o.s.ToSeq == d.FromSeq-1 && !o.withdrawn {
					withdrawn = false
				}
			}
			if sums[i].Erased {
				withdrawn = true
			}
			all = append(all, standing{Summary{SessionID: at.sessionID, Version: sums[i].Version, Content: d.Content, Tokens: d.Tokens,
				FromSeq: d.FromSeq, ToSeq: d.ToSeq, Method: d.Method, CreatedAt: sums[i].RecordedAt}, withdrawn})
			i++
			continue
		}
		for k := range all {
			if all[k].s.ToSeq >= reds[j].seq {
				all[k].withdrawn = true
			}
		}
		j++
	}
	for k := len(all) - 1; k >= 0; k-- {
		if !all[k].withdrawn && all[k].s.ToSeq < at.seq {
			return &all[k].s, nil
		}
	}
	return nil, nil
}

// eventsUpTo reads events with sql, whose $1 and $2 are at and whose
// further parameters are args.
func (r *Reader) eventsUpTo(ctx context.Context, at eventstore.Cursor, sql string, args ...any) ([]eventstore.Recorded, error) {
	rows, err := r.db.Query(ctx, sql, append([]any{at.TransactionID, at.Position}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (eventstore.Recorded, error) { return eventstore.ScanRecorded(row) })
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	if r.opener != nil && len(out) > 0 {
		if err := r.opener.Open(ctx, out); err != nil {
			return nil, fmt.Errorf("read events: open: %w", err)
		}
	}
	return out, nil
}
