// Package commands runs ARQ's commands: it loads an aggregate by folding its
// stream, asks the domain to decide, and appends the decided events with
// the metadata of the request behind them. Every state change of a user,
// session, message or memory goes through here.
package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
)

// Meta is what caused a command; it becomes its events' metadata, so every
// change can be traced to the request and caller behind it.
type Meta struct {
	RequestID string
	Actor     string
	Tenant    string
}

// Result says what a command wrote.
type Result struct {
	// ID of the entity the command made or changed.
	ID string
	// Version of that entity's stream after the command.
	Version int
	// Cursor of the command's last event in the log; zero when the command
	// changed nothing. Reads wait for projections to reach it.
	Cursor eventstore.Cursor
	// Token is a new session's secret, shown once.
	Token string
	// Messages are the appended messages' ids and sequence numbers.
	Messages []AppendedMessage
}

// AppendedMessage is one message placed by AppendMessages.
type AppendedMessage struct {
	ID  string
	Seq int
}

// MessageFinder finds which session a message belongs to and its sequence
// number there: a message's first event lives in its session's log.
type MessageFinder interface {
	FindMessage(ctx context.Context, id string) (sessionID string, seq int, err error)
}

// Service runs commands against the event log.
type Service struct {
	store    *eventstore.Store
	tokens   domain.TokenCounter
	messages MessageFinder
	now      func() time.Time
	embed    Embeddings
	queries  *lru.Cache[string, []float32]
	// sessions remembers folded sessions for message appends (see
	// AppendMessages).
	sessions *lru.Cache[string, *domain.Session]
}

// rememberedSessions bounds how many folded sessions a Service keeps.
const rememberedSessions = 16384

// New returns a Service. now is the clock commands decide with.
func New(store *eventstore.Store, tokens domain.TokenCounter, messages MessageFinder, now func() time.Time) *Service {
	// lru.New fails only for a size below 1.
	sessions, _ := lru.New[string, *domain.Session](rememberedSessions)
	return &Service{store: store, tokens: tokens, messages: messages, now: now, sessions: sessions}
}

// maxRetries bounds how often a command reloads and decides again after
// another writer changed its stream first.
const maxRetries = 10

// retry runs attempt until it succeeds, fails for another reason than a
// version conflict, or has lost maxRetries races.
func retry(ctx context.Context, attempt func() (Result, error)) (Result, error) {
	for i := 0; ; i++ {
		r, err := attempt()
		if err == nil || !errors.Is(err, eventstore.ErrConflict) || i >= maxRetries || ctx.Err() != nil {
			return r, err
		}
	}
}

// checkExpected turns a caller's If-Match into ErrStale when the entity has
// moved on.
func checkExpected(expected *int, current int) error {
	if expected != nil && *expected != current {
		return fmt.Errorf("%w: at version %d, not %d", domain.ErrStale, current, *expected)
	}
	return nil
}

// staleOnConflict maps a lost race to ErrStale when the caller named a
// version: the caller's If-Match no longer holds, and a retry would hide it.
func staleOnConflict(expected *int, err error) error {
	var ce *eventstore.ConflictError
	if expected != nil && errors.As(err, &ce) {
		return fmt.Errorf("%w: at version %d", domain.ErrStale, ce.Current)
	}
	return err
}

// fold reads a stream and applies each event to apply; it returns the
// stream's version.
func (s *Service) fold(ctx context.Context, streamID string, apply func(domain.Event, int, time.Time)) (int, error) {
	recs, err := s.store.ReadStream(ctx, streamID, 1)
	if err != nil {
		return 0, fmt.Errorf("load %s: %w", streamID, err)
	}
	version := 0
	for _, r := range recs {
		e, err := domain.DecodeEvent(r.Type, r.SchemaVersion, r.Data)
		if err != nil {
			return 0, fmt.Errorf("load %s: event %d: %w", streamID, r.Version, err)
		}
		apply(e, r.Version, r.RecordedAt)
		version = r.Version
	}
	return version, nil
}

// toStore turns decided events into events to append, with meta's trace.
func toStore(meta Meta, events []domain.Event) ([]eventstore.Event, error) {
	out := make([]eventstore.Event, len(events))
	for i, e := range events {
		data, err := json.Marshal(e.Data)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", e.Type, err)
		}
		out[i] = eventstore.Event{
			Type:          e.Type,
			SchemaVersion: domain.SchemaVersion(e.Type),
			Data:          data,
			Metadata: eventstore.Metadata{
				CorrelationID: meta.RequestID,
				Actor:         meta.Actor,
				Tenant:        meta.Tenant,
			},
		}
	}
	return out, nil
}

func stream(kind, id string) eventstore.Stream {
	return eventstore.Stream{ID: domain.StreamID(kind, id), Type: kind}
}

// parseID reads an id from a path or body; a malformed one is simply not
// found (it can name no entity).
func parseID(what, id string) (domain.ID, error) {
	parsed, err := domain.ParseID(id)
	if err != nil {
		return domain.ID{}, fmt.Errorf("%w: %s %q", domain.ErrNotFound, what, id)
	}
	return parsed, nil
}
