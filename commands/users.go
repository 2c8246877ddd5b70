package commands

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
)

// Namer names the claim of an external id in a tenant without holding it
// (vault.Vault.ExternalIDName): stream ids hold no personal data, so an
// erasure leaves none behind in them.
type Namer interface {
	ExternalIDName(ctx context.Context, tenant, externalID string) (string, error)
}

// SetNamer makes n name the claims of external ids. Without one they are
// named by an unkeyed hash, which hides an external id from a reader of
// stream ids but not from one who guesses it: for a log kept without a
// key store (tests of the commands alone).
func (s *Service) SetNamer(n Namer) { s.names = n }

// unkeyed is the Namer of a Service given none.
type unkeyed struct{}

func (unkeyed) ExternalIDName(_ context.Context, tenant, externalID string) (string, error) {
	sum := sha256.Sum256([]byte(tenant + "\x00" + externalID))
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

// claimStream is the stream that keeps an external id unique in its
// tenant, named by the Namer.
func (s *Service) claimStream(ctx context.Context, tenant, externalID string) (eventstore.Stream, error) {
	name, err := s.names.ExternalIDName(ctx, tenant, externalID)
	if err != nil {
		return eventstore.Stream{}, fmt.Errorf("name the claim of an external id: %w", err)
	}
	return stream(domain.StreamExternalID, name), nil
}

// claimState reads an external id's claim stream: its version and whether
// a user holds the id now.
func (s *Service) claimState(ctx context.Context, claim eventstore.Stream) (version int, held bool, err error) {
	version, err = s.fold(ctx, claim.ID, func(e domain.Event, _ int, _ time.Time) {
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
	cmd.Tenant = meta.Scope.Tenant
	if cmd.Tenant == "" {
		cmd.Tenant = domain.DefaultTenant
	}
	events, err := domain.Register(cmd)
	if err != nil {
		return Result{}, err
	}
	userEvents, err := toStore(meta, cmd.Tenant, events)
	if err != nil {
		return Result{}, err
	}
	claim, err := toStore(meta, cmd.Tenant, []domain.Event{{Type: domain.ExternalIDClaimed, Data: domain.ExternalIDData{
		UserID: cmd.UserID.String(), Tenant: cmd.Tenant, ExternalID: cmd.ExternalID,
	}}})
	if err != nil {
		return Result{}, err
	}
	claimStream, err := s.claimStream(ctx, cmd.Tenant, cmd.ExternalID)
	if err != nil {
		return Result{}, err
	}
	return retry(ctx, func() (Result, error) {
		version, held, err := s.claimState(ctx, claimStream)
		if err != nil {
			return Result{}, err
		}
		if held {
			return Result{}, fmt.Errorf("%w: external id %q is taken in tenant %s", domain.ErrConflict, cmd.ExternalID, cmd.Tenant)
		}
		res, err := s.store.AppendMulti(ctx,
			eventstore.StreamAppend{Stream: stream(domain.StreamUser, cmd.UserID.String()), Expected: eventstore.NoStream(), Events: userEvents},
			eventstore.StreamAppend{Stream: claimStream, Expected: eventstore.Exactly(version), Events: claim},
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
	return executeAlong(ctx, s, meta, userEntity, id, expected, (*domain.User).Delete, func(u *domain.User, _ string) ([]eventstore.StreamAppend, error) {
		release, err := toStore(meta, u.Tenant(), []domain.Event{{Type: domain.ExternalIDReleased, Data: domain.ExternalIDData{
			UserID: id, Tenant: u.Tenant(), ExternalID: u.ExternalID(),
		}}})
		if err != nil {
			return nil, err
		}
		claim, err := s.claimStream(ctx, u.Tenant(), u.ExternalID())
		if err != nil {
			return nil, err
		}
		return []eventstore.StreamAppend{{Stream: claim, Expected: eventstore.Any(), Events: release}}, nil
	})
}
