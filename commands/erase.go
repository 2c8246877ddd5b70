package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
)

// Erasure is crypto-shredding: people's data is sealed in the log under
// data keys (domain/personal.go, package vault), and erasing deletes the
// keys. Every erasure goes in this order, so that it may stop anywhere
// and be run again:
//
//  1. A user not deleted yet is deleted, which releases their external
//     id: the claim is named after the external id, which only their
//     data key still opens.
//  2. The data keys are deleted (Shredder): from then on the text is
//     unreadable in the log, in exports and in every copy of them.
//  3. The answers kept for retries of the requests behind the erased
//     events are forgotten (AnswerEraser).
//  4. The erasure's event is appended; it holds none of the erased data.
//
// A crash between 2 and 4 leaves the data unreadable, and a retry, which
// finds the same keys from what the log keeps in the clear, appends the
// event. Erasing again what was erased repeats 2 and 3, which changes
// nothing, and appends nothing.

// Shredder deletes data keys for good (vault.Vault.Erase): every key of
// the owners (user ids) and the keys labelled with units (domain.KeyID), recording
// them erased so that no key is kept for them again. It says how many
// keys it deleted.
type Shredder interface {
	Erase(ctx context.Context, owners, units []string) (int64, error)
}

// AnswerScope names the events whose requests' kept answers an erasure
// forgets.
type AnswerScope struct {
	// Streams and EventIDs hold the erased events.
	Streams, EventIDs []string
	// Owner, when set, keeps of the events in Streams those that name no
	// user or this one: an external id's claim stream is shared by the
	// users who held the id in turn.
	Owner string
	// Actor and Key name the erasing request, whose answer holds nothing
	// erased and is kept.
	Actor, Key string
}

// AnswerEraser forgets the answers kept for idempotent retries
// (idempotency.Store) of the requests behind erased events: a retry with
// one's key is answered as erased (410) rather than with its answer,
// which may quote what was erased. It says how many answers it forgot.
type AnswerEraser interface {
	EraseAnswers(ctx context.Context, scope AnswerScope) (int64, error)
}

// Erasure is what erasing needs beyond the log.
type Erasure struct {
	// Shredder deletes data keys; without one nothing can be erased.
	Shredder Shredder
	// Answers forgets kept answers; nil when none are kept.
	Answers AnswerEraser
}

// SetErasure configures erasure (see Erasure).
func (s *Service) SetErasure(e Erasure) { s.erasure = e }

// ErrNoKeyStore is the error of an erasure by a Service without a
// Shredder: the log's data is not sealed, and nothing could erase it.
var ErrNoKeyStore = errors.New("erasure needs the key store, which this process was not given")

// Erased names what an erasure covered, for caches to forget.
type Erased struct {
	// Users, Sessions, Messages and Memories are the entities whose
	// copies hold erased data.
	Users, Sessions, Messages, Memories []string
	// Windows are the sessions whose context windows may have held
	// erased text.
	Windows []string
}

// EraseUser erases a user: every data key they own (their profile,
// external id, sessions' titles and metadata, messages, memories,
// summaries and snapshots), then records user.erased, which deletes them
// too. A user deleted before may be erased; erasing an erased user again
// changes nothing and succeeds.
func (s *Service) EraseUser(ctx context.Context, meta Meta, id string) (Result, error) {
	return s.eraseUser(ctx, meta, id, domain.ErasedOnRequest)
}

// EraseMessage erases a message, and the summaries and context snapshots
// that hold its text, then records message.erased in its stream; the
// rest of its session stays readable. A redacted message may be erased;
// erasing an erased message again changes nothing and succeeds.
func (s *Service) EraseMessage(ctx context.Context, meta Meta, id string) (Result, error) {
	return s.eraseMessage(ctx, meta, id, domain.ErasedOnRequest)
}

// EraseMemory erases a memory, then records memory.erased in its stream.
// A deleted or expired memory may be erased; erasing an erased memory
// again changes nothing and succeeds.
func (s *Service) EraseMemory(ctx context.Context, meta Meta, id string) (Result, error) {
	return s.eraseMemory(ctx, meta, id, domain.ErasedOnRequest)
}

func (s *Service) eraseUser(ctx context.Context, meta Meta, id, reason string) (Result, error) {
	if s.erasure.Shredder == nil {
		return Result{}, ErrNoKeyStore
	}
	if _, err := parseID("user", id); err != nil {
		return Result{}, err
	}
	u, err := s.foldUser(ctx, id)
	if err != nil {
		return Result{}, err
	}
	if u.ID() == "" {
		return Result{}, fmt.Errorf("%w: user %s", domain.ErrNotFound, id)
	}
	if err := meta.reach(u, "user", id); err != nil {
		return Result{}, err
	}
	if u.Exists() {
		// Deleted first: the deletion releases the external id, and it
		// closes the user to new sessions, messages and memories, so
		// that the keys found below are all the user will ever have.
		_, err := s.DeleteUser(ctx, meta, id, nil)
		if err != nil && !errors.Is(err, domain.ErrNotFound) && !errors.Is(err, domain.ErrErased) {
			return Result{}, fmt.Errorf("erase user %s: delete first: %w", id, err)
		}
	}
	streams, err := s.store.UserStreams(ctx, id)
	if err != nil {
		return Result{}, err
	}
	summaries, err := s.store.UserEvents(ctx, id, "", []string{domain.SessionSummarized, domain.SessionExtracted})
	if err != nil {
		return Result{}, fmt.Errorf("erase user %s: find summaries and extraction runs: %w", id, err)
	}
	// Every key the user owns goes by owner; the units' own ids are named
	// too, for a key kept without its owner.
	erased := &Erased{Users: []string{id}}
	units := []string{domain.KeyID(domain.UnitUser, id)}
	for _, st := range streams {
		typ, eid, err := domain.ParseStreamID(st)
		if err != nil {
			continue
		}
		switch typ {
		case domain.StreamSession:
			erased.Sessions, erased.Windows = append(erased.Sessions, eid), append(erased.Windows, eid)
		case domain.StreamMessage:
			erased.Messages = append(erased.Messages, eid)
			units = append(units, domain.KeyID(domain.UnitMessage, eid))
		case domain.StreamMemory:
			erased.Memories = append(erased.Memories, eid)
			units = append(units, domain.KeyID(domain.UnitMemory, eid))
		case domain.StreamSnapshot:
			units = append(units, domain.KeyID(domain.UnitSnapshot, eid))
		}
	}
	for _, e := range summaries {
		if e.Type == domain.SessionExtracted {
			var run struct {
				RunID string `json:"run_id"`
			}
			if json.Unmarshal(e.Data, &run) == nil && run.RunID != "" {
				units = append(units, domain.KeyID(domain.UnitExtraction, run.RunID))
			}
			continue
		}
		units = append(units, domain.KeyID(domain.UnitSummary, e.EventID))
	}
	if err := s.shred(ctx, []string{id}, units); err != nil {
		return Result{}, fmt.Errorf("erase user %s: %w", id, err)
	}
	if err := s.forgetAnswers(ctx, meta, AnswerScope{Streams: streams, Owner: id}); err != nil {
		return Result{}, fmt.Errorf("erase user %s: %w", id, err)
	}
	s.users.Remove(id)
	res, err := s.serialized(ctx, domain.StreamID(domain.StreamUser, id), func() (Result, error) {
		u, err := s.foldUser(ctx, id)
		if err != nil {
			return Result{}, err
		}
		events, err := u.Erase(reason)
		if err != nil || len(events) == 0 {
			return Result{ID: id, Version: u.Version()}, err
		}
		return s.appendTo(ctx, meta, u.Tenant(), nil, stream(domain.StreamUser, id), u.Version(), nil, events, nil)
	})
	if err != nil {
		return Result{}, fmt.Errorf("erase user %s: record the erasure: %w", id, err)
	}
	res.Erased = erased
	return res, nil
}

func (s *Service) eraseMessage(ctx context.Context, meta Meta, id, reason string) (Result, error) {
	if s.erasure.Shredder == nil {
		return Result{}, ErrNoKeyStore
	}
	if _, err := parseID("message", id); err != nil {
		return Result{}, err
	}
	var erased *Erased
	res, err := s.serialized(ctx, domain.StreamID(domain.StreamMessage, id), func() (Result, error) {
		m, appended, err := s.foldMessage(ctx, id)
		if err != nil {
			return Result{}, err
		}
		tenant, err := s.tenantOf(ctx, meta, m.UserID(), "message", id)
		if err != nil {
			return Result{}, err
		}
		erased = &Erased{Messages: []string{id}, Windows: []string{m.SessionID()}}
		held, err := s.heldBy(ctx, m)
		if err != nil {
			return Result{}, fmt.Errorf("erase message %s: %w", id, err)
		}
		units := []string{domain.KeyID(domain.UnitMessage, id)}
		streams := []string{domain.StreamID(domain.StreamMessage, id)}
		eventIDs := []string{appended.EventID}
		for _, e := range held.summaries {
			units = append(units, domain.KeyID(domain.UnitSummary, e))
			eventIDs = append(eventIDs, e)
		}
		for _, snap := range held.snapshots {
			units = append(units, domain.KeyID(domain.UnitSnapshot, snap))
			streams = append(streams, domain.StreamID(domain.StreamSnapshot, snap))
		}
		for _, run := range held.extractions {
			units = append(units, domain.KeyID(domain.UnitExtraction, run))
		}
		if err := s.shred(ctx, nil, units); err != nil {
			return Result{}, fmt.Errorf("erase message %s: %w", id, err)
		}
		if err := s.forgetAnswers(ctx, meta, AnswerScope{Streams: streams, EventIDs: eventIDs}); err != nil {
			return Result{}, fmt.Errorf("erase message %s: %w", id, err)
		}
		events, err := m.Erase(reason, held.summaries, held.snapshots)
		if err != nil || len(events) == 0 {
			return Result{ID: id, Version: m.Version()}, err
		}
		// Guarded by the session's summaries as they were found: one
		// recorded since may hold the text, and the retry finds it. (A
		// summary recorded after this is refused by its own guard on the
		// message's stream.)
		// The same holds of the session's extraction runs.
		guard := eventstore.StreamAppend{Stream: stream(domain.StreamSummary, m.SessionID()), Expected: eventstore.Exactly(held.summaryVersion)}
		runs := eventstore.StreamAppend{Stream: stream(domain.StreamExtraction, m.UserID()), Expected: eventstore.Exactly(held.extractionVersion)}
		r, err := s.appendTo(ctx, meta, tenant, &guard, stream(domain.StreamMessage, id), m.Version()-messageEntity.before, nil, events, []eventstore.StreamAppend{runs})
		if err != nil {
			return Result{}, err
		}
		r.Version += messageEntity.before
		return r, nil
	})
	if err != nil {
		return Result{}, fmt.Errorf("erase message %s: %w", id, err)
	}
	res.Erased = erased
	return res, nil
}

func (s *Service) eraseMemory(ctx context.Context, meta Meta, id, reason string) (Result, error) {
	if s.erasure.Shredder == nil {
		return Result{}, ErrNoKeyStore
	}
	if _, err := parseID("memory", id); err != nil {
		return Result{}, err
	}
	var erased *Erased
	res, err := s.serialized(ctx, domain.StreamID(domain.StreamMemory, id), func() (Result, error) {
		m := &domain.Memory{}
		if _, err := s.fold(ctx, domain.StreamID(domain.StreamMemory, id), m.Apply); err != nil {
			return Result{}, err
		}
		if m.ID() == "" {
			return Result{}, fmt.Errorf("%w: memory %s", domain.ErrNotFound, id)
		}
		tenant, err := s.tenantOf(ctx, meta, m.UserID(), "memory", id)
		if err != nil {
			return Result{}, err
		}
		// Any context window of the user's may have held the memory.
		sessions, err := s.store.UserEvents(ctx, m.UserID(), "", []string{domain.SessionStarted})
		if err != nil {
			return Result{}, fmt.Errorf("erase memory %s: find the user's sessions: %w", id, err)
		}
		erased = &Erased{Memories: []string{id}}
		for _, e := range sessions {
			if _, sid, err := domain.ParseStreamID(e.StreamID); err == nil {
				erased.Windows = append(erased.Windows, sid)
			}
		}
		if err := s.shred(ctx, nil, []string{domain.KeyID(domain.UnitMemory, id)}); err != nil {
			return Result{}, fmt.Errorf("erase memory %s: %w", id, err)
		}
		if err := s.forgetAnswers(ctx, meta, AnswerScope{Streams: []string{domain.StreamID(domain.StreamMemory, id)}}); err != nil {
			return Result{}, fmt.Errorf("erase memory %s: %w", id, err)
		}
		events, err := m.Erase(reason)
		if err != nil || len(events) == 0 {
			return Result{ID: id, Version: m.Version()}, err
		}
		return s.appendTo(ctx, meta, tenant, nil, stream(domain.StreamMemory, id), m.Version(), nil, events, nil)
	})
	if err != nil {
		return Result{}, fmt.Errorf("erase memory %s: %w", id, err)
	}
	res.Erased = erased
	return res, nil
}

// shred deletes data keys (see Shredder).
func (s *Service) shred(ctx context.Context, owners, units []string) error {
	if _, err := s.erasure.Shredder.Erase(ctx, owners, units); err != nil {
		return fmt.Errorf("delete data keys: %w", err)
	}
	return nil
}

// forgetAnswers forgets the kept answers of the requests behind the
// events scope names, but the erasing request's own (see AnswerEraser).
func (s *Service) forgetAnswers(ctx context.Context, meta Meta, scope AnswerScope) error {
	if s.erasure.Answers == nil {
		return nil
	}
	scope.Actor, scope.Key = meta.Actor, meta.IdempotencyKey
	if _, err := s.erasure.Answers.EraseAnswers(ctx, scope); err != nil {
		return fmt.Errorf("forget the answers kept for retries: %w", err)
	}
	return nil
}

// foldUser folds a user's stream, whatever became of the user; its ID is
// empty when none was registered.
// tenantOf is the tenant of the user that what/id belongs to, whatever
// became of the user (an erasure may follow a deletion); a user outside
// meta's scope makes it ErrNotFound, as reach says.
func (s *Service) tenantOf(ctx context.Context, meta Meta, userID, what, id string) (string, error) {
	u, err := s.foldUser(ctx, userID)
	if err != nil {
		return "", err
	}
	if err := meta.reach(u, what, id); err != nil {
		return "", err
	}
	return u.Tenant(), nil
}

func (s *Service) foldUser(ctx context.Context, id string) (*domain.User, error) {
	u := &domain.User{}
	if _, err := s.fold(ctx, domain.StreamID(domain.StreamUser, id), u.Apply); err != nil {
		return nil, err
	}
	return u, nil
}

// foldMessage folds a message as loadMessage does, whatever became of it,
// finding it by its appended event in the log (the query tables forget a
// redacted message); it returns that event too. A message never appended
// is ErrNotFound.
func (s *Service) foldMessage(ctx context.Context, id string) (*domain.Message, eventstore.Recorded, error) {
	appended, err := s.store.MessageAppendedEvent(ctx, id)
	if err != nil {
		return nil, eventstore.Recorded{}, fmt.Errorf("load message %s: %w", id, err)
	}
	if len(appended) != 1 {
		return nil, eventstore.Recorded{}, fmt.Errorf("%w: message %s", domain.ErrNotFound, id)
	}
	first := appended[0]
	e, err := domain.DecodeEvent(first.Type, first.SchemaVersion, first.Data)
	if err != nil {
		return nil, eventstore.Recorded{}, fmt.Errorf("load message %s: %w", id, err)
	}
	m := &domain.Message{}
	m.Apply(e, 1, first.RecordedAt)
	m.SetSeq(first.Version)
	if _, err := s.fold(ctx, domain.StreamID(domain.StreamMessage, id), func(e domain.Event, v int, at time.Time) {
		m.Apply(e, v+messageEntity.before, at)
	}); err != nil {
		return nil, eventstore.Recorded{}, err
	}
	return m, first, nil
}

// held is what holds a message's text besides the message: the ids of
// its session's summaries that cover it (their session.summarized
// events), of the context snapshots that held it, and of the extraction
// runs that read it; and the versions of the session's summary stream
// and its user's extraction stream they were found at.
type held struct {
	summaries, snapshots, extractions []string
	summaryVersion, extractionVersion int
}

// heldBy finds what holds m's text (see held), from what the log keeps in
// the clear: a summary's range of messages, a snapshot's items.
func (s *Service) heldBy(ctx context.Context, m *domain.Message) (held, error) {
	var h held
	var err error
	// The version first: a summary recorded after it is found below too,
	// and the erasure's guard at this version sends it round again.
	if h.summaryVersion, err = s.store.StreamVersion(ctx, domain.StreamID(domain.StreamSummary, m.SessionID())); err != nil {
		return held{}, err
	}
	if h.extractionVersion, err = s.store.StreamVersion(ctx, domain.StreamID(domain.StreamExtraction, m.UserID())); err != nil {
		return held{}, err
	}
	events, err := s.store.UserEvents(ctx, m.UserID(), m.SessionID(), []string{domain.SessionSummarized, domain.ContextSnapshotRecorded, domain.SessionExtracted})
	if err != nil {
		return held{}, fmt.Errorf("find what holds its text: %w", err)
	}
	for _, r := range events {
		e, err := domain.DecodeEvent(r.Type, r.SchemaVersion, r.Data)
		if err != nil {
			return held{}, fmt.Errorf("find what holds its text: event %s: %w", r.EventID, err)
		}
		switch d := e.Data.(type) {
		case domain.SessionSummarizedData:
			// Each summary folds in the one before, so every summary up
			// to a message after this one holds it.
			if d.ToSeq >= m.Seq() {
				h.summaries = append(h.summaries, r.EventID)
			}
		case domain.SessionExtractedData:
			for _, read := range d.Messages {
				if read.ID == m.ID() {
					h.extractions = append(h.extractions, d.RunID)
					break
				}
			}
		case domain.ContextSnapshotData:
			for _, it := range d.Items {
				if it.Kind == domain.ItemMessage && it.ID == m.ID() {
					h.snapshots = append(h.snapshots, d.SnapshotID)
					break
				}
			}
		}
	}
	return h, nil
}
