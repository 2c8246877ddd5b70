package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

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

	total, err := countEvents(ctx, app)
	if err != nil {
		return err
	}
	if err := projections.Reset(ctx, app.pool, p); err != nil {
		return err
	}

	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	wait := app.runParts(runCtx, true, func(err error) { cancel(err) })
	defer wait()
	defer cancel(nil)

	prog := newProgress(c.stderr, "rebuild "+p.Name(), total, quiet)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := projections.Statuses(runCtx, app.pool, []string{p.Name()})
		if err != nil {
			if cause := context.Cause(runCtx); cause != nil {
				return cause
			}
			return err
		}
		s := st[0]
		if s.State == projections.StateStopped {
			prog.fail()
			return fmt.Errorf("rebuild of %s stopped at event %s (position %d): %s", p.Name(), s.FailedEventID, s.FailedPosition, s.LastError)
		}
		// The head is read anew each time: the rebuild is done when it has
		// caught up with the log as it is now, not as it was at the start.
		head, err := app.store.Head(runCtx)
		if err != nil {
			return err
		}
		var remaining int64
		if err := app.pool.QueryRow(runCtx, `SELECT count(*) FROM events
			WHERE (transaction_id, position) > ($1::xid8, $2::bigint)
			  AND (transaction_id, position) <= ($3::xid8, $4::bigint)`,
			s.Checkpoint.TransactionID, s.Checkpoint.Position, head.TransactionID, head.Position).Scan(&remaining); err != nil {
			return fmt.Errorf("measure rebuild progress: %w", err)
		}
		done := total - remaining
		if done < 0 || remaining == 0 {
			total, err = countEvents(runCtx, app)
			if err != nil {
				return err
			}
			done = total - remaining
		}
		prog.total = total
		prog.update(done)
		if remaining == 0 && !s.Checkpoint.Less(head) {
			if err := projections.MarkRebuilt(ctx, app.pool, p.Name()); err != nil {
				return err
			}
			prog.finish()
			return nil
		}
		select {
		case <-runCtx.Done():
			prog.fail()
			return fmt.Errorf("rebuild of %s interrupted: %w", p.Name(), context.Cause(runCtx))
		case <-tick.C:
		}
	}
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
