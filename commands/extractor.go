package commands

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
)

// MemoryLookup finds the user's live memories that resemble a text (by
// full-text and, given an embedding, by vector, as search does), each
// with the version it was read at.
type MemoryLookup interface {
	// Settle waits until Similar reads the memories as they stand after
	// every event committed so far: a fact a run stored a moment ago is
	// known to the next. A run settles once, before its lookups.
	Settle(ctx context.Context) error
	Similar(ctx context.Context, userID, query string, embedding []float32, limit int) ([]domain.KnownMemory, error)
}

// Extraction runs an extractor over a session's messages and records what
// it decided (see RecordExtraction). The background pass and a run by
// hand (arq memories extract) share it.
type Extraction struct {
	svc    *Service
	ex     domain.Extractor
	lookup MemoryLookup
}

// NewExtraction returns an Extraction with ex, finding each candidate's
// known memories with lookup.
func NewExtraction(svc *Service, ex domain.Extractor, lookup MemoryLookup) *Extraction {
	return &Extraction{svc: svc, ex: ex, lookup: lookup}
}

// similarShown is how many known memories a candidate is shown with.
const similarShown = 5

// ExtractorActor is the actor of the events an extraction records.
const ExtractorActor = "system:extractor"

// Outcome is what one run recorded: its id, where its events are, and
// how many candidates each action took.
type Outcome struct {
	RunID   string
	Result  Result
	Actions map[string]int
}

// Run extracts d: it asks the extractor for candidates, finds each one's
// known memories, asks for a decision on each, and records the run and
// its decisions with the run id as their correlation id. A run without
// candidates is recorded too, so its messages are not read again. An
// answer the rules refuse is ErrInvalid and records nothing.
func (x *Extraction) Run(ctx context.Context, d domain.DueExtraction) (Outcome, error) {
	runID := domain.NewID().String()
	meta := Meta{RequestID: runID, Actor: ExtractorActor}
	cands, err := x.ex.Extract(ctx, d.Lines)
	if err != nil {
		return Outcome{}, fmt.Errorf("extract: %w", err)
	}
	if err := domain.CheckCandidates(cands); err != nil {
		return Outcome{}, fmt.Errorf("extract: %w", err)
	}
	run := ExtractionRun{Due: d, RunID: runID, Extractor: x.ex.Name(), Model: x.ex.Model(), PromptVersion: x.ex.PromptVersion(),
		Candidates: cands, Similar: make([][]domain.KnownMemory, len(cands)), Embeddings: map[string][]float64{}}
	if len(cands) > 0 {
		texts := make([]string, len(cands))
		for i, c := range cands {
			texts[i] = c.Content
		}
		embs := x.embed(ctx, texts, run.Embeddings)
		if err := x.lookup.Settle(ctx); err != nil {
			return Outcome{}, fmt.Errorf("wait for the memories to be projected: %w", err)
		}
		for i, c := range cands {
			var e []float32
			if embs != nil {
				e = embs[i]
			}
			if run.Similar[i], err = x.lookup.Similar(ctx, d.UserID, similarQuery(c.Content), e, similarShown); err != nil {
				return Outcome{}, fmt.Errorf("find memories like candidate %d: %w", i, err)
			}
		}
		if run.Proposals, err = x.ex.Decide(ctx, cands, run.Similar); err != nil {
			return Outcome{}, fmt.Errorf("decide: %w", err)
		}
		if err := domain.CheckProposals(cands, run.Similar, run.Proposals); err != nil {
			return Outcome{}, fmt.Errorf("decide: %w", err)
		}
		var more []string
		for _, p := range run.Proposals {
			if _, ok := run.Embeddings[p.Memory.Content]; !ok && p.Action != domain.ActionNone {
				more = append(more, p.Memory.Content)
			}
		}
		x.embed(ctx, more, run.Embeddings)
	}
	res, err := x.svc.RecordExtraction(ctx, meta, run)
	if err != nil {
		return Outcome{}, err
	}
	out := Outcome{RunID: runID, Result: res, Actions: map[string]int{}}
	for i := range cands {
		out.Actions[domain.ActionNone]++
		for _, p := range run.Proposals {
			if p.Candidate == i && p.Action != domain.ActionNone {
				out.Actions[domain.ActionNone]--
				out.Actions[p.Action]++
			}
		}
	}
	return out, nil
}

// embed asks the provider (if any) for embeddings of texts and keeps them
// by text in into; it returns them in order, nil when there are none. A
// failing provider blocks nothing: the memories go without embeddings and
// are compared by text alone.
func (x *Extraction) embed(ctx context.Context, texts []string, into map[string][]float64) [][]float32 {
	if len(texts) == 0 || x.svc.embed.Provider == nil {
		return nil
	}
	out, err := x.svc.Embed(ctx, texts)
	if err != nil {
		x.svc.embed.Log.Warn("no embedding from the provider; extracting without", "count", len(texts), "err", err)
		return nil
	}
	for i, e := range out {
		into[texts[i]] = domain.Float64s(e)
	}
	return out
}

// ExtractionSource finds sessions due for an extraction.
type ExtractionSource interface {
	// DueExtractions returns up to limit due sessions, longest waiting
	// first but those in last after all others, leaving out those in skip.
	DueExtractions(ctx context.Context, limit int, skip, last []string) ([]domain.DueExtraction, error)
}

// ExtractionWorker extracts memories in the background, each message
// once, also with several processes running: a run is recorded only at
// the version of the session's extraction stream it started from, and a
// session whose run is in the log already is passed over before the model
// is asked. An extractor that fails, is slow or answers what the rules
// refuse never blocks a command: the session backs off alone (up to
// maxBackoff), sessions that never failed go first, and a pass ends at
// its maxPassFailures-th failure.
type ExtractionWorker struct {
	run      *Extraction
	src      ExtractionSource
	interval time.Duration
	timeout  time.Duration
	log      *slog.Logger
	failures backoffs
}

// NewExtractionWorker returns a worker that looks for due sessions every
// interval and gives a run at most timeout.
func NewExtractionWorker(run *Extraction, src ExtractionSource, interval, timeout time.Duration, log *slog.Logger) *ExtractionWorker {
	return &ExtractionWorker{run: run, src: src, interval: interval, timeout: timeout, log: log, failures: newBackoffs(interval)}
}

// Run extracts from due sessions until ctx ends.
func (x *ExtractionWorker) Run(ctx context.Context) error {
	return passes(ctx, x.interval, x.log, "extraction pass", x.RunOnce)
}

// RunOnce extracts from the sessions due now and says how many runs it
// recorded.
func (x *ExtractionWorker) RunOnce(ctx context.Context) (int, error) {
	now := time.Now()
	waiting, failed := x.failures.split(now)
	due, err := x.src.DueExtractions(ctx, 20, waiting, failed)
	if err != nil || len(due) == 0 {
		return 0, err
	}
	n, failures := 0, 0
	// Each user's runs recorded in this pass, as the version of the
	// user's extraction stream they started from (which every due session
	// of the user read, in one snapshot) and the version they left: the
	// user's other sessions follow on from it, rather than wait for the
	// projection to show it. Every version between is this pass's own, of
	// other sessions; another process's run meanwhile makes the next one
	// here conflict, and the next pass decides afresh.
	type chain struct{ from, at int }
	chains := map[string]chain{}
	for _, d := range retriedLastBy(due, func(d domain.DueExtraction) string { return d.SessionID }, failed) {
		if x.failures.waiting(d.SessionID, now) {
			continue
		}
		if c, ok := chains[d.UserID]; ok && d.After == c.from {
			d.After = c.at
		}
		from := d.After
		recorded, err := x.run.svc.ExtractionRecorded(ctx, d.UserID, d.After)
		if err != nil {
			return n, err
		}
		if recorded {
			continue // by another process; the projection shows it soon
		}
		rctx, cancel := context.WithTimeout(ctx, x.timeout)
		out, err := x.run.Run(rctx, d)
		cancel()
		switch {
		case err == nil:
			n++
			if c, ok := chains[d.UserID]; ok {
				from = c.from
			}
			chains[d.UserID] = chain{from: from, at: out.Result.Version}
			x.failures.forget(d.SessionID)
			x.log.Info("memories extracted", "session_id", d.SessionID, "run_id", out.RunID, "messages", len(d.Messages),
				"added", out.Actions[domain.ActionAdd], "updated", out.Actions[domain.ActionUpdate],
				"superseded", out.Actions[domain.ActionSupersede], "unchanged", out.Actions[domain.ActionNone])
		case errors.Is(err, eventstore.ErrConflict):
			// Another run of the user's was recorded first, or a message
			// or memory changed while the model read it: the next pass
			// decides afresh.
		case errors.Is(err, domain.ErrNotFound), errors.Is(err, domain.ErrErased):
			// The user went meanwhile.
		case ctx.Err() != nil:
			return n, ctx.Err()
		default:
			// The errors name fields and endpoints, never the text the
			// model read or wrote.
			wait := x.failures.fail(d.SessionID)
			msg := "extractor failed; nothing changed, the session is tried again later"
			if errors.Is(err, domain.ErrInvalid) {
				msg = "extractor's answer refused; nothing changed, the session is tried again later"
			}
			x.log.Warn(msg, "session_id", d.SessionID, "extractor", x.run.ex.Name(), "model", x.run.ex.Model(), "retry_in", wait, "err", err)
			if failures++; failures >= maxPassFailures {
				return n, nil
			}
		}
	}
	return n, nil
}
