package main

import (
	"context"
	"errors"
	"flag"

	"github.com/arq-memory/arq/projections"
)

func (c *cli) serve(ctx context.Context, args []string) error {
	noProjections := false
	if _, err := c.parse("serve", args, func(fs *flag.FlagSet) {
		c.cfg.bindServe(fs)
		fs.BoolVar(&noProjections, "no-projections", false, "serve the API only; run projections with 'arq project' elsewhere")
	}, 0); err != nil {
		return err
	}
	c.cfg.Projections = !noProjections
	log := c.cfg.logger(c.stderr)
	if err := setup(ctx, c.cfg, log); err != nil {
		return err
	}
	app, err := open(ctx, c.cfg, log, registered())
	if err != nil {
		return err
	}
	defer app.Close()
	if err := projections.DropAbandonedCopies(ctx, app.pool, registered(), log); err != nil {
		log.Warn("could not drop the copies interrupted online rebuilds left", "err", err)
	}
	return app.Serve(ctx, c.ready)
}

func (c *cli) migrate(ctx context.Context, args []string) error {
	if _, err := c.parse("migrate", args, nil, 0); err != nil {
		return err
	}
	return setup(ctx, c.cfg, c.cfg.logger(c.stderr))
}

// project runs the projections without the API, so API servers and
// projection workers scale apart.
func (c *cli) project(ctx context.Context, args []string) error {
	if _, err := c.parse("project", args, nil, 0); err != nil {
		return err
	}
	log := c.cfg.logger(c.stderr)
	app, err := open(ctx, c.cfg, log, registered())
	if err != nil {
		return err
	}
	defer app.Close()
	log.Info("arq projecting", "projections", names(registered()))
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	wait := app.runParts(ctx, true, func(err error) { cancel(err) })
	<-ctx.Done()
	cancel(nil)
	wait()
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return nil
}
