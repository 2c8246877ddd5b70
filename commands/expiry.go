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
// whose expiry is not recorded yet: up to limit, by expiry time, but those
// in last after all others, leaving out those in skip.
type DueFinder interface {
	DueSessions(ctx context.Context, now time.Time, limit int, skip, last []string) ([]string, error)
	DueMemories(ctx context.Context, now time.Time, limit int, skip, last []string) ([]string, error)
}

// Expirer appends the expired events for sessions and memories whose time
// ran out. Reads hide expired entities at their expiry time already; the
// events make the expiry part of the log. Several processes may run it: the
// domain refuses to expire twice, so each expiry is recorded once.
//
// An entity it cannot expire backs off alone (two intervals, doubling up
// to maxBackoff, by the service's clock) and holds up no other: the finder
// leaves it out while it waits, and lists it after every entity that never
// failed once its wait is over, so however many fail, the others are
// expired.
type Expirer struct {
	svc      *Service
	due      DueFinder
	interval time.Duration
	log      *slog.Logger
	sessions backoffs // the sessions it failed to expire
	memories backoffs // the memories it failed to expire
}

// NewExpirer returns an Expirer that looks for due entities every interval.
func NewExpirer(svc *Service, due DueFinder, interval time.Duration, log *slog.Logger) *Expirer {
	return &Expirer{svc: svc, due: due, interval: interval, log: log,
		sessions: newBackoffs(interval), memories: newBackoffs(interval)}
}

// expiryMeta marks the events as the system's own.
var expiryMeta = Meta{Actor: "system:expiry"}

// Run expires due entities until ctx ends.
func (x *Expirer) Run(ctx context.Context) error {
	return passes(ctx, x.interval, x.log, "expiry pass", x.RunOnce)
}

// dueBatch bounds how many entities of a kind a pass expires.
const dueBatch = 500

// RunOnce expires what is due now and returns how many expiries it
// recorded. An entity that cannot be expired (its stream unreadable, or
// other writers coming first for longer than a command retries) is logged
// and backs off, and the pass goes on with the others; the error then sums
// up what failed. An expiry is never appended twice: each one folds its
// entity afresh, and the domain refuses to expire an expired one.
func (x *Expirer) RunOnce(ctx context.Context) (int, error) {
	now := x.svc.now()
	n, failed := 0, 0
	var errs []error
	for _, kind := range []struct {
		what     string
		due      func(context.Context, time.Time, int, []string, []string) ([]string, error)
		expire   func(context.Context, Meta, string) (Result, error)
		failures backoffs
	}{
		{"session", x.due.DueSessions, x.svc.ExpireSession, x.sessions},
		{"memory", x.due.DueMemories, x.svc.ExpireMemory, x.memories},
	} {
		// Entities waiting out a failure are left out; those past their
		// wait come after every entity that never failed.
		waiting, retried := kind.failures.split(now)
		ids, err := kind.due(ctx, now, dueBatch, waiting, retried)
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
				kind.failures.forget(id)
			case ctx.Err() != nil:
				return n, ctx.Err()
			case errors.Is(err, domain.ErrConflict), errors.Is(err, domain.ErrNotFound), errors.Is(err, domain.ErrErased):
				// Expired, closed, deleted or erased already (by
				// another process, or the read model lags).
				kind.failures.forget(id)
			default:
				if failed++; failed == 1 {
					errs = append(errs, fmt.Errorf("expire %s %s: %w", kind.what, id, err))
				}
				wait := kind.failures.failAt(id, now)
				x.log.Warn("expiry failed; the entity is tried again later", "kind", kind.what, "id", id, "retry_in", wait, "err", err)
			}
		}
	}
	if failed > 1 {
		errs = append(errs, fmt.Errorf("%d more expiries failed", failed-1))
	}
	return n, errors.Join(errs...)
}
