package commands

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/arq-memory/arq/domain"
)

// DueFinder lists sessions and memories whose expiry time has passed but
// whose expiry is not recorded yet.
type DueFinder interface {
	DueSessions(ctx context.Context, now time.Time, limit int) ([]string, error)
	DueMemories(ctx context.Context, now time.Time, limit int) ([]string, error)
}

// Expirer appends the expired events for sessions and memories whose time
// ran out. Reads hide expired entities at their expiry time already; the
// events make the expiry part of the log. Several processes may run it: the
// domain refuses to expire twice, so each expiry is recorded once.
type Expirer struct {
	svc      *Service
	due      DueFinder
	interval time.Duration
	log      *slog.Logger
}

// NewExpirer returns an Expirer that looks for due entities every interval.
func NewExpirer(svc *Service, due DueFinder, interval time.Duration, log *slog.Logger) *Expirer {
	return &Expirer{svc: svc, due: due, interval: interval, log: log}
}

// expiryMeta marks the events as the system's own.
var expiryMeta = Meta{Actor: "system:expiry", Tenant: "default"}

// Run expires due entities until ctx ends.
func (x *Expirer) Run(ctx context.Context) error {
	return passes(ctx, x.interval, x.log, "expiry pass", x.RunOnce)
}

// RunOnce expires what is due now and returns how many expiries it recorded.
func (x *Expirer) RunOnce(ctx context.Context) (int, error) {
	now := x.svc.now()
	n := 0
	sessions, err := x.due.DueSessions(ctx, now, 500)
	if err != nil {
		return n, err
	}
	for _, id := range sessions {
		ok, err := x.expire(ctx, func(ctx context.Context) (Result, error) { return x.svc.ExpireSession(ctx, expiryMeta, id) })
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
	memories, err := x.due.DueMemories(ctx, now, 500)
	if err != nil {
		return n, err
	}
	for _, id := range memories {
		ok, err := x.expire(ctx, func(ctx context.Context) (Result, error) { return x.svc.ExpireMemory(ctx, expiryMeta, id) })
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
	return n, nil
}

// expire runs one expiry; an entity already expired, closed or deleted
// (another process, or the read model lagging) is no error.
func (x *Expirer) expire(ctx context.Context, run func(context.Context) (Result, error)) (bool, error) {
	_, err := run(ctx)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, domain.ErrConflict), errors.Is(err, domain.ErrNotFound):
		return false, nil
	}
	return false, err
}
