package main

import (
	"context"
	"flag"

	"github.com/arq-memory/arq/app"
)

func (c *cli) serve(ctx context.Context, args []string) error {
	noProjections := false
	if _, err := c.parse("serve", args, func(fs *flag.FlagSet) {
		bindServe(&c.cfg, fs)
		fs.BoolVar(&noProjections, "no-projections", false, "serve the API only; run projections with 'arq project' elsewhere")
	}, 0); err != nil {
		return err
	}
	c.cfg.Projections = !noProjections
	if err := app.Migrate(ctx, c.cfg, c.cfg.Logger(c.stderr)); err != nil {
		return err
	}
	a, err := c.open(ctx, app.PartServer)
	if err != nil {
		return err
	}
	defer a.Close()
	return a.Serve(ctx, c.ready)
}

func (c *cli) migrate(ctx context.Context, args []string) error {
	if _, err := c.parse("migrate", args, nil, 0); err != nil {
		return err
	}
	return app.Migrate(ctx, c.cfg, c.cfg.Logger(c.stderr))
}

// project runs the projections without the API, so API servers and
// projection workers scale apart.
func (c *cli) project(ctx context.Context, args []string) error {
	if _, err := c.parse("project", args, nil, 0); err != nil {
		return err
	}
	a, err := c.open(ctx, app.PartProjector)
	if err != nil {
		return err
	}
	defer a.Close()
	return a.Project(ctx)
}
