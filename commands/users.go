package commands

import (
	"context"
	"fmt"
	"time"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
)

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
	return execute(ctx, s, meta, userEntity, id, expected, func(u *domain.User) ([]domain.Event, error) {
		return u.UpdateProfile(cmd)
	})
}

// DeleteUser deletes a user and releases its external id, in one
// transaction.
func (s *Service) DeleteUser(ctx context.Context, meta Meta, id string, expected []int) (Result, error) {
	return executeAlong(ctx, s, meta, userEntity, id, expected, (*domain.User).Delete, func(u *domain.User) ([]eventstore.StreamAppend, error) {
		release, err := toStore(meta, []domain.Event{{Type: domain.ExternalIDReleased, Data: domain.ExternalIDData{
			UserID: id, Tenant: u.Tenant(), ExternalID: u.ExternalID(),
		}}})
		if err != nil {
			return nil, err
		}
		return []eventstore.StreamAppend{{Stream: stream(domain.StreamExternalID, claimID(u.Tenant(), u.ExternalID())), Expected: eventstore.Any(), Events: release}}, nil
	})
}
