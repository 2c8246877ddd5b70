package commands

import (
	"context"
	"time"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
)

// StartSession starts a session of a user. The result carries the
// session's token, shown once.
func (s *Service) StartSession(ctx context.Context, meta Meta, userID string, cmd domain.StartSession) (Result, error) {
	cmd.SessionID = domain.NewID()
	return retry(ctx, func() (Result, error) {
		u, err := userEntity.load(ctx, s, userID)
		if err != nil {
			return Result{}, err
		}
		if err := meta.reach(u, "user", userID); err != nil {
			return Result{}, err
		}
		events, token, err := domain.Start(u, cmd, s.now())
		if err != nil {
			return Result{}, err
		}
		evs, err := toStore(meta, u.Tenant(), events)
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
	return execute(ctx, s, meta, sessionEntity, id, expected, func(sess *domain.Session) ([]domain.Event, error) {
		return sess.Extend(ttl, s.now())
	})
}

// CloseSession closes an open session; it takes no more messages.
func (s *Service) CloseSession(ctx context.Context, meta Meta, id string, expected []int) (Result, error) {
	return execute(ctx, s, meta, sessionEntity, id, expected, func(sess *domain.Session) ([]domain.Event, error) {
		return sess.Close(s.now())
	})
}

// ExpireSession records that a session's time ran out. Run by the expiry
// worker; when several processes race, one appends and the others find the
// session expired already (domain.ErrConflict).
func (s *Service) ExpireSession(ctx context.Context, meta Meta, id string) (Result, error) {
	return execute(ctx, s, meta, sessionEntity, id, nil, func(sess *domain.Session) ([]domain.Event, error) {
		return sess.Expire(s.now())
	})
}
