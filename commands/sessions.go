package commands

import (
	"context"
	"fmt"
	"time"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
)

// loadSession folds a session's stream (its lifecycle only: messages live
// in the session's message log, so loading costs the same however long the
// conversation is).
func (s *Service) loadSession(ctx context.Context, id string) (*domain.Session, error) {
	if _, err := parseID("session", id); err != nil {
		return nil, err
	}
	sess := &domain.Session{}
	if _, err := s.fold(ctx, domain.StreamID(domain.StreamSession, id), sess.Apply); err != nil {
		return nil, err
	}
	if !sess.Exists() {
		return nil, fmt.Errorf("%w: session %s", domain.ErrNotFound, id)
	}
	return sess, nil
}

// StartSession starts a session of a user. The result carries the
// session's token, shown once.
func (s *Service) StartSession(ctx context.Context, meta Meta, userID string, cmd domain.StartSession) (Result, error) {
	cmd.SessionID = domain.NewID()
	return retry(ctx, func() (Result, error) {
		u, err := s.loadUser(ctx, userID)
		if err != nil {
			return Result{}, err
		}
		events, token, err := domain.Start(u, cmd, s.now())
		if err != nil {
			return Result{}, err
		}
		evs, err := toStore(meta, events)
		if err != nil {
			return Result{}, err
		}
		// The user guard refuses a start that races the user's deletion.
		res, err := s.store.AppendMulti(ctx,
			eventstore.StreamAppend{Stream: stream(domain.StreamUser, userID), Expected: eventstore.Exactly(u.Version())},
			eventstore.StreamAppend{Stream: stream(domain.StreamSession, cmd.SessionID.String()), Expected: eventstore.NoStream(), Events: evs},
		)
		if err != nil {
			return Result{}, err
		}
		return Result{ID: cmd.SessionID.String(), Version: res[1].Version, Cursor: res[1].Last().Cursor, Token: token}, nil
	})
}

// ExtendSession gives an open session until ttl from now, if that is later
// than its expiry (a session without one keeps none).
func (s *Service) ExtendSession(ctx context.Context, meta Meta, id string, expected []int, ttl time.Duration) (Result, error) {
	return s.sessionCommand(ctx, meta, id, expected, func(sess *domain.Session) ([]domain.Event, error) {
		return sess.Extend(ttl, s.now())
	})
}

// CloseSession closes an open session; it takes no more messages.
func (s *Service) CloseSession(ctx context.Context, meta Meta, id string, expected []int) (Result, error) {
	return s.sessionCommand(ctx, meta, id, expected, func(sess *domain.Session) ([]domain.Event, error) {
		return sess.Close(s.now())
	})
}

// ExpireSession records that a session's time ran out. Run by the expiry
// worker; when several processes race, one appends and the others find the
// session expired already (domain.ErrConflict).
func (s *Service) ExpireSession(ctx context.Context, meta Meta, id string) (Result, error) {
	return s.sessionCommand(ctx, meta, id, nil, func(sess *domain.Session) ([]domain.Event, error) {
		return sess.Expire(s.now())
	})
}

func (s *Service) sessionCommand(ctx context.Context, meta Meta, id string, expected []int, decide func(*domain.Session) ([]domain.Event, error)) (Result, error) {
	return s.serialized(ctx, domain.StreamID(domain.StreamSession, id), func() (Result, error) {
		sess, err := s.loadSession(ctx, id)
		if err != nil {
			return Result{}, err
		}
		if err := checkExpected(expected, sess.Version()); err != nil {
			return Result{}, err
		}
		guard, err := s.owner(ctx, sess.UserID(), "session", id, false)
		if err != nil {
			return Result{}, err
		}
		events, err := decide(sess)
		if err != nil || len(events) == 0 {
			return Result{ID: id, Version: sess.Version()}, err
		}
		return s.appendTo(ctx, meta, &guard, stream(domain.StreamSession, id), sess.Version(), expected, events)
	})
}
