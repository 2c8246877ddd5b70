package commands

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
)

// MemoryList lists a user's live memories, for a consolidation.
type MemoryList interface {
	// LiveMemoryIDs returns the ids of up to limit of the user's live
	// memories, newest first.
	LiveMemoryIDs(ctx context.Context, userID string, limit int) ([]string, error)
}

// MaxConsolidated bounds the memories one consolidation examines: the
// user's newest ones. Older memories wait for a consolidation of their
// own (after the newest were merged, fewer are left above them).
const MaxConsolidated = 500

// consolidationTries bounds the attempts of a consolidation whose
// memories keep changing while it decides: each attempt may ask the
// model again, so it is a few, not retry's time budget.
const consolidationTries = 3

// The provenance of the merges of the exact pass, which asks no model.
const (
	ExactExtractor     = "consolidation"
	ExactPromptVersion = "exact-1"
	// ExactReason is the reason each exact merge records.
	ExactReason = "same text"
)

// Merge actions, as a consolidation reports them: ActionExact for
// memories of the same type and text, domain.ActionUpdate and
// domain.ActionSupersede for the model's merges.
const ActionExact = "exact"

// Consolidation merges a user's near-duplicate memories, by the rules an
// extraction's decisions follow (see Consolidate).
type Consolidation struct {
	svc    *Service
	ex     domain.Extractor
	list   MemoryList
	lookup MemoryLookup
}

// NewConsolidation returns a Consolidation over the user's memories that
// list lists, finding each one's similar memories with lookup; ex, when
// not nil, decides the near-duplicates (nil: exact duplicates alone).
func NewConsolidation(svc *Service, ex domain.Extractor, list MemoryList, lookup MemoryLookup) *Consolidation {
	return &Consolidation{svc: svc, ex: ex, list: list, lookup: lookup}
}

// Merge is one merge a consolidation recorded: the memory Kept, those
// superseded by it, the action and its reason.
type Merge struct {
	Kept       string
	Superseded []string
	Action     string
	Reason     string
}

// Consolidated is what a consolidation did: its run id, its append
// (Result.Cursor is zero when nothing was merged), its merges, how many
// memories it examined, and the model that decided (nil without one).
type Consolidated struct {
	RunID    string
	Result   Result
	Merges   []Merge
	Examined int
	Model    *string
}

// Consolidate merges the user's duplicate memories among their newest
// MaxConsolidated, as events, in one append.
//
// Exact duplicates (the same type, the same text once trimmed and
// case-folded) are merged without a model: the oldest is kept, the others
// are superseded by it. Then, with an extractor, each memory left is shown
// to Extractor.Decide as a candidate with its similar memories (found by
// the lookup, full-text and by the memory's embedding when it has one): a
// proposal "update" on a target merges the candidate into the target (the
// target takes the proposal's content, importance and tags, the candidate
// is superseded by it); "supersede" makes the candidate replace the
// target (the target is superseded, the candidate takes the proposal's
// content, importance and tags); "add" and "none" change nothing. A
// memory is shown once per consolidation, as a candidate or among one
// candidate's similar memories, so no two decisions touch one memory;
// what the model left alone may merge in a later consolidation.
//
// The model's answer passes domain.CheckProposals and the domain's rules
// (Memory.Update, Memory.Supersede), or the error is ErrExtractorRefused
// and nothing changes. Every event carries a Provenance with the run id
// and the reason; the events' metadata is meta's. The append is guarded
// by the user's stream and by every memory examined, at the version read:
// a memory changed meanwhile makes the whole consolidation decide afresh,
// a few times, then give up with ErrBusy.
func (c *Consolidation) Consolidate(ctx context.Context, meta Meta, userID string) (Consolidated, error) {
	if _, err := parseID("user", userID); err != nil {
		return Consolidated{}, err
	}
	runID := domain.NewID().String()
	for try := 1; ; try++ {
		out, err := c.attempt(ctx, meta, userID, runID)
		if err == nil || !errors.Is(err, eventstore.ErrConflict) {
			return out, err
		}
		if try == consolidationTries {
			return Consolidated{}, fmt.Errorf("%w: the memories kept changing while they were consolidated; nothing was changed, try again", ErrBusy)
		}
		t := time.NewTimer(retryWait << (4 * try))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return Consolidated{}, fmt.Errorf("%w: the memories kept changing while they were consolidated; nothing was changed (%w)", ErrBusy, ctx.Err())
		}
	}
}

// attempt reads the user's memories, decides the merges and appends them.
func (c *Consolidation) attempt(ctx context.Context, meta Meta, userID, runID string) (Consolidated, error) {
	s := c.svc
	u, err := userEntity.load(ctx, s, userID)
	if err != nil {
		return Consolidated{}, err
	}
	if err := meta.reach(u, "user", userID); err != nil {
		return Consolidated{}, err
	}
	if err := c.lookup.Settle(ctx); err != nil {
		return Consolidated{}, fmt.Errorf("wait for the memories to be projected: %w", err)
	}
	ids, err := c.list.LiveMemoryIDs(ctx, userID, MaxConsolidated)
	if err != nil {
		return Consolidated{}, fmt.Errorf("list memories of user %s: %w", userID, err)
	}
	now := s.now()
	p := newMergePlan(s, runID, now)
	for _, id := range ids {
		m, err := memoryEntity.load(ctx, s, id)
		if errors.Is(err, domain.ErrNotFound) || errors.Is(err, domain.ErrErased) {
			continue // gone since the list was read
		} else if err != nil {
			return Consolidated{}, err
		}
		if m.Live(now) && m.UserID() == userID {
			p.read(m)
		}
	}
	out := Consolidated{RunID: runID, Examined: len(p.memories)}
	if err := p.exact(); err != nil {
		return Consolidated{}, err
	}
	if c.ex != nil {
		model := c.ex.Model()
		out.Model = &model
		if err := c.near(ctx, userID, p); err != nil {
			return Consolidated{}, err
		}
	}
	out.Merges = p.merges
	if len(p.merges) == 0 {
		return out, nil
	}
	appends := []eventstore.StreamAppend{{Stream: stream(domain.StreamUser, userID), Expected: eventstore.Exactly(u.Version())}}
	for _, m := range p.memories {
		evs, err := toStore(meta, u.Tenant(), p.events[m.ID()])
		if err != nil {
			return Consolidated{}, err
		}
		appends = append(appends, eventstore.StreamAppend{Stream: stream(domain.StreamMemory, m.ID()), Expected: eventstore.Exactly(p.versions[m.ID()]), Events: evs})
	}
	res, err := s.store.AppendMulti(ctx, appends...)
	if err != nil {
		return Consolidated{}, fmt.Errorf("record consolidation of user %s: %w", userID, err)
	}
	out.Result = Result{ID: runID, Version: res[0].Version, Cursor: lastCursor(res)}
	return out, nil
}

// near shows the memories the exact pass left to the extractor, each
// with its similar ones, and plans the merges it proposes.
func (c *Consolidation) near(ctx context.Context, userID string, p *mergePlan) error {
	shown := map[string]bool{}
	for id := range p.merged {
		shown[id] = true
	}
	var cands []domain.Candidate
	var similar [][]domain.KnownMemory
	var candIDs []string
	for _, m := range p.memories {
		if shown[m.ID()] {
			continue
		}
		var emb []float32
		if e := m.Embedding(); len(e) > 0 {
			emb = e
		}
		hits, err := c.lookup.Similar(ctx, userID, similarQuery(m.Content()), emb, similarShown+1)
		if err != nil {
			return fmt.Errorf("find memories like memory %s: %w", m.ID(), err)
		}
		var known []domain.KnownMemory
		for _, h := range hits {
			k, ok := p.byID[h.ID]
			if h.ID == m.ID() || shown[h.ID] || !ok || len(known) == similarShown {
				continue // itself, shown or merged already, or beyond the memories examined
			}
			known = append(known, domain.KnownMemory{ID: k.ID(), Version: k.Version(), Type: k.Type(), Content: k.Content(), Importance: k.Importance(), Tags: k.Tags()})
		}
		if len(known) == 0 {
			continue
		}
		shown[m.ID()] = true
		for _, k := range known {
			shown[k.ID] = true
		}
		cands = append(cands, domain.Candidate{Type: m.Type(), Content: m.Content(), Importance: m.Importance(), Tags: m.Tags()})
		similar = append(similar, known)
		candIDs = append(candIDs, m.ID())
	}
	prov := p.provenance(c.ex.Name(), c.ex.Model(), c.ex.PromptVersion())
	for from := 0; from < len(cands); from += domain.MaxCandidates {
		to := min(from+domain.MaxCandidates, len(cands))
		props, err := c.ex.Decide(ctx, cands[from:to], similar[from:to])
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("decide: %w", ctx.Err())
			}
			// What the extractor said of itself (its endpoint, its
			// error) is the server's to read, not the caller's.
			log := c.svc.embed.Log
			if log == nil {
				log = slog.Default()
			}
			log.Warn("extractor failed; the consolidation changed nothing", "extractor", c.ex.Name(), "model", c.ex.Model(), "err", err)
			return fmt.Errorf("%w: it did not decide; nothing was changed", ErrExtractorFailed)
		}
		if err := domain.CheckProposals(cands[from:to], similar[from:to], props); err != nil {
			return refused(err)
		}
		p.embed(ctx, props)
		for _, pr := range props {
			if err := p.decided(candIDs[from+pr.Candidate], pr, prov); err != nil {
				return refused(err)
			}
		}
	}
	return nil
}

// ErrExtractorFailed is the error of a consolidation whose extractor
// failed, or answered what the rules refuse (ErrExtractorRefused):
// nothing was changed.
var ErrExtractorFailed = errors.New("extractor failed")

// ErrExtractorRefused is the error of a consolidation whose extractor
// answered what the rules refuse: nothing was changed. It is an
// ErrExtractorFailed.
var ErrExtractorRefused = fmt.Errorf("%w: its answer broke the rules", ErrExtractorFailed)

// refused is the error of a model's answer the rules refuse. The rules'
// error is quoted, not wrapped: it names the answer's fields, and must
// not pass for the caller's invalid input (domain.ErrInvalid).
func refused(err error) error {
	if errors.Is(err, domain.ErrInvalid) {
		return fmt.Errorf("%w (%v); nothing was changed", ErrExtractorRefused, err)
	}
	return err
}

// plannedOrder sorts memories oldest first (by creation, then id), the
// order in which the oldest of duplicates is kept.
func plannedOrder(a, b *domain.Memory) int {
	if c := a.CreatedAt().Compare(b.CreatedAt()); c != 0 {
		return c
	}
	return strings.Compare(a.ID(), b.ID())
}
