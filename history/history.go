// Package history reads entities as they were at a version, folded from
// the event log, so that what a context held can be shown as it was after
// its items changed or were deleted.
package history

import (
	"context"
	"errors"
	"fmt"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
)

// Reader folds entities from the log.
type Reader struct {
	store *eventstore.Store
}

// New returns a Reader over store.
func New(store *eventstore.Store) *Reader { return &Reader{store: store} }

// SummaryAt is the version-th summary of a session; domain.ErrErased
// when its text was erased.
func (r *Reader) SummaryAt(ctx context.Context, sessionID string, version int) (domain.SessionSummarizedData, error) {
	recs, err := r.store.ReadStreamRange(ctx, domain.StreamID(domain.StreamSummary, sessionID), version, version)
	if err != nil {
		return domain.SessionSummarizedData{}, fmt.Errorf("read summary %d of session %s: %w", version, sessionID, err)
	}
	if len(recs) != 1 {
		return domain.SessionSummarizedData{}, fmt.Errorf("%w: summary %d of session %s", domain.ErrNotFound, version, sessionID)
	}
	if recs[0].Erased {
		return domain.SessionSummarizedData{}, fmt.Errorf("%w: summary %d of session %s", domain.ErrErased, version, sessionID)
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
	// Erased says that the item's text was erased since: it is left
	// empty (as are Role, Name and Type).
	Erased bool `json:"erased,omitempty"`
}

// Items returns the items of a snapshot of sessionID with their texts as
// they were, in the snapshot's order; an item erased since is listed,
// marked erased, without its text.
func (r *Reader) Items(ctx context.Context, sessionID string, items []domain.SnapshotItem) ([]Item, error) {
	out := make([]Item, 0, len(items))
	for _, it := range items {
		x := Item{SnapshotItem: it}
		switch it.Kind {
		case domain.ItemMessage, domain.ItemMemory: // named as their entities' kinds
			kind, err := domain.ParseKind(it.Kind)
			if err != nil {
				return nil, fmt.Errorf("snapshot item %s: %w", it.ID, err)
			}
			state, err := r.At(ctx, kind, it.ID, it.Version, nil)
			if errors.Is(err, domain.ErrErased) {
				x.Erased = true
				break
			}
			if err != nil {
				return nil, err
			}
			x.Content, _ = state["content"].(string)
			x.Role, _ = state["role"].(string)
			x.Name, _ = state["name"].(string)
			x.Type, _ = state["type"].(string)
		case domain.ItemSummary:
			s, err := r.SummaryAt(ctx, sessionID, it.Version)
			if errors.Is(err, domain.ErrErased) {
				x.Erased = true
				break
			}
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
