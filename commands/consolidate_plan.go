package commands

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/arq-memory/arq/domain"
)

// mergePlan is what one attempt of a consolidation read and decided: the
// memories examined (oldest first once exact has run), each at the
// version read, the events decided for each, and the merges. Each
// decision's events are applied to the memory as well, so that a later
// decision is decided on the memory as the earlier ones leave it.
type mergePlan struct {
	svc      *Service
	runID    string
	now      time.Time
	memories []*domain.Memory
	byID     map[string]*domain.Memory
	versions map[string]int
	events   map[string][]domain.Event
	// merged are the memories superseded in this run.
	merged map[string]bool
	merges []Merge
	// embeddings are the provider's, by text, for the texts the model's
	// merges give memories.
	embeddings map[string][]float64
}

func newMergePlan(s *Service, runID string, now time.Time) *mergePlan {
	return &mergePlan{svc: s, runID: runID, now: now, byID: map[string]*domain.Memory{}, versions: map[string]int{},
		events: map[string][]domain.Event{}, merged: map[string]bool{}, embeddings: map[string][]float64{}}
}

// read adds a live memory, as folded from the log, to those examined.
func (p *mergePlan) read(m *domain.Memory) {
	p.memories = append(p.memories, m)
	p.byID[m.ID()] = m
	p.versions[m.ID()] = m.Version()
}

// provenance is the provenance of the run's merges by an extractor: no
// session and no messages, as a consolidation reads memories alone.
func (p *mergePlan) provenance(extractor, model, promptVersion string) *domain.Provenance {
	return &domain.Provenance{RunID: p.runID, Extractor: extractor, Model: model, PromptVersion: promptVersion, Messages: []domain.SourceMessage{}}
}

// exact plans the merges of exact duplicates: memories of one type whose
// texts are the same once trimmed and case-folded. The oldest is kept.
func (p *mergePlan) exact() error {
	slices.SortFunc(p.memories, plannedOrder)
	type key struct{ typ, text string }
	groups := map[key][]*domain.Memory{}
	var order []key
	for _, m := range p.memories {
		k := key{m.Type(), foldText(m.Content())}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], m)
	}
	prov := p.provenance(ExactExtractor, "", ExactPromptVersion)
	for _, k := range order {
		g := groups[k]
		if len(g) < 2 {
			continue
		}
		merge := Merge{Kept: g[0].ID(), Action: ActionExact, Reason: ExactReason}
		for _, d := range g[1:] {
			if err := p.supersede(d.ID(), g[0].ID(), prov, ExactReason); err != nil {
				return err
			}
			merge.Superseded = append(merge.Superseded, d.ID())
		}
		p.merges = append(p.merges, merge)
	}
	return nil
}

// decided plans the merge of the model's proposal pr on the memory
// candidate (see Consolidation.Consolidate); add and none change nothing.
func (p *mergePlan) decided(candidate string, pr domain.Proposal, prov *domain.Provenance) error {
	var kept, gone string
	switch pr.Action {
	case domain.ActionUpdate:
		kept, gone = pr.Target, candidate
	case domain.ActionSupersede:
		kept, gone = candidate, pr.Target
	default:
		return nil
	}
	if err := p.supersede(gone, kept, prov, pr.Reason); err != nil {
		return err
	}
	content, importance, tags := pr.Memory.Content, pr.Memory.Importance, pr.Memory.Tags
	if err := p.change(kept, func(m *domain.Memory) ([]domain.Event, error) {
		var emb []float64
		if content != m.Content() {
			emb = p.embeddings[content]
		}
		return m.Update(domain.UpdateMemory{Content: &content, Importance: &importance, Tags: &tags,
			Embedding: emb, EmbeddingDim: p.svc.embed.Dim, Provenance: prov, Reason: pr.Reason}, p.svc.tokens, p.now)
	}); err != nil {
		return err
	}
	p.merges = append(p.merges, Merge{Kept: kept, Superseded: []string{gone}, Action: pr.Action, Reason: pr.Reason})
	return nil
}

// embed asks the provider (if any) for embeddings of the texts props
// give memories, so that a memory whose text changes keeps an embedding.
// A failing provider blocks nothing: the memory goes without one.
func (p *mergePlan) embed(ctx context.Context, props []domain.Proposal) {
	if p.svc.embed.Provider == nil {
		return
	}
	var texts []string
	for _, pr := range props {
		if (pr.Action == domain.ActionUpdate || pr.Action == domain.ActionSupersede) && !slices.Contains(texts, pr.Memory.Content) {
			texts = append(texts, pr.Memory.Content)
		}
	}
	if len(texts) > 0 {
		p.svc.fill(ctx, "memory", texts, func(i int, e []float64) { p.embeddings[texts[i]] = e })
	}
}

// supersede plans marking memory id superseded by the memory by.
func (p *mergePlan) supersede(id, by string, prov *domain.Provenance, reason string) error {
	if err := p.change(id, func(m *domain.Memory) ([]domain.Event, error) {
		return m.Supersede(by, prov, reason, p.now)
	}); err != nil {
		return err
	}
	p.merged[id] = true
	return nil
}

// change plans decide's events for the memory id, and applies them to it.
func (p *mergePlan) change(id string, decide func(*domain.Memory) ([]domain.Event, error)) error {
	m, ok := p.byID[id]
	if !ok {
		return fmt.Errorf("%w: memory %s was not examined", domain.ErrInvalid, id)
	}
	events, err := decide(m)
	if err != nil {
		return fmt.Errorf("memory %s: %w", id, err)
	}
	for _, e := range events {
		m.Apply(e, m.Version()+1, p.now)
	}
	p.events[id] = append(p.events[id], events...)
	return nil
}

// foldText is the form in which two texts of exact duplicates are the
// same: trimmed, each letter folded to the least of its case variants (as
// strings.EqualFold compares them).
func foldText(s string) string {
	return strings.Map(func(r rune) rune {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		return least
	}, strings.TrimSpace(s))
}
