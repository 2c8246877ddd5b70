package readmodel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/jackc/pgx/v5"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
)

// Summary is a session summary as the API serves it.
type Summary struct {
	SessionID string    `json:"session_id"`
	Version   int       `json:"version"`
	Content   string    `json:"content"`
	Tokens    int       `json:"tokens"`
	FromSeq   int       `json:"from_seq"`
	ToSeq     int       `json:"to_seq"`
	Method    string    `json:"method"`
	CreatedAt time.Time `json:"created_at"`
}

// Relevance weights of a memory in a context window: full-text rank
// (relative to the best match among the user's memories, so 0..1),
// importance (0..1) and recency (1 when just written, halving every
// RecencyHalfLife). They add up to 1.
const (
	WeightText       = 0.6
	WeightImportance = 0.25
	WeightRecency    = 0.15
	RecencyHalfLife  = 7 * 24 * time.Hour
)

// newestWithin returns a session's newest messages below beforeSeq (0:
// all), newest first, from a page of at most limit: those that fit room
// tokens, counting each at its tokens plus domain.ItemOverhead, and the
// first that does not. n is how many messages the page held before the
// cut; fewer than limit, and all of them returned, means there are no
// older ones. A message's name costs more than this counts (see Window),
// so the cut never leaves out one the window could hold.
func (r *Reader) newestWithin(ctx context.Context, sessionID string, beforeSeq, limit, room int, past *pastItems) (page []Message, n int, err error) {
	sql, args := newestWithinSQL(sessionID, beforeSeq, limit, room, past)
	rows, err := r.db.Query(ctx, sql, args...)
	return scanNewest(rows, err)
}

// newestWithinSQL is newestWithin's statement and its arguments.
func newestWithinSQL(sessionID string, beforeSeq, limit, room int, past *pastItems) (string, []any) {
	return past.overMessages(newestWithinSelect, []any{sessionID, beforeSeq, limit, domain.ItemOverhead, room})
}

// newestWithinSelect cuts the page on the messages' sequence numbers and
// tokens alone, and joins only the rows kept to their other columns: the
// running sum over the page then moves two numbers a row, not every
// column of 200 messages twice.
var newestWithinSelect = `SELECT ` + prefixed("m.", messageCols) + `, cut.n FROM (
			SELECT seq, sum(tokens + $4) OVER (ORDER BY seq DESC) - (tokens + $4) AS spent_before, count(*) OVER () AS n
			FROM (SELECT seq, tokens FROM messages
				WHERE session_id = $1 AND ($2 = 0 OR seq < $2) ORDER BY seq DESC LIMIT $3) newest) cut
		JOIN messages m ON m.session_id = $1 AND m.seq = cut.seq
		WHERE cut.spent_before <= $5 ORDER BY m.seq DESC`

// prefixed is the comma-separated columns cols, each prefixed by p.
func prefixed(p, cols string) string {
	fields := strings.Split(cols, ",")
	for i, f := range fields {
		fields[i] = p + strings.TrimSpace(f)
	}
	return strings.Join(fields, ", ")
}

// scanNewest reads the rows of newestWithinSQL (see newestWithin).
func scanNewest(rows pgx.Rows, err error) (page []Message, n int, _ error) {
	if err != nil {
		return nil, 0, fmt.Errorf("read recent messages: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var m Message
		if err := rows.Scan(&m.ID, &m.SessionID, &m.UserID, &m.Seq, &m.Role, &m.Content, &m.Name, &m.Metadata, &m.Tokens, &m.EmbeddingDim, &m.Version, &m.CreatedAt, &m.UpdatedAt, &n); err != nil {
			return nil, 0, fmt.Errorf("read recent messages: %w", err)
		}
		page = append(page, m)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("read recent messages: %w", err)
	}
	return page, n, nil
}

// LatestSummary returns the session's newest summary that covers only
// messages below beforeSeq (0: any); ok is false when there is none.
func (r *Reader) LatestSummary(ctx context.Context, sessionID string, beforeSeq int) (s Summary, ok bool, err error) {
	return r.latestSummary(ctx, sessionID, beforeSeq, 0)
}

// latestSummary is LatestSummary among the session's first upTo summaries
// (0: all).
func (r *Reader) latestSummary(ctx context.Context, sessionID string, beforeSeq, upTo int) (s Summary, ok bool, err error) {
	return scanSummary(r.db.QueryRow(ctx, latestSummarySQL, sessionID, beforeSeq, upTo))
}

// latestSummarySQL is latestSummary's statement: $1 the session, $2
// beforeSeq, $3 upTo.
const latestSummarySQL = `SELECT session_id, version, content, tokens, from_seq, to_seq, method, created_at
		FROM session_summaries WHERE session_id = $1 AND ($2 = 0 OR to_seq < $2) AND ($3 = 0 OR version <= $3) AND NOT withdrawn
		ORDER BY version DESC LIMIT 1`

// scanSummary reads the row of latestSummarySQL; ok is false when there
// is none.
func scanSummary(row pgx.Row) (s Summary, ok bool, err error) {
	err = row.Scan(&s.SessionID, &s.Version, &s.Content, &s.Tokens, &s.FromSeq, &s.ToSeq, &s.Method, &s.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Summary{}, false, nil
	}
	if err != nil {
		return Summary{}, false, fmt.Errorf("read summary: %w", err)
	}
	return s, true, nil
}

// importanceRecencySQL is the part of a window's memory score besides
// relevance: importance weighed $4, recency ($7 now, half-life $6
// seconds) weighed $5 (see the Weight constants).
const importanceRecencySQL = `$4::float8 * importance
		+ $5::float8 * power(0.5, greatest(extract(epoch FROM ($7::timestamptz - updated_at)), 0) / $6::float8)`

// relevantSQL scores a user's memories for a context window; see
// RelevantMemories.
const relevantSQL = `WITH cand AS (` + windowCandidates + `),
	uniq AS (SELECT DISTINCT ON (id) * FROM cand)
	SELECT ` + memoryCols + `,
		$3::float8 * coalesce(text_rank / nullif(max(text_rank) OVER (), 0), 0)
		+ ` + importanceRecencySQL + ` AS score
	FROM uniq
	ORDER BY score DESC, id DESC LIMIT $8`

// maxTextCandidates bounds how many full-text matches a context window
// scores; a user with more matching memories than that has some matches
// left unscored (they can still come in as important or recent ones).
const maxTextCandidates = 1000

// RelevantMemories ranks a user's live memories for a context window, best
// first, from three candidate lists (full-text matches, the most
// important, the most recent): full-text relevance to text (any of its words), importance and
// recency, weighed as the Weight constants say. With no words in text,
// importance and recency alone decide.
//
// With an embedding, the memories nearest to it by vector are candidates
// too, and the relevance term is the reciprocal rank fusion of the
// full-text and the vector rankings (see RRFK) instead of the full-text
// rank; when no memory has an embedding of its length, nothing changes.
//
// createdBefore, when not nil, leaves out memories stored after it (the
// context behind a message holds none stored later).
func (r *Reader) RelevantMemories(ctx context.Context, userID, text string, embedding []float32, now time.Time, createdBefore *time.Time, limit int) ([]MemoryHit, error) {
	return r.relevantMemories(ctx, userID, text, embedding, memoryScope{now: now, createdBefore: createdBefore}, limit, nil)
}

// memoryScope says which of a user's memories a window may hold: those
// live at now (not expired then) and, when set, stored by createdBefore
// and at or before storedBy in the log.
type memoryScope struct {
	now           time.Time
	createdBefore *time.Time
	storedBy      *eventstore.Cursor
}

// storedArgs are storedBy as the arguments of windowLive's bound: both
// nil when it is not set.
func (sc memoryScope) storedArgs() (tx, pos any) {
	if sc.storedBy == nil {
		return nil, nil
	}
	return sc.storedBy.TransactionID, sc.storedBy.Position
}

// keeps is sc as a filter of what a VectorCache holds, leaving out too the
// memories past puts back as they were: the condition relevantFused gives
// Postgres, in Go.
func (sc memoryScope) keeps(past *pastItems) func(*vecItem) bool {
	var putBack map[string]bool
	if past != nil && len(past.memoryIDs) > 0 {
		putBack = make(map[string]bool, len(past.memoryIDs))
		for _, id := range past.memoryIDs {
			putBack[id] = true
		}
	}
	return func(it *vecItem) bool {
		switch {
		case it.expiresAt != nil && !it.expiresAt.After(sc.now):
			return false
		case sc.createdBefore != nil && it.createdAt.After(*sc.createdBefore):
			return false
		case sc.storedBy != nil && (it.storedTx > sc.storedBy.TransactionID ||
			(it.storedTx == sc.storedBy.TransactionID && it.storedPos > sc.storedBy.Position)):
			return false
		}
		return !putBack[it.id]
	}
}

// relevantMemories is RelevantMemories within sc, with past's memories put
// back as they were (nil: the table as it is).
func (r *Reader) relevantMemories(ctx context.Context, userID, text string, embedding []float32, sc memoryScope, limit int, past *pastItems) ([]MemoryHit, error) {
	text = rankingText(text)
	if embedding != nil {
		hits, fused, err := r.relevantFused(ctx, userID, text, embedding, sc, limit, past)
		if fused || err != nil {
			return hits, err
		}
	}
	sql, args := relevantTextSQL(userID, text, sc, limit, past)
	rows, err := r.db.Query(ctx, sql, args...)
	return scanHits(rows, err, "rank memories")
}

// relevantTextSQL is the statement that ranks a user's memories by text
// (already cut by rankingText), importance and recency, and its
// arguments (see RelevantMemories).
func relevantTextSQL(userID, text string, sc memoryScope, limit int, past *pastItems) (string, []any) {
	tx, pos := sc.storedArgs()
	return past.overMemories(relevantSQL, []any{userID, text, WeightText, WeightImportance, WeightRecency, RecencyHalfLife.Seconds(),
		sc.now, limit, maxTextCandidates, sc.createdBefore, tx, pos})
}

// MaxRankingWords bounds the words a context window ranks memories by:
// a longer text (a pasted document as the latest user message) is ranked
// by its first MaxRankingWords distinct words. Postgres's text search
// recurses once per word of a query, and ranking by 30,000 words ran out
// of stack; by 5,000 it took seconds.
const MaxRankingWords = 64

// rankingText is text, or its first MaxRankingWords distinct words when
// it has more.
func rankingText(text string) string {
	words := strings.FieldsFunc(text, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	if len(words) <= MaxRankingWords {
		return text
	}
	seen := make(map[string]bool, MaxRankingWords)
	kept := make([]string, 0, MaxRankingWords)
	for _, w := range words {
		if k := strings.ToLower(w); !seen[k] {
			seen[k] = true
			if kept = append(kept, w); len(kept) == MaxRankingWords {
				break
			}
		}
	}
	return strings.Join(kept, " ")
}

// Snapshot is a context snapshot as recorded: which items, at which
// versions, with their costs.
type Snapshot struct {
	ID          string                `json:"id"`
	SessionID   string                `json:"session_id"`
	UserID      string                `json:"user_id"`
	MessageID   string                `json:"message_id,omitempty"`
	Query       string                `json:"query"`
	MaxTokens   int                   `json:"max_tokens"`
	TotalTokens int                   `json:"total_tokens"`
	Items       []domain.SnapshotItem `json:"items"`
	CreatedAt   time.Time             `json:"created_at"`
}

const snapshotCols = `id, session_id, user_id, coalesce(message_id, ''), query, max_tokens, total_tokens, items, created_at`

func scanSnapshot(row pgx.Row) (Snapshot, error) {
	var s Snapshot
	var items []byte
	if err := row.Scan(&s.ID, &s.SessionID, &s.UserID, &s.MessageID, &s.Query, &s.MaxTokens, &s.TotalTokens, &items, &s.CreatedAt); err != nil {
		return s, err
	}
	if err := json.Unmarshal(items, &s.Items); err != nil {
		return s, fmt.Errorf("decode snapshot items: %w", err)
	}
	return s, nil
}

// GetSnapshot returns a context snapshot by id.
func (r *Reader) GetSnapshot(ctx context.Context, id string) (Snapshot, error) {
	s, err := scanSnapshot(r.db.QueryRow(ctx, `SELECT `+snapshotCols+` FROM context_snapshots WHERE id = $1`, id))
	return s, notFound(err, "context snapshot", id)
}

// SnapshotOfMessage returns the snapshot recorded for an assistant message.
func (r *Reader) SnapshotOfMessage(ctx context.Context, messageID string) (Snapshot, error) {
	s, err := scanSnapshot(r.db.QueryRow(ctx, `SELECT `+snapshotCols+` FROM context_snapshots WHERE message_id = $1`, messageID))
	return s, notFound(err, "context snapshot of message", messageID)
}

// ListSnapshots pages through a session's snapshots, oldest first.
func (r *Reader) ListSnapshots(ctx context.Context, sessionID string, p Page) ([]Snapshot, string, error) {
	list := "snapshots:" + sessionID
	limit, after, err := bounds(p, list)
	if err != nil {
		return nil, "", err
	}
	rows, err := r.db.Query(ctx, `SELECT `+snapshotCols+` FROM context_snapshots
		WHERE session_id = $1 AND id > $2 ORDER BY id LIMIT $3`, sessionID, after, limit+1)
	return collect(rows, err, scanSnapshot, limit, list, func(s Snapshot) string { return s.ID })
}

// DueSnapshot is an assistant message waiting for its context snapshot.
type DueSnapshot struct {
	MessageID, SessionID, UserID string
	Seq                          int
	CreatedAt                    time.Time
}

// DueSnapshots returns up to limit assistant messages waiting for their
// snapshot, oldest first but those in last after all others; the
// messages in skip are left out.
func (r *Reader) DueSnapshots(ctx context.Context, limit int, skip, last []string) ([]DueSnapshot, error) {
	if skip == nil {
		skip = []string{}
	}
	if last == nil {
		last = []string{}
	}
	rows, err := r.db.Query(ctx, `SELECT message_id, session_id, user_id, seq, created_at FROM snapshots_due
		WHERE message_id <> ALL ($2::text[])
		ORDER BY message_id = ANY ($3::text[]), created_at, message_id LIMIT $1`, limit, skip, last)
	if err != nil {
		return nil, fmt.Errorf("read due snapshots: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (DueSnapshot, error) {
		var d DueSnapshot
		return d, row.Scan(&d.MessageID, &d.SessionID, &d.UserID, &d.Seq, &d.CreatedAt)
	})
	if err != nil {
		return nil, fmt.Errorf("read due snapshots: %w", err)
	}
	return out, nil
}

// DueSummaries finds up to limit sessions whose messages not yet
// summarized, leaving out the newest recent tokens of them, cost more than
// threshold tokens (each message its tokens plus domain.ItemOverhead),
// most overdue first, but those in last after all others; the sessions in
// skip are left out.
func (r *Reader) DueSummaries(ctx context.Context, threshold, recent, limit int, skip, last []string) ([]domain.DueSummary, error) {
	// The messages projection keeps each session's backlog (the cost of
	// its messages after its newest summary): the sessions past the
	// threshold come from its cost index, so a pass costs the sessions
	// due, not the sessions that exist. The newest summary standing (not
	// withdrawn by a redaction) comes from the context projection; if it
	// is ahead of the backlog, the messages read below are those after
	// it, and the check below them decides. The next summary follows the
	// newest version of the session's summaries, withdrawn or not.
	if skip == nil {
		skip = []string{}
	}
	if last == nil {
		last = []string{}
	}
	rows, err := r.db.Query(ctx, `SELECT b.session_id, b.user_id,
			coalesce((SELECT max(version) FROM session_summaries WHERE session_id = b.session_id), 0),
			coalesce(l.to_seq, 0), coalesce(l.content, '')
		FROM session_backlog b
		LEFT JOIN LATERAL (SELECT to_seq, content FROM session_summaries
			WHERE session_id = b.session_id AND NOT withdrawn ORDER BY version DESC LIMIT 1) l ON true
		WHERE b.cost > $1::bigint + $2::bigint AND b.session_id <> ALL ($4::text[])
		ORDER BY b.session_id = ANY ($5::text[]), b.cost DESC LIMIT $3`, threshold, recent, limit, skip, last)
	if err != nil {
		return nil, fmt.Errorf("find sessions due for a summary: %w", err)
	}
	cands, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (domain.DueSummary, error) {
		var d domain.DueSummary
		return d, row.Scan(&d.SessionID, &d.UserID, &d.After, &d.FromSeq, &d.Previous)
	})
	if err != nil {
		return nil, fmt.Errorf("find sessions due for a summary: %w", err)
	}
	var out []domain.DueSummary
	for _, d := range cands {
		msgs, err := r.MessagesAfter(ctx, d.SessionID, d.FromSeq)
		if err != nil {
			return nil, err
		}
		// Newest first, skip the recent window; the rest is to summarize.
		kept, cut := 0, len(msgs)
		for cut > 0 && kept+msgs[cut-1].Tokens+domain.ItemOverhead <= recent {
			cut--
			kept += msgs[cut].Tokens + domain.ItemOverhead
		}
		older, cost := msgs[:cut], 0
		for _, m := range older {
			cost += m.Tokens + domain.ItemOverhead
		}
		if len(older) == 0 || cost <= threshold {
			continue
		}
		d.FromSeq, d.ToSeq = d.FromSeq+1, older[len(older)-1].Seq
		d.Versions = make(map[string]int, len(older))
		for _, m := range older {
			d.Lines = append(d.Lines, domain.TranscriptLine{Role: m.Role, Content: m.Content})
			d.Versions[m.ID] = m.Version
		}
		out = append(out, d)
	}
	return out, nil
}

// MessagesAfter returns a session's messages after seq, in order.
func (r *Reader) MessagesAfter(ctx context.Context, sessionID string, seq int) ([]Message, error) {
	return r.messagesAfter(ctx, sessionID, seq, 0)
}

// messagesAfter is MessagesAfter, the first limit of them (0: all).
func (r *Reader) messagesAfter(ctx context.Context, sessionID string, seq, limit int) ([]Message, error) {
	rows, err := r.db.Query(ctx, `SELECT `+messageCols+` FROM messages
		WHERE session_id = $1 AND seq > $2 ORDER BY seq LIMIT nullif($3, 0)`, sessionID, seq, limit)
	if err != nil {
		return nil, fmt.Errorf("read messages: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Message, error) { return scanMessage(row) })
	if err != nil {
		return nil, fmt.Errorf("read messages: %w", err)
	}
	return out, nil
}
