package app

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/arq-memory/arq/projections"
)

// ProjectionNamed is the registered projection called name; another name
// is projections.ErrUnknownProjection, naming the known ones.
func ProjectionNamed(name string) (projections.Projection, error) {
	for _, q := range Projections() {
		if q.Name() == name {
			return q, nil
		}
	}
	return nil, fmt.Errorf("%w %q (known: %s)", projections.ErrUnknownProjection, name, strings.Join(ProjectionNames(), ", "))
}

// ProjectionOverview is each registered projection's state, and the copies
// of projections being built or left by a crashed rebuild.
func (a *App) ProjectionOverview(ctx context.Context) ([]projections.Status, []projections.CopyState, error) {
	return projections.Overview(ctx, a.pool, ProjectionNames())
}

// Rebuild rebuilds the projections ps from the whole log at once (see
// projections.RebuildAll), while no projector of this App runs. progress,
// if not nil, hears an estimate of the events done and their total.
func (a *App) Rebuild(ctx context.Context, ps []projections.Projection, progress func(done, total int64)) error {
	total, err := a.store.Count(ctx)
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	wait := a.RunLog(runCtx, func(err error) { cancel(err) })
	defer wait()
	defer cancel(nil)
	err = projections.RebuildAll(runCtx, a.pool, a.notifier, ps, a.projectionOpener(), a.log, func(behind int64) {
		if progress != nil {
			progress(max(total-behind, 0), total)
		}
	})
	if err != nil {
		return err
	}
	if total, err = a.store.Count(ctx); err != nil {
		return err
	}
	if progress != nil {
		progress(total, total)
	}
	return nil
}

// WithCopy makes a copy of p beside its live tables (see projections.Copy)
// and hands it to use: to switch it in while a projector elsewhere keeps
// the live tables current, or to compare both. progress, if not nil,
// hears the copy's position and target. An interruption is reported as its
// cause.
func (a *App) WithCopy(ctx context.Context, p projections.Projection, progress func(at, target int64), use func(context.Context, *projections.Copy) error) error {
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	wait := a.RunLog(runCtx, func(err error) { cancel(err) })
	defer wait()
	defer cancel(nil)
	cp, err := projections.NewCopy(runCtx, a.pool, a.notifier, p, projections.OnlineOptions{Log: a.log, Progress: progress, Opener: a.projectionOpener()})
	if err != nil {
		return err
	}
	if err := use(runCtx, cp); err != nil {
		if cause := context.Cause(runCtx); cause != nil && !errors.Is(cause, context.Canceled) {
			return cause
		}
		return err
	}
	return nil
}
