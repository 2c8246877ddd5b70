package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/arq-memory/arq/app"
	"github.com/arq-memory/arq/projections"
)

func (c *cli) projectionsStatus(ctx context.Context, o projectionsStatusCmd) error {
	asJSON := o.JSON
	a, err := c.open(ctx, 0)
	if err != nil {
		return err
	}
	defer a.Close()
	st, copies, err := a.ProjectionOverview(ctx)
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
	for _, cp := range copies {
		state := "copy being built (rebuild or verify)"
		if !cp.Building {
			state = "copy left by a crashed rebuild (dropped by the next rebuild or server start)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t\t%s\n", cp.Projection, "copy", cp.Position, state)
	}
	return tw.Flush()
}

func (c *cli) projectionsRebuild(ctx context.Context, o projectionsRebuildCmd) error {
	quiet, online := o.Quiet, o.Online
	p, err := projectionNamed(o.Name)
	if err != nil {
		return err
	}
	if online {
		return c.rebuildOnline(ctx, p, quiet)
	}
	a, err := c.open(ctx, 0)
	if err != nil {
		return err
	}
	defer a.Close()
	return c.rebuild(ctx, a, []projections.Projection{p}, "rebuild "+p.Name(), quiet)
}

// rebuild rebuilds ps from the whole log with progress on stderr (see
// app.App.Rebuild).
func (c *cli) rebuild(ctx context.Context, a *app.App, ps []projections.Projection, what string, quiet bool) error {
	prog := newProgress(c.stderr, what, 0, quiet)
	err := a.Rebuild(ctx, ps, func(done, total int64) {
		prog.total = total
		prog.update(done)
	})
	if err != nil {
		prog.fail()
		return err
	}
	prog.finish()
	return nil
}

// projectionNamed is the registered projection called name.
func projectionNamed(name string) (projections.Projection, error) {
	p, err := app.ProjectionNamed(name)
	if err != nil {
		return nil, usagef("%v", err)
	}
	return p, nil
}

// withCopy opens the database, makes a copy of p with progress on
// stderr, and hands it to use.
func (c *cli) withCopy(ctx context.Context, p projections.Projection, what string, quiet bool, use func(context.Context, *projections.Copy, *progress) error) error {
	a, err := c.open(ctx, 0)
	if err != nil {
		return err
	}
	defer a.Close()
	prog := newProgress(c.stderr, what, 0, quiet)
	err = a.WithCopy(ctx, p, func(at, target int64) { prog.total = target; prog.update(at) },
		func(ctx context.Context, cp *projections.Copy) error { return use(ctx, cp, prog) })
	if err != nil {
		prog.fail()
		return err
	}
	prog.finish()
	return nil
}

// rebuildOnline rebuilds p beside its live tables while an arq serve or
// arq project elsewhere keeps them current, then switches the copy in.
func (c *cli) rebuildOnline(ctx context.Context, p projections.Projection, quiet bool) error {
	return c.withCopy(ctx, p, "rebuild "+p.Name()+" online", quiet, func(ctx context.Context, cp *projections.Copy, prog *progress) error {
		at, err := cp.Replace(ctx)
		if err != nil {
			return err
		}
		prog.total = at.Position
		prog.update(at.Position)
		return nil
	})
}

func (c *cli) projectionsVerify(ctx context.Context, o projectionsVerifyCmd) error {
	quiet, asJSON, limit := o.Quiet, o.JSON, o.Limit
	if limit < 0 {
		return usagef("--limit must not be negative")
	}
	p, err := projectionNamed(o.Name)
	if err != nil {
		return err
	}
	var rep projections.Report
	err = c.withCopy(ctx, p, "rebuild "+p.Name()+" to compare", quiet, func(ctx context.Context, cp *projections.Copy, prog *progress) error {
		r, err := cp.Compare(ctx, limit)
		rep = r
		prog.update(prog.total)
		return err
	})
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printReport(c.stdout, rep)
	}
	if !rep.Clean() {
		return errDiffers
	}
	return nil
}

// errDiffers makes `arq projections verify` exit non-zero after its report.
var errDiffers = errors.New("the live tables differ from a rebuild")

func printReport(w io.Writer, rep projections.Report) {
	fmt.Fprintf(w, "projection %s compared with a rebuild at %s\n", rep.Projection, rep.Checkpoint)
	for _, t := range rep.Tables {
		if t.OnlyLive == 0 && t.OnlyRebuilt == 0 {
			fmt.Fprintf(w, "  %s: same\n", t.Table)
			continue
		}
		fmt.Fprintf(w, "  %s: %d rows only in the live table, %d only in the rebuild\n", t.Table, t.OnlyLive, t.OnlyRebuilt)
		for _, r := range t.LiveRows {
			fmt.Fprintf(w, "    live    %s\n", r)
		}
		for _, r := range t.RebuiltRows {
			fmt.Fprintf(w, "    rebuilt %s\n", r)
		}
	}
}
