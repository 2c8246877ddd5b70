package commands

import (
	"context"
	"fmt"
	"time"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
)

// aggregate is what commands need of an entity folded from the log; the
// domain's User, Session, Memory and Message have it.
type aggregate interface {
	Apply(e domain.Event, version int, at time.Time)
	Exists() bool
	Version() int
}

// load folds the stream of the entity kind/id into a new A. A malformed id
// and a stream without a live entity are both ErrNotFound "<kind> <id>":
// neither names anything a caller may act on; an erased entity is
// ErrErased, which is final.
func load[A any, T interface {
	*A
	aggregate
}](ctx context.Context, s *Service, kind, id string) (T, error) {
	if _, err := parseID(kind, id); err != nil {
		return nil, err
	}
	a := T(new(A))
	if _, err := s.fold(ctx, domain.StreamID(kind, id), a.Apply); err != nil {
		return nil, err
	}
	if !a.Exists() {
		if e, ok := any(a).(interface{ Erased() bool }); ok && e.Erased() {
			return nil, fmt.Errorf("%w: %s %s", domain.ErrErased, kind, id)
		}
		return nil, fmt.Errorf("%w: %s %s", domain.ErrNotFound, kind, id)
	}
	return a, nil
}

// entity is one kind of entity that commands change, as execute needs it.
type entity[T aggregate] struct {
	// kind is its stream kind, which is also its name in errors.
	kind string
	// load folds one from the log.
	load func(ctx context.Context, s *Service, id string) (T, error)
	// owner is the user it belongs to, whose stream guards every change
	// of it (see Service.owner); nil for a user itself.
	owner func(T) string
	// before counts its versions that precede its own stream: a message's
	// first event lives in its session's log.
	before int
}

// folded is the entity of kind whose state is its own stream; a session's
// is its lifecycle only (its messages live in its message log, so loading
// costs the same however long the conversation is).
func folded[A any, T interface {
	*A
	aggregate
}](kind string, owner func(T) string) entity[T] {
	return entity[T]{kind: kind, owner: owner, load: func(ctx context.Context, s *Service, id string) (T, error) {
		return load[A, T](ctx, s, kind, id)
	}}
}

// The entities commands change.
var (
	userEntity    = folded[domain.User](domain.StreamUser, nil)
	sessionEntity = folded[domain.Session](domain.StreamSession, (*domain.Session).UserID)
	memoryEntity  = folded[domain.Memory](domain.StreamMemory, (*domain.Memory).UserID)
	messageEntity = entity[*domain.Message]{kind: domain.StreamMessage, load: loadMessage, owner: (*domain.Message).UserID, before: 1}
)

// execute runs a command on an existing entity, in the one sequence every
// such command follows: holding the entity's stream lock and retried as
// serialized says, it loads the entity, checks the caller's If-Match
// (expected), guards the append by the entity's owner, lets decide decide,
// and appends what it decided at the version it was decided on. A decision
// of no events changes nothing and answers the entity's version.
func execute[T aggregate](ctx context.Context, s *Service, meta Meta, e entity[T], id string, expected []int, decide func(T) ([]domain.Event, error)) (Result, error) {
	return executeAlong(ctx, s, meta, e, id, expected, decide, nil)
}

// executeAlong is execute for a command that appends to other streams too,
// in the same transaction: along gives those appends, once decide has
// decided, with the tenant the command's events are recorded in.
func executeAlong[T aggregate](ctx context.Context, s *Service, meta Meta, e entity[T], id string, expected []int,
	decide func(T) ([]domain.Event, error), along func(a T, tenant string) ([]eventstore.StreamAppend, error)) (Result, error) {
	return s.serialized(ctx, domain.StreamID(e.kind, id), func() (Result, error) {
		a, err := e.load(ctx, s, id)
		if err != nil {
			return Result{}, err
		}
		if err := checkExpected(expected, a.Version()); err != nil {
			return Result{}, err
		}
		var guard *eventstore.StreamAppend
		var tenant string
		if e.owner != nil {
			g, t, err := s.owner(ctx, meta, e.owner(a), e.kind, id, false)
			if err != nil {
				return Result{}, err
			}
			guard, tenant = &g, t
		} else if u, ok := any(a).(*domain.User); ok {
			if err := meta.reach(u, e.kind, id); err != nil {
				return Result{}, err
			}
			tenant = u.Tenant()
		}
		events, err := decide(a)
		if err != nil || len(events) == 0 {
			return Result{ID: id, Version: a.Version()}, err
		}
		var also []eventstore.StreamAppend
		if along != nil {
			if also, err = along(a, tenant); err != nil {
				return Result{}, err
			}
		}
		r, err := s.appendTo(ctx, meta, tenant, guard, stream(e.kind, id), a.Version()-e.before, expected, events, also)
		if err != nil {
			return Result{}, err
		}
		r.Version += e.before
		return r, nil
	})
}

// appendTo appends decided events, recorded in tenant, to one stream at
// the version they were decided on; with a guard (see owner) and also, in the same transaction as
// them. The result has the stream's new version and the cursor of the
// last event appended.
func (s *Service) appendTo(ctx context.Context, meta Meta, tenant string, guard *eventstore.StreamAppend, st eventstore.Stream, version int, expected []int, events []domain.Event, also []eventstore.StreamAppend) (Result, error) {
	evs, err := toStore(meta, tenant, events)
	if err != nil {
		return Result{}, err
	}
	var appends []eventstore.StreamAppend
	if guard != nil {
		appends = append(appends, *guard)
	}
	own := len(appends)
	appends = append(appends, eventstore.StreamAppend{Stream: st, Expected: eventstore.Exactly(version), Events: evs})
	appends = append(appends, also...)
	res, err := s.store.AppendMulti(ctx, appends...)
	if err != nil {
		return Result{}, staleOnConflict(expected, st.ID, err)
	}
	return Result{ID: idOf(st), Version: res[own].Version, Cursor: lastCursor(res)}, nil
}

// lastCursor is the place of the last event an append wrote, whichever
// of its streams (guards write none) holds it.
func lastCursor(res []eventstore.AppendResult) eventstore.Cursor {
	var last eventstore.Cursor
	for _, r := range res {
		if len(r.Events) > 0 && last.Less(r.Last().Cursor) {
			last = r.Last().Cursor
		}
	}
	return last
}

// idOf is the entity id in a stream id "<kind>-<id>".
func idOf(st eventstore.Stream) string {
	if len(st.ID) > len(st.Type)+1 {
		return st.ID[len(st.Type)+1:]
	}
	return st.ID
}
