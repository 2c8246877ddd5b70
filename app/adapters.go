package app

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/arq-memory/arq/api"
	"github.com/arq-memory/arq/commands"
	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/projections"
	"github.com/arq-memory/arq/projections/readmodel"
	"github.com/arq-memory/arq/ratelimit"
)

// health tells the API where Postgres and the process's projections stand
// (api.Health).
type health struct {
	pool  *pgxpool.Pool
	names []string
}

func (h health) Ping(ctx context.Context) error { return h.pool.Ping(ctx) }

func (h health) Stopped(ctx context.Context) ([]string, error) {
	return projections.Stopped(ctx, h.pool, h.names)
}

func (h health) Statuses(ctx context.Context) ([]projections.Status, error) {
	return projections.Statuses(ctx, h.pool, h.names)
}

// messageFinder finds a message's session and sequence number in the read
// model, for commands on an existing message.
type messageFinder struct{ r *readmodel.Reader }

func (f messageFinder) FindMessage(ctx context.Context, id string) (string, int, error) {
	m, err := f.r.GetMessage(ctx, id)
	if err != nil {
		return "", 0, err
	}
	return m.SessionID, m.Seq, nil
}

// dueFinder lists due expiries from the read model for the expiry worker.
type dueFinder struct{ r *readmodel.Reader }

func (f dueFinder) DueSessions(ctx context.Context, now time.Time, limit int, skip, last []string) ([]string, error) {
	due, err := f.r.ExpiredSessions(ctx, now, limit, skip, last)
	return ids(due), err
}

func (f dueFinder) DueMemories(ctx context.Context, now time.Time, limit int, skip, last []string) ([]string, error) {
	due, err := f.r.ExpiredMemories(ctx, now, limit, skip, last)
	return ids(due), err
}

func ids(due []readmodel.ExpiryDue) []string {
	out := make([]string, len(due))
	for i, d := range due {
		out[i] = d.ID
	}
	return out
}

// NewSnapshotSource is the server's snapshot source: due messages from the
// read model, each window as of its message's place in the log, with what
// changed since folded back by past. Tests of the snapshot pass use it as
// the server does.
func NewSnapshotSource(r *readmodel.Reader, tc domain.TokenCounter, past readmodel.Past) commands.SnapshotSource {
	return snapshotSource{r, tc, past}
}

// snapshotSource feeds the snapshotter from the read model, with the
// items changed since a message folded back by past.
type snapshotSource struct {
	r      *readmodel.Reader
	tokens domain.TokenCounter
	past   readmodel.Past
}

func (s snapshotSource) DueSnapshots(ctx context.Context, limit int, skip, last []string) ([]commands.DueSnapshot, error) {
	due, err := s.r.DueSnapshots(ctx, limit, skip, last)
	out := make([]commands.DueSnapshot, len(due))
	for i, d := range due {
		out[i] = commands.DueSnapshot{MessageID: d.MessageID, SessionID: d.SessionID, Seq: d.Seq, At: d.CreatedAt}
	}
	return out, err
}

func (s snapshotSource) WindowBefore(ctx context.Context, d commands.DueSnapshot) (commands.WindowRecord, error) {
	w, err := s.r.WindowAt(ctx, d.MessageID, domain.DefaultBudget(), s.tokens, s.past)
	if err != nil {
		return commands.WindowRecord{}, err
	}
	return commands.WindowRecord{UserID: w.UserID, Query: w.Query, MaxTokens: w.MaxTokens, Total: w.TotalTokens, Items: w.Snapshot()}, nil
}

// summarySource finds sessions due for a summary in the read model.
type summarySource struct {
	r                 *readmodel.Reader
	threshold, recent int
}

func (s summarySource) DueSummaries(ctx context.Context, limit int, skip, last []string) ([]domain.DueSummary, error) {
	return s.r.DueSummaries(ctx, s.threshold, s.recent, limit, skip, last)
}

// rateLimits are the API's limits from the configuration, counted by the
// app's limiter.
func (a *App) rateLimits() api.RateLimits {
	burst := a.cfg.RateLimitBurst
	if burst == 0 {
		burst = 2 * a.cfg.RateLimit
	}
	return api.RateLimits{
		Limiter:   rateLimiter{a.limiter},
		Key:       api.RateLimit{Rate: a.cfg.RateLimit, Burst: burst},
		Anonymous: api.RateLimit{Rate: a.cfg.RateLimitAnonymous, Burst: 2 * a.cfg.RateLimitAnonymous},
	}
}

// rateLimiter is the API's RateLimiter on ratelimit.Limiter.
type rateLimiter struct{ l *ratelimit.Limiter }

func (r rateLimiter) Allow(ctx context.Context, caller string, limit api.RateLimit) api.RateResult {
	res := r.l.Allow(ctx, caller, ratelimit.Limit{Rate: limit.Rate, Burst: limit.Burst})
	return api.RateResult{Allowed: res.Allowed, Remaining: res.Remaining, RetryAfter: res.RetryAfter, ResetAfter: res.ResetAfter}
}

// extractionSource finds sessions due for an extraction in the read
// model, by the configured rules.
type extractionSource struct {
	r     *readmodel.Reader
	rules readmodel.ExtractionRules
}

func (s extractionSource) DueExtractions(ctx context.Context, limit int, skip, last []string) ([]domain.DueExtraction, error) {
	return s.r.DueExtractions(ctx, s.rules, time.Now(), limit, skip, last)
}

// memoryLookup finds a user's memories like a candidate's with the
// read model's search: full-text, fused with the nearest by vector when
// there is an embedding. Settle is settle: it waits for the memories
// projection to apply the log as it stands.
type memoryLookup struct {
	r      *readmodel.Reader
	settle func(context.Context) error
}

func (l memoryLookup) Settle(ctx context.Context) error { return l.settle(ctx) }

func (l memoryLookup) Similar(ctx context.Context, userID, query string, embedding []float32, limit int) ([]domain.KnownMemory, error) {
	if query == "" && embedding == nil {
		return nil, nil
	}
	hits, err := l.r.SearchMemories(ctx, userID, query, embedding, readmodel.MemoryFilter{}, limit)
	if err != nil {
		return nil, err
	}
	out := make([]domain.KnownMemory, len(hits))
	for i, h := range hits {
		m := h.Memory
		out[i] = domain.KnownMemory{ID: m.ID, Version: m.Version, Type: m.Type, Content: m.Content, Importance: m.Importance, Tags: m.Tags}
	}
	return out, nil
}
