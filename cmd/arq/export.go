package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/projections"
)

// export writes the log as NDJSON to stdout, one exported event a line,
// in commit-safe order, with progress on stderr.
func (c *cli) export(ctx context.Context, args []string) error {
	since := ""
	quiet := false
	if _, err := c.parse("export", args, func(fs *flag.FlagSet) {
		fs.StringVar(&since, "since", "", "only events recorded at or after this RFC 3339 time")
		fs.BoolVar(&quiet, "quiet", false, "print no progress")
	}, 0); err != nil {
		return err
	}
	var from time.Time
	if since != "" {
		t, err := time.Parse(time.RFC3339Nano, since)
		if err != nil {
			return usagef("--since %q is not an RFC 3339 time", since)
		}
		from = t
	}
	app, err := open(ctx, c.cfg, c.cfg.logger(c.stderr), registered())
	if err != nil {
		return err
	}
	defer app.Close()
	total, err := countEvents(ctx, app)
	if err != nil {
		return err
	}
	prog := newProgress(c.stderr, "export", total, quiet)
	w := bufio.NewWriterSize(c.stdout, 1<<20)
	enc := json.NewEncoder(w)
	var n int64
	err = app.store.Export(ctx, from, func(e eventstore.Exported) error {
		n++
		if n%1000 == 0 {
			prog.update(n)
		}
		return enc.Encode(e)
	})
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		prog.fail()
		return err
	}
	prog.update(n)
	prog.finish()
	return nil
}

// errNotEmpty refuses an import into a log that holds events already.
var errNotEmpty = errors.New("the event log is not empty; import into an empty database, or pass --force to add to it")

// importLog reads an exported log (a file, or - for stdin) into this
// database, then rebuilds every projection from it.
func (c *cli) importLog(ctx context.Context, args []string) error {
	force, quiet := false, false
	rest, err := c.parse("import", args, func(fs *flag.FlagSet) {
		fs.BoolVar(&force, "force", false, "import into a log that holds events already")
		fs.BoolVar(&quiet, "quiet", false, "print no progress")
	}, 1)
	if err != nil {
		return err
	}
	var in io.Reader = os.Stdin
	var size int64
	if rest[0] != "-" {
		f, err := os.Open(rest[0])
		if err != nil {
			return fmt.Errorf("open %s: %w", rest[0], err)
		}
		defer f.Close()
		in = f
		if st, err := f.Stat(); err == nil {
			size = st.Size()
		}
	}
	log := c.cfg.logger(c.stderr)
	if err := setup(ctx, c.cfg, log); err != nil {
		return err
	}
	app, err := open(ctx, c.cfg, log, registered())
	if err != nil {
		return err
	}
	defer app.Close()
	if empty, err := app.store.Empty(ctx); err != nil {
		return err
	} else if !empty && !force {
		return errNotEmpty
	}

	// The progress total is a guess from the file's size until the end.
	prog := newProgress(c.stderr, "import", max(size/600, 1), quiet)
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var batch []eventstore.Exported
	var n int64
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := app.store.Import(ctx, batch); err != nil {
			return fmt.Errorf("after %d events: %w", n-int64(len(batch)), err)
		}
		batch = batch[:0]
		prog.update(n)
		return nil
	}
	for line := 1; sc.Scan(); line++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var e eventstore.Exported
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			prog.fail()
			return fmt.Errorf("line %d: not an exported event: %w", line, err)
		}
		batch = append(batch, e)
		n++
		if len(batch) == 1000 {
			if err := flush(); err != nil {
				prog.fail()
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		prog.fail()
		return fmt.Errorf("read %s: %w", rest[0], err)
	}
	if err := flush(); err != nil {
		prog.fail()
		return err
	}
	prog.total = n
	prog.finish()
	return c.rebuild(ctx, app, registered(), "rebuild projections", quiet)
}

// rebuild empties the projections ps and replays the log into them, with
// progress, until they have caught up with the log as it is then. app
// must run exactly ps.
func (c *cli) rebuild(ctx context.Context, app *App, ps []projections.Projection, what string, quiet bool) error {
	for _, p := range ps {
		if err := projections.Reset(ctx, app.pool, p); err != nil {
			return err
		}
	}
	total, err := countEvents(ctx, app)
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	wait := app.runParts(runCtx, true, func(err error) { cancel(err) })
	defer wait()
	defer cancel(nil)
	prog := newProgress(c.stderr, what, total, quiet)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := projections.States(runCtx, app.pool, names(ps))
		if err != nil {
			if cause := context.Cause(runCtx); cause != nil {
				return cause
			}
			return err
		}
		// The end is read anew each time: done is caught up with the log
		// as it is now, not as it was at the start; and it is the last
		// committed event, also one an older open transaction anywhere in
		// the cluster still hides from the projections.
		head, err := app.store.Last(runCtx)
		if err != nil {
			return err
		}
		done := true
		var slowest eventstore.Cursor
		for i, s := range st {
			if s.State == projections.StateStopped {
				prog.fail()
				return fmt.Errorf("rebuild of %s stopped at event %s (position %d): %s", s.Name, s.FailedEventID, s.FailedPosition, s.LastError)
			}
			if s.Checkpoint.Less(head) {
				done = false
			}
			if i == 0 || s.Checkpoint.Less(slowest) {
				slowest = s.Checkpoint
			}
		}
		// Positions stand in for a count: counting the events behind
		// would read the whole log four times a second.
		// (Positions have gaps, so this is an estimate.)
		behind := max(head.Position-slowest.Position, 0)
		prog.update(max(total-behind, 0))
		if done {
			for _, p := range ps {
				if err := projections.MarkRebuilt(ctx, app.pool, p.Name()); err != nil {
					return err
				}
			}
			if total, err = countEvents(ctx, app); err != nil {
				return err
			}
			prog.total = total
			prog.update(total)
			prog.finish()
			return nil
		}
		select {
		case <-runCtx.Done():
			prog.fail()
			return fmt.Errorf("%s interrupted: %w", what, context.Cause(runCtx))
		case <-tick.C:
		}
	}
}
