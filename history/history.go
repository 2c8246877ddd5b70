// Package history reads entities as they were at a version, folded from
// the event log, so that what a context held can be shown as it was after
// its items changed or were deleted.
package history

import (
	"context"
	"fmt"
	"time"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
)

// Reader folds entities from the log.
type Reader struct {
	store *eventstore.Store
}

// New returns a Reader over store.
func New(store *eventstore.Store) *Reader { return &Reader{store: store} }

// fold applies recorded events to apply, versions shifted by offset.
func fold(recs []eventstore.Recorded, offset int, apply func(domain.Event, int, time.Time)) error {
	for _, r := range recs {
		e, err := domain.DecodeEvent(r.Type, r.SchemaVersion, r.Data)
		if err != nil {
			return fmt.Errorf("event %s: %w", r.EventID, err)
		}
		apply(e, r.Version+offset, r.RecordedAt)
	}
	return nil
}

// MessageAt is message id, the seq-th of its session, at version (1 is as
// appended; each edit or redaction adds one).
func (r *Reader) MessageAt(ctx context.Context, sessionID string, seq int, id string, version int) (*domain.Message, error) {
	m := &domain.Message{}
	appended, err := r.store.ReadStreamRange(ctx, domain.StreamID(domain.StreamMessageLog, sessionID), seq, seq)
	if err != nil {
		return nil, fmt.Errorf("read message %s: %w", id, err)
	}
	if err := fold(appended, 1-seq, m.Apply); err != nil {
		return nil, fmt.Errorf("read message %s: %w", id, err)
	}
	if m.ID() != id {
		return nil, fmt.Errorf("%w: message %s is not number %d of session %s", domain.ErrNotFound, id, seq, sessionID)
	}
	if version > 1 {
		own, err := r.store.ReadStreamToVersion(ctx, domain.StreamID(domain.StreamMessage, id), version-1)
		if err != nil {
			return nil, fmt.Errorf("read message %s: %w", id, err)
		}
		if err := fold(own, 1, m.Apply); err != nil {
			return nil, fmt.Errorf("read message %s: %w", id, err)
		}
	}
	m.SetSeq(seq)
	return m, nil
}

// MemoryAt is memory id at version.
func (r *Reader) MemoryAt(ctx context.Context, id string, version int) (*domain.Memory, error) {
	recs, err := r.store.ReadStreamToVersion(ctx, domain.StreamID(domain.StreamMemory, id), version)
	if err != nil {
		return nil, fmt.Errorf("read memory %s: %w", id, err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("%w: memory %s", domain.ErrNotFound, id)
	}
	m := &domain.Memory{}
	if err := fold(recs, 0, m.Apply); err != nil {
		return nil, fmt.Errorf("read memory %s: %w", id, err)
	}
	return m, nil
}

// SummaryAt is the version-th summary of a session.
func (r *Reader) SummaryAt(ctx context.Context, sessionID string, version int) (domain.SessionSummarizedData, error) {
	recs, err := r.store.ReadStreamRange(ctx, domain.StreamID(domain.StreamSummary, sessionID), version, version)
	if err != nil {
		return domain.SessionSummarizedData{}, fmt.Errorf("read summary %d of session %s: %w", version, sessionID, err)
	}
	if len(recs) != 1 {
		return domain.SessionSummarizedData{}, fmt.Errorf("%w: summary %d of session %s", domain.ErrNotFound, version, sessionID)
	}
	e, err := domain.DecodeEvent(recs[0].Type, recs[0].SchemaVersion, recs[0].Data)
	if err != nil {
		return domain.SessionSummarizedData{}, fmt.Errorf("read summary %d of session %s: %w", version, sessionID, err)
	}
	d, ok := e.Data.(domain.SessionSummarizedData)
	if !ok {
		return domain.SessionSummarizedData{}, fmt.Errorf("%w: summary %d of session %s", domain.ErrNotFound, version, sessionID)
	}
	return d, nil
}

// Item is a context item with its text as it was at the recorded version.
type Item struct {
	domain.SnapshotItem
	Role    string `json:"role,omitempty"`
	Name    string `json:"name,omitempty"`
	Type    string `json:"type,omitempty"`
	Content string `json:"content"`
}

// Items returns the items of a snapshot of sessionID with their texts as
// they were, in the snapshot's order.
func (r *Reader) Items(ctx context.Context, sessionID string, items []domain.SnapshotItem) ([]Item, error) {
	out := make([]Item, 0, len(items))
	for _, it := range items {
		x := Item{SnapshotItem: it}
		switch it.Kind {
		case domain.ItemMessage:
			m, err := r.MessageAt(ctx, sessionID, it.Seq, it.ID, it.Version)
			if err != nil {
				return nil, err
			}
			x.Role, x.Name, x.Content = m.Role(), m.Name(), m.Content()
		case domain.ItemMemory:
			m, err := r.MemoryAt(ctx, it.ID, it.Version)
			if err != nil {
				return nil, err
			}
			x.Type, x.Content = m.Type(), m.Content()
		case domain.ItemSummary:
			s, err := r.SummaryAt(ctx, sessionID, it.Version)
			if err != nil {
				return nil, err
			}
			x.Content = s.Content
		default:
			return nil, fmt.Errorf("snapshot item of unknown kind %q", it.Kind)
		}
		out = append(out, x)
	}
	return out, nil
}
