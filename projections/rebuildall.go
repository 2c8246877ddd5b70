package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/arq-memory/arq/eventstore"
)

// RebuildAll rebuilds the projections ps from the log, all at once: each
// into a copy of its tables beside the live ones, built up to the end of
// the log as it is then and switched in (see Copy and
// OnlineOptions.UpToLog). The live tables keep every row and index until
// their copy replaces them in one transaction, so an interrupted rebuild
// leaves them as they were (and a copy, which the next rebuild or server
// start drops). It is for projections no projector keeps current (after an
// import, or with the projectors stopped); notifier must be running.
//
// opener opens the events the copies apply (see Config.Opener); nil
// applies them as stored. progress, if not nil, hears every 250 ms how many log positions the
// copy furthest behind still has to go (positions have gaps: an
// estimate). When one copy fails the others stop too.
func RebuildAll(ctx context.Context, db *pgxpool.Pool, notifier *eventstore.Notifier, ps []Projection, opener eventstore.Opener, log *slog.Logger, progress func(behind int64)) error {
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var mu sync.Mutex
	behind := make([]int64, len(ps))
	copies := make([]*Copy, 0, len(ps))
	defer func() {
		for _, cp := range copies {
			cp.Close() // a no-op once replaced
		}
	}()
	for i, p := range ps {
		cp, err := NewCopy(runCtx, db, notifier, p, OnlineOptions{
			UpToLog: true,
			Log:     log,
			Opener:  opener,
			Progress: func(at, target int64) {
				mu.Lock()
				behind[i] = max(target-at, 0)
				mu.Unlock()
			},
		})
		if err != nil {
			return err
		}
		copies = append(copies, cp)
	}
	done := make(chan error, len(ps))
	for i, cp := range copies {
		go func() {
			if _, err := cp.Replace(runCtx); err != nil {
				err = fmt.Errorf("rebuild of %s: %w", ps[i].Name(), err)
				cancel(err) // the others stop too
				done <- err
				return
			}
			done <- nil
		}()
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var errs []error
	for left := len(ps); left > 0; {
		select {
		case err := <-done:
			left--
			if err != nil {
				errs = append(errs, err)
			}
		case <-tick.C:
			if progress != nil {
				mu.Lock()
				slowest := slices.Max(behind)
				mu.Unlock()
				progress(slowest)
			}
		}
	}
	if len(errs) > 0 {
		if cause := context.Cause(runCtx); cause != nil && !errors.Is(cause, context.Canceled) {
			return cause
		}
		return errors.Join(errs...)
	}
	return nil
}
