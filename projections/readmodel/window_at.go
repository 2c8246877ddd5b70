package readmodel

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/projections"
)

// Past folds messages and memories to their state at a place in the log
// (history.Reader does): nil when the entity did not exist there (not yet
// appended or stored, or redacted, deleted or recorded expired by then).
type Past interface {
	MessageAt(ctx context.Context, id string, at eventstore.Cursor) (*domain.Message, error)
	MemoryAt(ctx context.Context, id string, at eventstore.Cursor) (*domain.Memory, error)
}

// WindowAt is the context window behind an assistant message: the window
// of the messages before it, with budget, as the log stood at the
// message's appended event. It is the same however late it is computed
// (the snapshot pass runs a moment later, or after a restart or a
// rebuild): the items that changed after that event (edited, redacted,
// deleted, expired, or stored, appended or summarized after it) are put
// back as they were then, folded by past, and the window is chosen among
// them as it would have been then. When nothing changed, the window is
// read from the query tables alone, as Window reads it.
func (r *Reader) WindowAt(ctx context.Context, messageID string, budget domain.Budget, tc domain.TokenCounter, past Past) (Window, error) {
	// One snapshot for the log and the tables: a row the tables show
	// changed after the message's event comes from an event this
	// snapshot sees too, so it is found below and put back.
	tx, err := r.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return Window{}, fmt.Errorf("window at message %s: %w", messageID, err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	in := &Reader{db: tx, pool: r.pool}
	at, err := in.placeOf(ctx, messageID)
	if err != nil {
		return Window{}, err
	}
	ch, err := in.changedAfter(ctx, at)
	if err != nil {
		return Window{}, err
	}
	req := WindowRequest{Budget: budget, BeforeSeq: at.seq, Now: at.recordedAt, UserID: at.userID}
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
	summaries    bool
}

func (c changes) none() bool {
	return len(c.messages) == 0 && len(c.memories) == 0 && len(c.redactedSeqs) == 0 && !c.summaries
}

// windowProjections are the projections whose tables a window reads.
var windowProjections = []string{Messages{}.Name(), Memories{}.Name(), Context{}.Name()}

// changedAfterSQL lists, among the events after $1.$2, those of the
// session's messages before seq $4 (their own streams, found by their
// appended events in the session's log $3, and appends to that log), of
// the user's ($5) memories (by their stored event), and of the session's
// summaries ($6). One range scan of the log's tail, each event of the
// kinds a window holds looked up by index.
const changedAfterSQL = `WITH tail AS (
		SELECT stream_id, stream_type, event_type, version, data FROM events
		WHERE (transaction_id, position) > ($1::xid8, $2::bigint) AND stream_type = ANY ($7::text[]))
	SELECT 'message', a.data->>'message_id', a.version, t.event_type FROM tail t
		JOIN events a ON a.event_type = $10 AND a.data->>'message_id' = substr(t.stream_id, length($8::text) + 1)
		WHERE t.stream_type = $11 AND a.stream_id = $3 AND a.version < $4
	UNION ALL
	SELECT 'message', t.data->>'message_id', t.version, t.event_type FROM tail t WHERE t.stream_id = $3 AND t.version < $4
	UNION ALL
	SELECT 'memory', substr(t.stream_id, length($9::text) + 1), 0, t.event_type FROM tail t
		JOIN events s ON s.stream_id = t.stream_id AND s.version = 1
		WHERE t.stream_type = $12 AND s.data->>'user_id' = $5
	UNION ALL
	SELECT 'summary', '', t.version, t.event_type FROM tail t WHERE t.stream_id = $6`

// changedAfter finds what changed after at: in the log after at, or after
// the window's tables' checkpoint when they are behind it (then what they
// lack up to at is put back too).
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
	rows, err := r.db.Query(ctx, changedAfterSQL, from.TransactionID, from.Position,
		domain.StreamID(domain.StreamMessageLog, at.sessionID), at.seq, at.userID, domain.StreamID(domain.StreamSummary, at.sessionID),
		[]string{domain.StreamMessage, domain.StreamMessageLog, domain.StreamMemory, domain.StreamSummary},
		domain.StreamID(domain.StreamMessage, ""), domain.StreamID(domain.StreamMemory, ""),
		domain.MessageAppended, domain.StreamMessage, domain.StreamMemory)
	if err != nil {
		return changes{}, fmt.Errorf("find changes after message at %s: %w", at.cursor, err)
	}
	defer rows.Close()
	var c changes
	seen := map[string]bool{}
	for rows.Next() {
		var kind, id, typ string
		var seq int
		if err := rows.Scan(&kind, &id, &seq, &typ); err != nil {
			return changes{}, fmt.Errorf("find changes after message at %s: %w", at.cursor, err)
		}
		switch {
		case kind == "summary":
			c.summaries = true
			continue
		case kind == "message" && typ == domain.MessageRedacted:
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
	if err := rows.Err(); err != nil {
		return changes{}, fmt.Errorf("find changes after message at %s: %w", at.cursor, err)
	}
	return c, nil
}

// pastAt folds what changed to its state at at.
func (r *Reader) pastAt(ctx context.Context, at place, ch changes, past Past) (*pastItems, error) {
	p := &pastItems{messageIDs: nonNil(ch.messages), memoryIDs: nonNil(ch.memories), messageEmb: map[string][]float32{}}
	var msgs []pastMessage
	for _, id := range ch.messages {
		m, err := past.MessageAt(ctx, id, at.cursor)
		if err != nil {
			return nil, err
		}
		if m != nil {
			p.messageEmb[id] = m.Embedding()
			msgs = append(msgs, pastMessageOf(m))
		}
	}
	for _, id := range ch.memories {
		m, err := past.MemoryAt(ctx, id, at.cursor)
		if err != nil {
			return nil, err
		}
		if m != nil {
			p.memories = append(p.memories, pastMemoryOf(m))
		}
	}
	var err error
	if p.messageRows, err = jsonRows(msgs); err != nil {
		return nil, err
	}
	if p.memoryRows, err = jsonRows(p.memories); err != nil {
		return nil, err
	}
	if ch.summaries || len(ch.redactedSeqs) > 0 {
		p.summaryKnown = true
		if p.summary, err = r.summaryAt(ctx, at); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// summaryAt is the summary a window before at.seq took at at: the newest
// of the session's summaries recorded by then and standing then. It
// replays the context projection's withdrawals (see Context.Apply) from
// the log: a redaction withdraws every summary reaching the message, and
// a summary whose predecessor stood withdrawn comes in withdrawn.
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
		JOIN events x ON x.stream_id = $5 || (a.data->>'message_id') AND x.event_type = $6
		WHERE a.stream_id = $3 AND a.version < $4 AND (x.transaction_id, x.position) <= ($1::xid8, $2::bigint)
		ORDER BY x.transaction_id, x.position`, at.cursor.TransactionID, at.cursor.Position,
		domain.StreamID(domain.StreamMessageLog, at.sessionID), at.seq, domain.StreamID(domain.StreamMessage, ""), domain.MessageRedacted)
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
	return out, nil
}
