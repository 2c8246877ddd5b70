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
	"math/rand/v2"
	"slices"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
)

// Meta is what caused a command; it becomes its events' metadata, so every
// change can be traced to the request and caller behind it.
type Meta struct {
	// RequestID is the server's id of the request: the events'
	// correlation id.
	RequestID string
	// ClientRequestID is the id the caller gave its request
	// (X-Request-ID), if any: kept apart, as no caller chooses the
	// correlation id.
	ClientRequestID string
	Actor           string
	// Scope is what the caller may reach: its tenant, and the user its
	// key is narrowed to, if any. A command on what lies outside it is
	// ErrNotFound and appends nothing. The zero Scope, the system's own
	// callers', reaches every tenant. Events record the tenant of the
	// user they belong to, whoever caused them.
	Scope domain.Scope
	// IdempotencyKey is the request's Idempotency-Key, if any; the
	// events keep it.
	IdempotencyKey string
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
	// Erased, for an erasure, names what it covered, whose copies the
	// caches must forget; set also when the erasure was recorded before.
	Erased *Erased
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
	// names names external ids' claims; erasure deletes data keys and
	// the answers kept for retries (see SetNamer, SetErasure).
	names   Namer
	erasure Erasure
	// sessions and users remember folded sessions and their users for
	// message appends (see AppendMessages).
	sessions *lru.Cache[string, *domain.Session]
	users    *lru.Cache[string, *domain.User]
	// locks serialize the process's commands on one entity.
	locks *streamLocks
}

// rememberedSessions bounds how many folded sessions a Service keeps.
const rememberedSessions = 16384

// New returns a Service. now is the clock commands decide with.
func New(store *eventstore.Store, tokens domain.TokenCounter, messages MessageFinder, now func() time.Time) *Service {
	// lru.New fails only for a size below 1.
	sessions, _ := lru.New[string, *domain.Session](rememberedSessions)
	users, _ := lru.New[string, *domain.User](rememberedSessions)
	return &Service{store: store, tokens: tokens, messages: messages, now: now, names: unkeyed{},
		sessions: sessions, users: users, locks: newStreamLocks()}
}

// Bounds of retrying a command that lost its append to another writer.
// The waits between tries grow from retryWait to maxRetryWait, each one
// drawn between half and all of its bound, so that writers which collided
// do not collide again in step. After retryBudget a command gives up.
const (
	retryWait    = 2 * time.Millisecond
	maxRetryWait = 100 * time.Millisecond
	retryBudget  = 10 * time.Second
)

// ErrBusy is the error of a command that gave up because other changes
// kept coming first: the server's own congestion, not a conflict of the
// caller's making. Nothing was changed, and the same command may succeed
// when tried again. It is an eventstore.ErrConflict too, for callers that
// treat a lost race as one.
var ErrBusy error = busyError{}

type busyError struct{}

func (busyError) Error() string { return "busy" }
func (busyError) Unwrap() error { return eventstore.ErrConflict }

// retry runs attempt until it succeeds, fails for another reason than a
// version conflict, or ctx ends or retryBudget passes while other writers
// keep coming first (see retryWithin).
func retry(ctx context.Context, attempt func() (Result, error)) (Result, error) {
	return retryWithin(ctx, retryBudget, attempt)
}

// retryWithin is retry with a budget of its own. A conflict is the
// server's own business (the caller's If-Match is checked by attempt and
// is ErrStale): a command that gives up fails with ErrBusy, says that it
// changed nothing, and never names the stream or versions.
func retryWithin(ctx context.Context, budget time.Duration, attempt func() (Result, error)) (Result, error) {
	giveUp := time.Now().Add(budget)
	for i := 0; ; i++ {
		r, err := attempt()
		if err == nil || !errors.Is(err, eventstore.ErrConflict) {
			return r, err
		}
		bound := min(retryWait<<min(i, 16), maxRetryWait)
		wait := bound/2 + rand.N(bound/2+1)
		if time.Now().Add(wait).After(giveUp) {
			return Result{}, fmt.Errorf("%w: other changes kept coming first; nothing was changed, try again", ErrBusy)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return Result{}, fmt.Errorf("%w: other changes kept coming first; nothing was changed (%w)", ErrBusy, ctx.Err())
		}
	}
}

// serialized runs attempt as retry does, holding the lock of streamID
// against the process's other commands on it (see streamLocks), so that
// concurrent commands on one entity take turns rather than race.
func (s *Service) serialized(ctx context.Context, streamID string, attempt func() (Result, error)) (Result, error) {
	unlock, err := s.locks.lock(ctx, streamID)
	if err != nil {
		return Result{}, fmt.Errorf("wait for the changes before this one: %w", err)
	}
	defer unlock()
	return retry(ctx, attempt)
}

// checkExpected turns a caller's If-Match into ErrStale when the entity is
// at none of the versions it names (nil names any, empty none).
func checkExpected(expected []int, current int) error {
	if expected != nil && !slices.Contains(expected, current) {
		return fmt.Errorf("%w: at version %d, not %v", domain.ErrStale, current, expected)
	}
	return nil
}

// staleOnConflict maps a lost race on the entity's own stream to ErrStale
// when the caller named a version: the caller's If-Match no longer holds,
// and a retry would hide it. A race on another stream (a guard) is left a
// conflict, which the retry decides afresh.
func staleOnConflict(expected []int, streamID string, err error) error {
	var ce *eventstore.ConflictError
	if expected != nil && errors.As(err, &ce) && ce.StreamID == streamID {
		return fmt.Errorf("%w: at version %d", domain.ErrStale, ce.Current)
	}
	return err
}

// owner folds the user that the entity what/id belongs to and returns the
// guard that holds the command's append to that user as it is now: if
// anything is appended to the user's stream first (its deletion above all),
// the append fails with a conflict and the retry decides afresh. A
// deleted user's sessions, messages and memories are gone from every read,
// and a command on one is ErrNotFound (ErrErased for an erased user's)
// and appends nothing. With
// remember, a user folded before serves (the guard makes that safe).
//
// The user must be in meta's scope, or the command is ErrNotFound: what a
// caller may not reach it must not learn exists. It returns the user's
// tenant, which the command's events record.
func (s *Service) owner(ctx context.Context, meta Meta, userID, what, id string, remember bool) (eventstore.StreamAppend, string, error) {
	u, ok := (*domain.User)(nil), false
	if remember {
		u, ok = s.users.Get(userID)
	}
	if !ok {
		var err error
		if u, err = userEntity.load(ctx, s, userID); errors.Is(err, domain.ErrErased) {
			return eventstore.StreamAppend{}, "", fmt.Errorf("%w: %s %s (its user is erased)", domain.ErrErased, what, id)
		} else if errors.Is(err, domain.ErrNotFound) {
			return eventstore.StreamAppend{}, "", fmt.Errorf("%w: %s %s (its user is deleted)", domain.ErrNotFound, what, id)
		} else if err != nil {
			return eventstore.StreamAppend{}, "", err
		}
		if remember {
			s.users.Add(userID, u) // never changed after folding, so safe to share
		}
	}
	if err := meta.reach(u, what, id); err != nil {
		return eventstore.StreamAppend{}, "", err
	}
	return eventstore.StreamAppend{Stream: stream(domain.StreamUser, userID), Expected: eventstore.Exactly(u.Version())}, u.Tenant(), nil
}

// reach refuses, as not found, a command on what/id, of user u, when u is
// outside the caller's scope. Only the tenant and the user are checked
// here: which routes a session's token may take is the API's to say.
func (m Meta) reach(u *domain.User, what, id string) error {
	if !(domain.Scope{Tenant: m.Scope.Tenant, UserID: m.Scope.UserID}).Reaches(domain.Owner{Tenant: u.Tenant(), UserID: u.ID()}) {
		return fmt.Errorf("%w: %s %s", domain.ErrNotFound, what, id)
	}
	return nil
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

// toStore turns decided events into events to append, with meta's trace,
// recorded in tenant: that of the user the events belong to.
func toStore(meta Meta, tenant string, events []domain.Event) ([]eventstore.Event, error) {
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
				CorrelationID:   meta.RequestID,
				ClientRequestID: meta.ClientRequestID,
				Actor:           meta.Actor,
				Tenant:          tenant,
				IdempotencyKey:  meta.IdempotencyKey,
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
