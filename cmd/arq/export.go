package main

import (
	"context"
	"io"
	"os"
	"time"

	"github.com/arq-memory/arq/app"
)

// export writes the log as NDJSON to stdout, one exported event a line,
// in commit-safe order, with progress on stderr.
func (c *cli) export(ctx context.Context, o exportCmd) error {
	since, quiet := o.Since, o.Quiet
	var from time.Time
	if since != "" {
		t, err := time.Parse(time.RFC3339Nano, since)
		if err != nil {
			return usagef("--since %q is not an RFC 3339 time", since)
		}
		from = t
	}
	a, err := c.openWith(ctx, app.Options{WithoutKeys: true})
	if err != nil {
		return err
	}
	defer a.Close()
	total, err := a.Store().Count(ctx)
	if err != nil {
		return err
	}
	prog := newProgress(c.stderr, "export", total, quiet)
	if err := a.Store().WriteNDJSON(ctx, c.stdout, from, prog.update); err != nil {
		prog.fail()
		return err
	}
	prog.finish()
	return nil
}

// importLog reads an exported log (a file, or - for stdin) into this
// database, then rebuilds every projection from it.
func (c *cli) importLog(ctx context.Context, o importCmd) error {
	force, quiet, file := o.Force, o.Quiet, o.File
	var in io.Reader = os.Stdin
	var size int64
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return err // an *os.PathError names the file and what failed
		}
		defer f.Close()
		in = f
		if st, err := f.Stat(); err == nil {
			size = st.Size()
		}
	}
	if err := app.Migrate(ctx, c.cfg, c.cfg.Logger(c.stderr)); err != nil {
		return err
	}
	a, err := c.open(ctx, 0)
	if err != nil {
		return err
	}
	defer a.Close()
	// The progress total is a guess from the file's size until the end.
	prog := newProgress(c.stderr, "import", max(size/600, 1), quiet)
	n, err := a.Store().ReadNDJSON(ctx, in, force, prog.update)
	if err != nil {
		prog.fail()
		return err
	}
	prog.total = n
	prog.finish()
	return c.rebuild(ctx, a, app.Projections(), "rebuild projections", quiet)
}
