package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/arq-memory/arq/projections"
)

func (c *cli) projectionsStatus(ctx context.Context, args []string) error {
	asJSON := false
	if _, err := c.parse("projections status", args, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	}, 0); err != nil {
		return err
	}
	log := c.cfg.logger(c.stderr)
	app, err := open(ctx, c.cfg, log, registered())
	if err != nil {
		return err
	}
	defer app.Close()
	st, err := projections.Statuses(ctx, app.pool, names(registered()))
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROJECTION\tSTATE\tPOSITION\tBEHIND\tLAST ERROR")
	for _, s := range st {
		lastErr := s.LastError
		if s.FailedEventID != "" {
			lastErr = fmt.Sprintf("at event %s (position %d): %s", s.FailedEventID, s.FailedPosition, lastErr)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", s.Name, s.State, s.Position, s.Behind, lastErr)
	}
	return tw.Flush()
}

func (c *cli) projectionsRebuild(ctx context.Context, args []string) error {
	quiet := false
	rest, err := c.parse("projections rebuild", args, func(fs *flag.FlagSet) {
		fs.BoolVar(&quiet, "quiet", false, "print no progress")
	}, 1)
	if err != nil {
		return err
	}
	var p projections.Projection
	for _, q := range registered() {
		if q.Name() == rest[0] {
			p = q
		}
	}
	if p == nil {
		return usagef("no projection %q (known: %s)", rest[0], strings.Join(names(registered()), ", "))
	}
	log := c.cfg.logger(c.stderr)
	app, err := open(ctx, c.cfg, log, []projections.Projection{p})
	if err != nil {
		return err
	}
	defer app.Close()

	return c.rebuild(ctx, app, []projections.Projection{p}, "rebuild "+p.Name(), quiet)
}

// countEvents counts the events a reader of the log can see now.
func countEvents(ctx context.Context, app *App) (int64, error) {
	var n int64
	err := app.pool.QueryRow(ctx, `SELECT count(*) FROM events
		WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count events: %w", err)
	}
	return n, nil
}
