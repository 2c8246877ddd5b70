package commands

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/arq-memory/arq/domain"
)

// RetentionFinder lists messages created before a time: up to limit,
// oldest first, but those in last after all others, leaving out those in
// skip.
type RetentionFinder interface {
	MessagesBefore(ctx context.Context, before time.Time, limit int, skip, last []string) ([]string, error)
}

// RetentionActor is the actor of the erasures the retention worker runs.
const RetentionActor = "system:retention"

// Retention erases, in the background, the messages older than a
// period, each as an erasure on request would (Eraser), for the reason
// domain.ErasedForRetention. It looks every hundredth of the period,
// but not more often than a floor nor less often than hourly, so a
// message outlives the period by little. Several processes may run it:
// erasing an erased message appends nothing. A message it fails to erase
// backs off alone, as the expirer's entities do.
type Retention struct {
	eraser   *Eraser
	due      RetentionFinder
	period   time.Duration
	interval time.Duration
	log      *slog.Logger
	failures backoffs
}

// NewRetention returns a Retention of period (0: none; Run returns at
// once) looking at most every floor.
func NewRetention(eraser *Eraser, due RetentionFinder, period, floor time.Duration, log *slog.Logger) *Retention {
	interval := min(max(period/100, floor), time.Hour)
	if interval <= 0 {
		interval = time.Second
	}
	return &Retention{eraser: eraser, due: due, period: period, interval: interval, log: log, failures: newBackoffs(interval)}
}

// Run erases what outlived the period until ctx ends; without a period it
// returns at once.
func (r *Retention) Run(ctx context.Context) error {
	if r.period <= 0 {
		return nil
	}
	return passes(ctx, r.interval, r.log, "retention pass", r.RunOnce)
}

// RunOnce erases up to dueBatch messages older than the period and says
// how many it erased. A message it cannot erase is logged and backs off,
// and the pass goes on; the error then sums up what failed.
func (r *Retention) RunOnce(ctx context.Context) (int, error) {
	now := r.eraser.svc.now()
	waiting, retried := r.failures.split(now)
	ids, err := r.due.MessagesBefore(ctx, now.Add(-r.period), dueBatch, waiting, retried)
	if err != nil {
		return 0, fmt.Errorf("list messages past retention: %w", err)
	}
	meta := Meta{RequestID: domain.NewID().String(), Actor: RetentionActor}
	n, failed := 0, 0
	var errs []error
	for _, id := range ids {
		_, err := r.eraser.eraseMessage(ctx, meta, id, domain.ErasedForRetention)
		switch {
		case err == nil:
			n++
			r.failures.forget(id)
		case ctx.Err() != nil:
			return n, ctx.Err()
		case errors.Is(err, domain.ErrNotFound):
			r.failures.forget(id) // gone meanwhile
		default:
			if failed++; failed == 1 {
				errs = append(errs, fmt.Errorf("erase message %s: %w", id, err))
			}
			wait := r.failures.failAt(id, now)
			r.log.Warn("retention: erasure failed; the message is tried again later", "id", id, "retry_in", wait, "err", err)
		}
	}
	if failed > 1 {
		errs = append(errs, fmt.Errorf("%d more erasures failed", failed-1))
	}
	return n, errors.Join(errs...)
}
