package commands

import (
	"context"
	"fmt"
	"time"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
)

// loadUser folds a user's stream.
func (s *Service) loadUser(ctx context.Context, id string) (*domain.User, error) {
	if _, err := parseID("user", id); err != nil {
		return nil, err
	}
	u := &domain.User{}
	if _, err := s.fold(ctx, domain.StreamID(domain.StreamUser, id), u.Apply); err != nil {
		return nil, err
	}
	if !u.Exists() {
		return nil, fmt.Errorf("%w: user %s", domain.ErrNotFound, id)
	}
	return u, nil
}

// claimID is the stream that keeps an external id unique in its tenant.
func claimID(tenant, externalID string) string { return tenant + ":" + externalID }

// claimState reads an external id's claim stream: its version and whether
// a user holds the id now.
func (s *Service) claimState(ctx context.Context, tenant, externalID string) (version int, held bool, err error) {
	version, err = s.fold(ctx, domain.StreamID(domain.StreamExternalID, claimID(tenant, externalID)), func(e domain.Event, _ int, _ time.Time) {
		switch e.Type {
		case domain.ExternalIDClaimed:
			held = true
		case domain.ExternalIDReleased:
			held = false
		}
	})
	return version, held, err
}

// RegisterUser registers a user, claiming its external id in its tenant:
// the user stream and the claim stream are appended together, so two
// registrations of one external id cannot both succeed.
func (s *Service) RegisterUser(ctx context.Context, meta Meta, cmd domain.RegisterUser) (Result, error) {
	cmd.UserID = domain.NewID()
	cmd.Tenant = meta.Tenant
	events, err := domain.Register(cmd)
	if err != nil {
		return Result{}, err
	}
	userEvents, err := toStore(meta, events)
	if err != nil {
		return Result{}, err
	}
	claim, err := toStore(meta, []domain.Event{{Type: domain.ExternalIDClaimed, Data: domain.ExternalIDData{
		UserID: cmd.UserID.String(), Tenant: cmd.Tenant, ExternalID: cmd.ExternalID,
	}}})
	if err != nil {
		return Result{}, err
	}
	return retry(ctx, func() (Result, error) {
		version, held, err := s.claimState(ctx, cmd.Tenant, cmd.ExternalID)
		if err != nil {
			return Result{}, err
		}
		if held {
			return Result{}, fmt.Errorf("%w: external id %q is taken in tenant %s", domain.ErrConflict, cmd.ExternalID, cmd.Tenant)
		}
		res, err := s.store.AppendMulti(ctx,
			eventstore.StreamAppend{Stream: stream(domain.StreamUser, cmd.UserID.String()), Expected: eventstore.NoStream(), Events: userEvents},
			eventstore.StreamAppend{Stream: stream(domain.StreamExternalID, claimID(cmd.Tenant, cmd.ExternalID)), Expected: eventstore.Exactly(version), Events: claim},
		)
		if err != nil {
			return Result{}, err
		}
		return Result{ID: cmd.UserID.String(), Version: res[0].Version, Cursor: res[1].Last().Cursor}, nil
	})
}

// UpdateUser changes a user's profile. expected, when set, is the version
// the caller last saw (If-Match).
func (s *Service) UpdateUser(ctx context.Context, meta Meta, id string, expected []int, cmd domain.UpdateProfile) (Result, error) {
	return s.serialized(ctx, domain.StreamID(domain.StreamUser, id), func() (Result, error) {
		u, err := s.loadUser(ctx, id)
		if err != nil {
			return Result{}, err
		}
		if err := checkExpected(expected, u.Version()); err != nil {
			return Result{}, err
		}
		events, err := u.UpdateProfile(cmd)
		if err != nil || len(events) == 0 {
			return Result{ID: id, Version: u.Version()}, err
		}
		return s.appendTo(ctx, meta, nil, stream(domain.StreamUser, id), u.Version(), expected, events)
	})
}

// DeleteUser deletes a user and releases its external id.
func (s *Service) DeleteUser(ctx context.Context, meta Meta, id string, expected []int) (Result, error) {
	return s.serialized(ctx, domain.StreamID(domain.StreamUser, id), func() (Result, error) {
		u, err := s.loadUser(ctx, id)
		if err != nil {
			return Result{}, err
		}
		if err := checkExpected(expected, u.Version()); err != nil {
			return Result{}, err
		}
		events, err := u.Delete()
		if err != nil {
			return Result{}, err
		}
		userEvents, err := toStore(meta, events)
		if err != nil {
			return Result{}, err
		}
		release, err := toStore(meta, []domain.Event{{Type: domain.ExternalIDReleased, Data: domain.ExternalIDData{
			UserID: id, Tenant: u.Tenant(), ExternalID: u.ExternalID(),
		}}})
		if err != nil {
			return Result{}, err
		}
		res, err := s.store.AppendMulti(ctx,
			eventstore.StreamAppend{Stream: stream(domain.StreamUser, id), Expected: eventstore.Exactly(u.Version()), Events: userEvents},
			eventstore.StreamAppend{Stream: stream(domain.StreamExternalID, claimID(u.Tenant(), u.ExternalID())), Expected: eventstore.Any(), Events: release},
		)
		if err != nil {
			return Result{}, staleOnConflict(expected, domain.StreamID(domain.StreamUser, id), err)
		}
		return Result{ID: id, Version: res[0].Version, Cursor: res[1].Last().Cursor}, nil
	})
}

// appendTo appends decided events to one stream at the version they were
// decided on; with a guard (see owner), in the same transaction as it.
func (s *Service) appendTo(ctx context.Context, meta Meta, guard *eventstore.StreamAppend, st eventstore.Stream, version int, expected []int, events []domain.Event) (Result, error) {
	evs, err := toStore(meta, events)
	if err != nil {
		return Result{}, err
	}
	appends := []eventstore.StreamAppend{{Stream: st, Expected: eventstore.Exactly(version), Events: evs}}
	if guard != nil {
		appends = append([]eventstore.StreamAppend{*guard}, appends...)
	}
	res, err := s.store.AppendMulti(ctx, appends...)
	if err != nil {
		return Result{}, staleOnConflict(expected, st.ID, err)
	}
	own := res[len(res)-1]
	return Result{ID: idOf(st), Version: own.Version, Cursor: own.Last().Cursor}, nil
}

// idOf is the entity id in a stream id "<kind>-<id>".
func idOf(st eventstore.Stream) string {
	if len(st.ID) > len(st.Type)+1 {
		return st.ID[len(st.Type)+1:]
	}
	return st.ID
}
