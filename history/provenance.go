package history

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/arq-memory/arq/domain"
)

// Derivation is one event of a memory that an extraction decided: when,
// who and through which request, the run, extractor, model and prompts
// behind it, the model's reason, and the messages it read, each as it
// was at the version read.
type Derivation struct {
	Version    int       `json:"version"`
	EventID    string    `json:"event_id"`
	Type       string    `json:"event_type"`
	RecordedAt time.Time `json:"recorded_at"`
	// Action is the extraction's: add, supersede (a new memory that
	// replaced Supersedes), update, or superseded (this memory was
	// replaced by SupersededBy).
	Action    string `json:"action"`
	Actor     string `json:"actor"`
	RequestID string `json:"request_id"`
	RunID     string `json:"run_id"`
	Extractor string `json:"extractor"`
	// Model is empty for an extractor that names none.
	Model         string `json:"model"`
	PromptVersion string `json:"prompt_version"`
	SessionID     string `json:"session_id"`
	// Reason is the model's, personal to the memory's user: empty once
	// the memory's data is erased.
	Reason       string `json:"reason"`
	Supersedes   string `json:"supersedes,omitempty"`
	SupersededBy string `json:"superseded_by,omitempty"`
	// Erased says that the memory's personal data was erased (with it,
	// or with its user): Reason is empty.
	Erased   bool     `json:"erased"`
	Messages []Source `json:"messages"`
}

// Source is a message an extraction read, as it was at the version read.
type Source struct {
	ID        string `json:"id"`
	SessionID string `json:"session_id"`
	Seq       int    `json:"seq"`
	Version   int    `json:"version"`
	Role      string `json:"role"`
	Content   string `json:"content"`
	// Redacted says that the message was deleted (redacted) since; its
	// text as it was read is still shown, as a read by version shows it.
	Redacted bool `json:"redacted"`
	// Erased says that the message's text was erased since (with it, or
	// with its user): role and content are empty.
	Erased bool `json:"erased"`
}

// Provenance is every event of a memory that an extraction decided,
// oldest first: none for a memory a client stored and changed. A message
// erased since is listed, marked erased, without its text. Of an erased
// memory (or one of an erased user) every such event is still listed,
// marked erased, without the model's reason.
func (r *Reader) Provenance(ctx context.Context, memoryID string) ([]Derivation, error) {
	steps, err := r.steps(ctx, domain.KindMemory, memoryID)
	if err != nil {
		return nil, err
	}
	gone := erased(steps)
	reads := messageReads{r: r, folded: map[string]*messageFold{}}
	out := []Derivation{}
	for _, s := range steps {
		e, err := domain.DecodeEvent(s.rec.Type, s.rec.SchemaVersion, s.rec.Data)
		if err != nil {
			return nil, fmt.Errorf("provenance of memory %s: event %s: %w", memoryID, s.rec.EventID, err)
		}
		var (
			prov                   *domain.Provenance
			reason, supersedes, by string
		)
		switch d := e.Data.(type) {
		case domain.MemoryStoredData:
			prov, reason, supersedes = d.Provenance, d.Reason, d.Supersedes
		case domain.MemoryUpdatedData:
			prov, reason = d.Provenance, d.Reason
		case domain.MemorySupersededData:
			prov, reason, by = d.Provenance, d.Reason, d.SupersededBy
		}
		if prov == nil {
			continue
		}
		if gone {
			reason = ""
		}
		sources := make([]Source, 0, len(prov.Messages))
		for _, m := range prov.Messages {
			src, err := reads.at(ctx, prov.SessionID, m)
			if err != nil {
				return nil, fmt.Errorf("provenance of memory %s: %w", memoryID, err)
			}
			sources = append(sources, src)
		}
		out = append(out, Derivation{Version: s.version, EventID: s.rec.EventID, Type: s.rec.Type, RecordedAt: s.rec.RecordedAt,
			Action: domain.DerivationAction(s.rec.Type, supersedes), Actor: s.rec.Metadata.Actor, RequestID: s.rec.Metadata.CorrelationID,
			RunID: prov.RunID, Extractor: prov.Extractor, Model: prov.Model, PromptVersion: prov.PromptVersion, SessionID: prov.SessionID,
			Reason: reason, Supersedes: supersedes, SupersededBy: by, Erased: gone, Messages: sources})
	}
	return out, nil
}

// messageReads folds each message a memory's provenance names once,
// however many of its events read it.
type messageReads struct {
	r      *Reader
	folded map[string]*messageFold
}

// messageFold is a message's states by version, and whether it is
// redacted or erased now.
type messageFold struct {
	states           map[int]map[string]any
	redacted, erased bool
}

// at is the message m as it was at the version read.
func (mr messageReads) at(ctx context.Context, sessionID string, m domain.SourceMessage) (Source, error) {
	f, ok := mr.folded[m.ID]
	if !ok {
		var err error
		if f, err = mr.r.foldMessage(ctx, m.ID); err != nil {
			return Source{}, err
		}
		mr.folded[m.ID] = f
	}
	src := Source{ID: m.ID, SessionID: sessionID, Seq: m.Seq, Version: m.Version, Redacted: f.redacted, Erased: f.erased}
	if f.erased {
		return src, nil
	}
	state, ok := f.states[m.Version]
	if !ok {
		// Only a log changed by hand could name a version that never was.
		return Source{}, fmt.Errorf("message %s has no version %d in the log", m.ID, m.Version)
	}
	src.SessionID, _ = state["session_id"].(string)
	src.Seq, _ = state["seq"].(int)
	src.Role, _ = state["role"].(string)
	src.Content, _ = state["content"].(string)
	return src, nil
}

// foldMessage folds a message's events, keeping its state after each.
func (r *Reader) foldMessage(ctx context.Context, id string) (*messageFold, error) {
	steps, err := r.steps(ctx, domain.KindMessage, id)
	if errors.Is(err, domain.ErrNotFound) {
		// Only a log changed by hand could name a message it lacks; not
		// the caller's not found.
		return nil, fmt.Errorf("message %s is not in the log", id)
	}
	if err != nil {
		return nil, err
	}
	out := &messageFold{states: map[int]map[string]any{}, erased: erased(steps)}
	if out.erased {
		return out, nil
	}
	f := newFolder(domain.KindMessage)
	var last map[string]any
	for _, s := range steps {
		e, err := domain.DecodeEvent(s.rec.Type, s.rec.SchemaVersion, s.rec.Data)
		if err != nil {
			return nil, fmt.Errorf("message %s: event %s: %w", id, s.rec.EventID, err)
		}
		f.apply(e, s.version, s.rec.RecordedAt)
		if s.version == 1 {
			f.seq(s.rec.Version)
		}
		last = f.render(time.Time{})
		out.states[s.version] = last
	}
	out.redacted, _ = last["redacted"].(bool)
	return out, nil
}
