package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
)

// Deleting a message with what was derived from it (DELETE
// /v1/messages/{id}?cascade=derived). The memories derived from a message
// are those an extraction stored from it: a memory.stored event whose
// provenance names the message. A memory a client stored is never one,
// even if an extraction later updated it from the message (its text is
// the client's first), nor is a memory that only an update or a
// supersession read the message for.
//
// They are found in the log, not in the provenance projection: a command
// decides from the log, so a memory stored a moment ago, which the
// projection may not hold yet, is found too, and what the projection
// lost (an erasure removes a memory's rows) cannot hide one. The lookup
// reads the user's memory.stored events by their user_id (indexed, see
// eventstore.UserEvents), as the log keeps them: the provenance is in the
// clear.

// StoredFrom returns the ids of the memories an extraction stored from
// the message id, whatever became of them since (deleted, superseded,
// expired or erased), in the order of their streams. The message must be
// in meta's scope (or it is ErrNotFound), whatever became of it.
func (s *Service) StoredFrom(ctx context.Context, meta Meta, id string) ([]string, error) {
	if _, err := parseID("message", id); err != nil {
		return nil, err
	}
	opening, err := s.store.MessageOpening(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("find message %s: %w", id, err)
	}
	var msg struct {
		UserID string `json:"user_id"`
	}
	if len(opening) != 1 || json.Unmarshal(opening[0].Data, &msg) != nil || msg.UserID == "" {
		return nil, fmt.Errorf("%w: message %s", domain.ErrNotFound, id)
	}
	if _, err := s.tenantOf(ctx, meta, msg.UserID, "message", id); err != nil {
		return nil, err
	}
	return s.storedFrom(ctx, msg.UserID, id)
}

// storedFrom returns the ids of userID's memories an extraction stored
// from message id.
func (s *Service) storedFrom(ctx context.Context, userID, id string) ([]string, error) {
	stored, err := s.store.UserEvents(ctx, userID, "", []string{domain.MemoryStored})
	if err != nil {
		return nil, fmt.Errorf("find memories derived from message %s: %w", id, err)
	}
	out := []string{}
	for _, e := range stored {
		var d struct {
			MemoryID   string             `json:"memory_id"`
			Provenance *domain.Provenance `json:"provenance"`
		}
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return nil, fmt.Errorf("find memories derived from message %s: event %s: %w", id, e.EventID, err)
		}
		if d.Provenance.Names(id) {
			out = append(out, d.MemoryID)
		}
	}
	return out, nil
}

// RedactMessageWithDerived deletes every live memory an extraction stored
// from the message id and redacts the message, in one transaction: all
// of it happens, or none. expected (If-Match) is the message's: a stale
// one changes nothing. A derived memory already gone (deleted,
// superseded, expired or erased) is left as it is; a change of one
// racing with this command makes it decide afresh.
func (s *Service) RedactMessageWithDerived(ctx context.Context, meta Meta, id string, expected []int, reason string) (Result, error) {
	return executeAlong(ctx, s, meta, messageEntity, id, expected,
		func(m *domain.Message) ([]domain.Event, error) { return m.Redact(reason) },
		func(m *domain.Message, tenant string) ([]eventstore.StreamAppend, error) {
			return s.deleteStoredFrom(ctx, meta, tenant, m.UserID(), id)
		})
}

// deleteStoredFrom decides the deletion of each live memory of userID an
// extraction stored from message id, as appends at the versions decided
// on, recorded in tenant (the user's guard is the message's).
func (s *Service) deleteStoredFrom(ctx context.Context, meta Meta, tenant, userID, id string) ([]eventstore.StreamAppend, error) {
	ids, err := s.storedFrom(ctx, userID, id)
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	var out []eventstore.StreamAppend
	for _, mid := range ids {
		mem, err := memoryEntity.load(ctx, s, mid)
		if errors.Is(err, domain.ErrNotFound) || errors.Is(err, domain.ErrErased) {
			continue // gone already
		}
		if err != nil {
			return nil, err
		}
		decided, err := mem.Delete(s.now())
		if errors.Is(err, domain.ErrNotFound) {
			continue // its time ran out: gone from every read already
		}
		if err != nil {
			return nil, fmt.Errorf("delete memory %s derived from message %s: %w", mid, id, err)
		}
		evs, err := toStore(meta, tenant, decided)
		if err != nil {
			return nil, err
		}
		out = append(out, eventstore.StreamAppend{Stream: stream(domain.StreamMemory, mid), Expected: eventstore.Exactly(mem.Version()), Events: evs})
	}
	return out, nil
}

// EraseMessageWithDerived erases, to the end, every memory an extraction
// stored from the message id (also one deleted, superseded or expired
// since: its text, derived from the message, is still in the log), then
// the message, as EraseMessage does. Each is its own erasure, memories
// first: a failure midway leaves the memories erased so far erased, and
// running it again, which finds the same memories in the log, erases the
// rest and the message. The result is the message's, with the cursor of
// the last event appended.
func (e *Eraser) EraseMessageWithDerived(ctx context.Context, meta Meta, id string) (Result, error) {
	ids, err := e.svc.StoredFrom(ctx, meta, id)
	if err != nil {
		return Result{}, err
	}
	var last eventstore.Cursor
	for _, mid := range ids {
		res, err := e.EraseMemory(ctx, meta, mid)
		if err != nil {
			return Result{}, fmt.Errorf("erase memory %s derived from message %s: %w", mid, id, err)
		}
		if !res.Cursor.IsZero() {
			last = res.Cursor
		}
	}
	res, err := e.EraseMessage(ctx, meta, id)
	if err != nil {
		return res, err
	}
	if res.Cursor.IsZero() {
		res.Cursor = last
	}
	return res, nil
}
