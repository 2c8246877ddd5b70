package commands

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
)

// ExtractionRun is what one extraction run read and decided, to record.
type ExtractionRun struct {
	// Due is the session and messages the run read.
	Due domain.DueExtraction
	// RunID names the run; it is the events' correlation id too.
	RunID                           string
	Extractor, Model, PromptVersion string
	Candidates                      []domain.Candidate
	// Similar are the known memories each candidate was shown with.
	Similar   [][]domain.KnownMemory
	Proposals []domain.Proposal
	// Embeddings are the provider's embeddings of the candidates' texts,
	// by text, for the memories stored with those texts.
	Embeddings map[string][]float64
}

// RecordExtraction records a run and what it decided, in one append: the
// run (session.extracted, after version Due.After of the user's
// extraction stream, so that a run is recorded once however many
// processes extract, and runs over one user's sessions take turns), and each decision's memory events, each carrying
// the run's provenance and the model's reason. The append is guarded by
// the user (deleted meanwhile: ErrNotFound), by every message read at
// the version read (edited or redacted meanwhile: ErrConflict, and the
// next pass reads it afresh), and by every memory a decision changes at
// the version the model was shown (changed since: ErrConflict).
//
// Nothing the model proposed is applied unless it passes
// domain.CheckProposals and the rules a client's command passes:
// otherwise the error is ErrInvalid and nothing is recorded.
func (s *Service) RecordExtraction(ctx context.Context, meta Meta, run ExtractionRun) (Result, error) {
	d := run.Due
	if len(d.Messages) == 0 || d.FromSeq < 1 || d.ToSeq < d.FromSeq {
		return Result{}, fmt.Errorf("%w: extraction of session %s reads no messages", domain.ErrInvalid, d.SessionID)
	}
	if err := domain.CheckProposals(run.Candidates, run.Similar, run.Proposals); err != nil {
		return Result{}, fmt.Errorf("extraction of session %s: %w", d.SessionID, err)
	}
	u, err := userEntity.load(ctx, s, d.UserID)
	if err != nil {
		return Result{}, fmt.Errorf("extraction of session %s: %w", d.SessionID, err)
	}
	if err := meta.reach(u, "session", d.SessionID); err != nil {
		return Result{}, err
	}
	prov := &domain.Provenance{RunID: run.RunID, Extractor: run.Extractor, Model: run.Model,
		PromptVersion: run.PromptVersion, SessionID: d.SessionID, Messages: d.Messages}
	decided := make([]*domain.Proposal, len(run.Candidates))
	for i := range run.Proposals {
		decided[run.Proposals[i].Candidate] = &run.Proposals[i]
	}
	now := s.now()
	var memories []eventstore.StreamAppend
	decisions := make([]domain.Decision, len(run.Candidates))
	for i, c := range run.Candidates {
		p := decided[i]
		dec := domain.Decision{Action: domain.ActionNone, Candidate: c}
		if p != nil {
			dec.Action, dec.Reason, dec.Target = p.Action, p.Reason, p.Target
		}
		switch dec.Action {
		case domain.ActionAdd, domain.ActionSupersede:
			id := domain.NewID()
			dec.MemoryID = id.String()
			events, err := domain.StoreNew(u, domain.StoreMemory{
				MemoryID: id, Type: p.Memory.Type, Content: p.Memory.Content, Importance: &p.Memory.Importance,
				Tags: p.Memory.Tags, SourceSessionID: d.SessionID, Embedding: run.Embeddings[p.Memory.Content],
				EmbeddingDim: s.embed.Dim, Provenance: prov, Reason: p.Reason, Supersedes: p.Target,
			}, s.tokens, now)
			if err != nil {
				return Result{}, fmt.Errorf("extraction of session %s: decision %d: %w", d.SessionID, i, err)
			}
			evs, err := toStore(meta, u.Tenant(), events)
			if err != nil {
				return Result{}, err
			}
			memories = append(memories, eventstore.StreamAppend{Stream: stream(domain.StreamMemory, dec.MemoryID), Expected: eventstore.NoStream(), Events: evs})
			if dec.Action == domain.ActionSupersede {
				a, err := s.changeKnown(ctx, meta, u.Tenant(), run.Similar[i], p.Target, func(m *domain.Memory) ([]domain.Event, error) {
					return m.Supersede(dec.MemoryID, prov, p.Reason, now)
				})
				if err != nil {
					return Result{}, fmt.Errorf("extraction of session %s: decision %d: %w", d.SessionID, i, err)
				}
				memories = append(memories, a)
			}
		case domain.ActionUpdate:
			dec.MemoryID = p.Target
			content, importance, tags := p.Memory.Content, p.Memory.Importance, p.Memory.Tags
			a, err := s.changeKnown(ctx, meta, u.Tenant(), run.Similar[i], p.Target, func(m *domain.Memory) ([]domain.Event, error) {
				return m.Update(domain.UpdateMemory{Content: &content, Importance: &importance, Tags: &tags,
					Embedding: run.Embeddings[content], EmbeddingDim: s.embed.Dim, Provenance: prov, Reason: p.Reason}, s.tokens, now)
			})
			if err != nil {
				return Result{}, fmt.Errorf("extraction of session %s: decision %d: %w", d.SessionID, i, err)
			}
			if len(a.Events) == 0 {
				// The memory says this already: nothing to change.
				dec.Action, dec.MemoryID = domain.ActionNone, ""
			}
			memories = append(memories, a)
		}
		decisions[i] = dec
	}
	evs, err := toStore(meta, u.Tenant(), []domain.Event{{Type: domain.SessionExtracted, Data: domain.SessionExtractedData{
		RunID: run.RunID, SessionID: d.SessionID, UserID: d.UserID, FromSeq: d.FromSeq, ToSeq: d.ToSeq, Messages: d.Messages,
		Extractor: run.Extractor, Model: run.Model, PromptVersion: run.PromptVersion, Decisions: decisions,
	}}})
	if err != nil {
		return Result{}, err
	}
	expected := eventstore.Exactly(d.After)
	if d.After == 0 {
		expected = eventstore.NoStream()
	}
	appends := []eventstore.StreamAppend{
		{Stream: stream(domain.StreamExtraction, d.UserID), Expected: expected, Events: evs},
		{Stream: stream(domain.StreamUser, d.UserID), Expected: eventstore.Exactly(u.Version())},
	}
	for _, m := range d.Messages {
		// A message's own stream holds its edits and redaction: it is at
		// its version less one (none for a message never changed).
		appends = append(appends, eventstore.StreamAppend{Stream: stream(domain.StreamMessage, m.ID), Expected: eventstore.Exactly(m.Version - 1)})
	}
	res, err := s.store.AppendMulti(ctx, append(appends, memories...)...)
	if err != nil {
		return Result{}, fmt.Errorf("record extraction of session %s: %w", d.SessionID, err)
	}
	return Result{ID: run.RunID, Version: res[0].Version, Cursor: lastCursor(res)}, nil
}

// changeKnown folds the known memory id, which must be at the version the
// model was shown it (else ErrConflict: the next pass decides afresh),
// and returns decide's events as an append guarded at that version.
func (s *Service) changeKnown(ctx context.Context, meta Meta, tenant string, known []domain.KnownMemory, id string, decide func(*domain.Memory) ([]domain.Event, error)) (eventstore.StreamAppend, error) {
	version := 0
	for _, k := range known {
		if k.ID == id {
			version = k.Version
		}
	}
	m, err := memoryEntity.load(ctx, s, id)
	if errors.Is(err, domain.ErrNotFound) || errors.Is(err, domain.ErrErased) || err == nil && m.Version() != version {
		return eventstore.StreamAppend{}, fmt.Errorf("%w: memory %s changed since the model was shown it", eventstore.ErrConflict, id)
	} else if err != nil {
		return eventstore.StreamAppend{}, err
	}
	events, err := decide(m)
	if err != nil {
		return eventstore.StreamAppend{}, err
	}
	evs, err := toStore(meta, tenant, events)
	if err != nil {
		return eventstore.StreamAppend{}, err
	}
	return eventstore.StreamAppend{Stream: stream(domain.StreamMemory, id), Expected: eventstore.Exactly(version), Events: evs}, nil
}

// ExtractionRecorded tells whether the log holds a run of the user's
// after version after: another process recorded one (the projection may
// not show it yet), and a run from that version would be refused.
func (s *Service) ExtractionRecorded(ctx context.Context, userID string, after int) (bool, error) {
	v, err := s.store.StreamVersion(ctx, domain.StreamID(domain.StreamExtraction, userID))
	return v > after, err
}

// ExtractionVersion is the version of a user's extraction stream in the
// log: where a run by hand is recorded after.
func (s *Service) ExtractionVersion(ctx context.Context, userID string) (int, error) {
	return s.store.StreamVersion(ctx, domain.StreamID(domain.StreamExtraction, userID))
}

// similarQuery turns a candidate's text into a full-text query that any
// of its words matches (web search syntax), so that a memory sharing
// some of its words is found, the ones sharing most ranked first.
func similarQuery(text string) string {
	words := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127)
	})
	return strings.Join(words, " or ")
}
