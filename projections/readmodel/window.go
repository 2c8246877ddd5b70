package readmodel

import (
	"context"
	"time"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
)

// WindowRequest asks for a session's context window.
type WindowRequest struct {
	Budget domain.Budget
	// Query and Embedding (optional) are what memories are ranked
	// against; when both are absent, the latest user message in the
	// window's reach (its content and its embedding) is.
	Query     string
	Embedding []float32
	// BeforeSeq limits the window to messages before that sequence number
	// (the context behind an assistant message); 0 for the whole session.
	BeforeSeq int
	// Now decides which memories have expired and how recent they are.
	Now time.Time
	// CreatedBefore, when set, leaves out memories stored after it.
	CreatedBefore *time.Time
	// StoredBy, when set, leaves out memories stored after that place in
	// the log (exactly, where CreatedBefore goes by the clock).
	StoredBy *eventstore.Cursor
	// UserID, when set, is the session's user as read already (with its
	// WindowState): the window then does not read the session again.
	UserID string
}

// WindowSummary is the summary a window holds, with its cost.
type WindowSummary struct {
	Summary
	Cost int `json:"cost"`
}

// WindowMessage is a message a window holds, with its cost.
type WindowMessage struct {
	Message
	Cost int `json:"cost"`
}

// WindowMemory is a memory a window holds, with its relevance and cost.
type WindowMemory struct {
	Memory
	Score float64 `json:"score"`
	Cost  int     `json:"cost"`
}

// Window is a context window: what fits the budget, each item with its
// cost in tokens (its text plus domain.ItemOverhead), and the total.
type Window struct {
	SessionID    string          `json:"session_id"`
	UserID       string          `json:"user_id"`
	Query        string          `json:"query"`
	MaxTokens    int             `json:"max_tokens"`
	SummaryShare float64         `json:"summary_share"`
	MemoryShare  float64         `json:"memory_share"`
	Summary      *WindowSummary  `json:"summary"`
	Messages     []WindowMessage `json:"messages"`
	Memories     []WindowMemory  `json:"memories"`
	TotalTokens  int             `json:"total_tokens"`
}

// Snapshot lists the items of the window as a snapshot records them.
func (w Window) Snapshot() []domain.SnapshotItem {
	var items []domain.SnapshotItem
	if w.Summary != nil {
		items = append(items, domain.SnapshotItem{Kind: domain.ItemSummary, ID: w.SessionID, Version: w.Summary.Version, Tokens: w.Summary.Cost})
	}
	for _, m := range w.Messages {
		items = append(items, domain.SnapshotItem{Kind: domain.ItemMessage, ID: m.ID, Version: m.Version, Seq: m.Seq, Tokens: m.Cost})
	}
	for _, m := range w.Memories {
		items = append(items, domain.SnapshotItem{Kind: domain.ItemMemory, ID: m.ID, Version: m.Version, Tokens: m.Cost})
	}
	return items
}

const (
	windowPage        = 200
	windowMemoryLimit = 50
)

// Window assembles a session's context window from the query tables:
// its summary, its newest messages that fit, and its user's memories
// most relevant now, split as req.Budget says (see domain.FitWindow).
func (r *Reader) Window(ctx context.Context, sessionID string, req WindowRequest, tc domain.TokenCounter) (Window, error) {
	return r.window(ctx, sessionID, req, tc, nil)
}

// window is Window over the query tables with past's entities put back
// as they were (nil: the tables as they are).
func (r *Reader) window(ctx context.Context, sessionID string, req WindowRequest, tc domain.TokenCounter, past *pastItems) (Window, error) {
	if err := req.Budget.Validate(); err != nil {
		return Window{}, err
	}
	userID := req.UserID
	if userID == "" {
		sess, err := r.GetSession(ctx, sessionID)
		if err != nil {
			return Window{}, err
		}
		userID = sess.UserID
	}
	w := Window{SessionID: sessionID, UserID: userID, Query: req.Query, MaxTokens: req.Budget.MaxTokens,
		SummaryShare: req.Budget.SummaryShare, MemoryShare: req.Budget.MemoryShare,
		Messages: []WindowMessage{}, Memories: []WindowMemory{}}

	// The first page of messages, the summary and (when the ranking needs
	// nothing the messages say) the memories' ranking go to Postgres in
	// one round trip.
	first, err := r.firstRound(ctx, sessionID, userID, req, past)
	if err != nil {
		return Window{}, err
	}

	// Messages, newest first, until they alone would overflow the budget.
	var msgs []WindowMessage
	var cand domain.WindowCandidates
	before, spent := req.BeforeSeq, 0
	// Postgres cuts each page where the messages pass the budget, so the
	// rows that cannot fit are neither sent nor scanned.
	for page, n := first.page, first.n; ; {
		for _, m := range page {
			cost := m.Tokens + domain.ItemOverhead
			if m.Name != "" {
				cost += tc.Count(m.Name) + 1
			}
			msgs = append(msgs, WindowMessage{Message: m, Cost: cost})
			cand.Messages = append(cand.Messages, cost)
			spent += cost
		}
		if len(page) == n && n < windowPage {
			cand.Complete = true
			break
		}
		if len(page) == 0 {
			break
		}
		before = page[len(page)-1].Seq
		if spent > req.Budget.MaxTokens {
			break
		}
		if page, n, err = r.newestWithin(ctx, sessionID, before, windowPage, req.Budget.MaxTokens-spent, past); err != nil {
			return Window{}, err
		}
	}

	hits := first.hits
	if !first.ranked {
		embedding := req.Embedding
		if w.Query == "" && embedding == nil {
			found := false
			for _, m := range msgs {
				if m.Role == "user" {
					found, w.Query = true, m.Content
					if m.EmbeddingDim > 0 {
						if embedding, err = r.messageEmbedding(ctx, m.ID, past); err != nil {
							return Window{}, err
						}
					}
					break
				}
			}
			if !found {
				if w.Query, embedding, err = r.latestUserMessage(ctx, sessionID, req.BeforeSeq, past); err != nil {
					return Window{}, err
				}
			}
		}
		if hits, err = r.relevantMemories(ctx, userID, w.Query, embedding, req.scope(), windowMemoryLimit, past); err != nil {
			return Window{}, err
		}
	}
	for _, h := range hits {
		cand.Memories = append(cand.Memories, h.Tokens+domain.ItemOverhead)
	}
	sum, hasSummary := first.summary, first.hasSummary
	if past != nil && past.summaryKnown {
		sum, hasSummary = Summary{}, past.summary != nil
		if hasSummary {
			sum = *past.summary
		}
	}
	if hasSummary {
		cand.Summary = sum.Tokens + domain.ItemOverhead
	}

	plan := domain.FitWindow(req.Budget, cand)
	if plan.Summary {
		w.Summary = &WindowSummary{Summary: sum, Cost: cand.Summary}
	}
	for i := plan.Messages - 1; i >= 0; i-- {
		w.Messages = append(w.Messages, msgs[i])
	}
	for _, i := range plan.Memories {
		w.Memories = append(w.Memories, WindowMemory{Memory: hits[i].Memory, Score: hits[i].Score, Cost: cand.Memories[i]})
	}
	w.TotalTokens = plan.Total
	return w, nil
}

// WindowState names the state a session's context window is computed
// from: the generations of its messages, its summaries and its user's
// memories (see migrations/00008_cache_generations.sql). A cached window
// keyed by it is never older than the tables.
type WindowState struct {
	UserID                        string
	Messages, Summaries, Memories int64
	// Rebuilds moves with every rebuild of a projection (offline or
	// online): a rebuild may change rows no replayed event names.
	Rebuilds int64
}

// WindowStateOf reads a session's WindowState. Reads of window states
// that arrive together share one indexed query (see batch.Loader), which
// is sent after each of them arrived: a state is never older than a write
// its reader follows.
func (r *Reader) WindowStateOf(ctx context.Context, sessionID string) (WindowState, error) {
	return loadOne(ctx, r.windowStates, sessionID, "session", sessionID)
}

// windowStateSQL reads the WindowState of the sessions it names, each
// with its id.
const windowStateSQL = `SELECT s.id, s.user_id,
			coalesce((SELECT gen FROM cache_generations WHERE key = 'session:' || s.id), 0),
			coalesce((SELECT gen FROM cache_generations WHERE key = 'summary:' || s.id), 0),
			coalesce((SELECT gen FROM cache_generations WHERE key = 'user:' || s.user_id), 0),
			coalesce((SELECT gen FROM cache_generations WHERE key = 'rebuilds'), 0)
		FROM sessions s WHERE `

// readWindowStates reads the WindowState of each of sessions that exists.
func (r *Reader) readWindowStates(ctx context.Context, sessions []string) (map[string]WindowState, error) {
	cond, arg := keyCond("s.id", sessions)
	rows, err := r.db.Query(ctx, windowStateSQL+cond, arg)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[string]WindowState, len(sessions))
	for rows.Next() {
		var id string
		var w WindowState
		if err := rows.Scan(&id, &w.UserID, &w.Messages, &w.Summaries, &w.Memories, &w.Rebuilds); err != nil {
			return nil, err
		}
		out[id] = w
	}
	return out, rows.Err()
}
