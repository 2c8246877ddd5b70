package main

import (
	"context"

	"github.com/arq-memory/arq/app"
)

func (c *cli) serve(ctx context.Context) error {
	if err := app.Migrate(ctx, c.cfg, c.cfg.Logger(c.stderr)); err != nil {
		return err
	}
	a, err := c.openWith(ctx, app.Options{Parts: app.PartServer, MakeMasterKey: true})
	if err != nil {
		return err
	}
	defer a.Close()
	return a.Serve(ctx, nil)
}

func (c *cli) migrate(ctx context.Context) error {
	return app.Migrate(ctx, c.cfg, c.cfg.Logger(c.stderr))
}

// project runs the projections without the API, so API servers and
// projection workers scale apart.
func (c *cli) project(ctx context.Context) error {
	a, err := c.open(ctx, app.PartProjector)
	if err != nil {
		return err
	}
	defer a.Close()
	return a.Project(ctx)
}
