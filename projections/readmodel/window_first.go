package readmodel

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// firstReads is what a window reads before it can decide anything: the
// first page of its messages, its summary and, when the ranking needs
// nothing the messages say, its memories ranked.
type firstReads struct {
	page []Message
	// n is how many messages the page held before Postgres cut it (see
	// newestWithin).
	n          int
	summary    Summary
	hasSummary bool
	// ranked says hits is the window's ranking; when false, the ranking
	// waits for the messages (its text is the latest user message's).
	ranked bool
	hits   []MemoryHit
}

// scope is the memoryScope of the window req asks for.
func (req WindowRequest) scope() memoryScope {
	return memoryScope{now: req.Now, createdBefore: req.CreatedBefore, storedBy: req.StoredBy}
}

// firstRound sends a window's first reads to Postgres together (one
// pgx.Batch, one round trip): the newest page of messages within the
// budget, the summary (unless past already knows it) and, with a query
// text and no embedding, the memory ranking. Each statement is the one
// the window sent alone before; the batch runs them in one implicit
// transaction, each with a snapshot of its own as before.
func (r *Reader) firstRound(ctx context.Context, sessionID, userID string, req WindowRequest, past *pastItems) (firstReads, error) {
	var out firstReads
	b := &pgx.Batch{}
	queue := func(sql string, args []any) { b.Queue(sql, args...) }
	queue(newestWithinSQL(sessionID, req.BeforeSeq, windowPage, req.Budget.MaxTokens, past))
	wantSummary := past == nil || !past.summaryKnown
	if wantSummary {
		queue(latestSummarySQL, []any{sessionID, req.BeforeSeq, 0})
	}
	out.ranked = req.Query != "" && req.Embedding == nil
	if out.ranked {
		queue(relevantTextSQL(userID, rankingText(req.Query), req.scope(), windowMemoryLimit, past))
	}
	br := r.db.SendBatch(ctx, b)
	defer br.Close()
	var err error
	if out.page, out.n, err = scanNewest(br.Query()); err != nil {
		return out, err
	}
	if wantSummary {
		if out.summary, out.hasSummary, err = scanSummary(br.QueryRow()); err != nil {
			return out, err
		}
	}
	if out.ranked {
		rows, err := br.Query()
		if out.hits, err = scanHits(rows, err, "rank memories"); err != nil {
			return out, err
		}
	}
	return out, br.Close()
}
