package commands

import (
	"context"
	"errors"
	"fmt"
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

// dueBatch bounds how many entities of a kind a pass expires.
const dueBatch = 500

// RunOnce expires what is due now and returns how many expiries it
// recorded. An entity that cannot be expired (its stream unreadable, or
// other writers coming first for longer than a command retries) is logged
// and left to the next pass, and the pass goes on with the others; the
// error then sums up what failed. An expiry is never appended twice: each
// one folds its entity afresh, and the domain refuses to expire an
// expired one.
func (x *Expirer) RunOnce(ctx context.Context) (int, error) {
	now := x.svc.now()
	n, failed := 0, 0
	var errs []error
	for _, kind := range []struct {
		what   string
		due    func(context.Context, time.Time, int) ([]string, error)
		expire func(context.Context, Meta, string) (Result, error)
	}{
		{"session", x.due.DueSessions, x.svc.ExpireSession},
		{"memory", x.due.DueMemories, x.svc.ExpireMemory},
	} {
		ids, err := kind.due(ctx, now, dueBatch)
		if err != nil {
			if ctx.Err() != nil {
				return n, ctx.Err()
			}
			errs = append(errs, fmt.Errorf("list due %ss: %w", kind.what, err))
			continue
		}
		for _, id := range ids {
			_, err := kind.expire(ctx, expiryMeta, id)
			switch {
			case err == nil:
				n++
			case ctx.Err() != nil:
				return n, ctx.Err()
			case errors.Is(err, domain.ErrConflict), errors.Is(err, domain.ErrNotFound):
				// Expired, closed or deleted already (by another
				// process, or the read model lags).
			default:
				if failed++; failed == 1 {
					errs = append(errs, fmt.Errorf("expire %s %s: %w", kind.what, id, err))
				}
				x.log.Warn("expiry failed; the next pass tries again", "kind", kind.what, "id", id, "err", err)
			}
		}
	}
	if failed > 1 {
		errs = append(errs, fmt.Errorf("%d more expiries failed", failed-1))
	}
	return n, errors.Join(errs...)
}
