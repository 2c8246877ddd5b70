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
	"slices"
	"sync"
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
			return err // an *os.PathError names the file and what failed
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

// rebuild rebuilds the projections ps from the log, all at once, with
// progress: each into a copy of its tables beside the live ones, built up
// to the end of the log as it is then and switched in (see
// projections.Copy and OnlineOptions.UpToLog). The live tables keep every
// row and index until their copy replaces them in one transaction, so an
// interrupted rebuild leaves them as they were (and a copy, which the next
// rebuild or server start drops). app's engine must not be running.
func (c *cli) rebuild(ctx context.Context, app *App, ps []projections.Projection, what string, quiet bool) error {
	total, err := countEvents(ctx, app)
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	wait := app.runParts(runCtx, false, func(err error) { cancel(err) })
	defer wait()
	defer cancel(nil)
	prog := newProgress(c.stderr, what, total, quiet)

	// Each copy reports its position and target; the rebuild is as far
	// as the one furthest behind. (Positions have gaps: an estimate.)
	var mu sync.Mutex
	behind := make([]int64, len(ps))
	copies := make([]*projections.Copy, 0, len(ps))
	defer func() {
		for _, cp := range copies {
			cp.Close() // a no-op once replaced
		}
	}()
	for i, p := range ps {
		cp, err := projections.NewCopy(runCtx, app.pool, app.notifier, p, projections.OnlineOptions{
			UpToLog: true,
			Log:     app.log,
			Progress: func(at, target int64) {
				mu.Lock()
				behind[i] = max(target-at, 0)
				mu.Unlock()
			},
		})
		if err != nil {
			prog.fail()
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
			mu.Lock()
			slowest := slices.Max(behind)
			mu.Unlock()
			prog.update(max(total-slowest, 0))
		}
	}
	if len(errs) > 0 {
		prog.fail()
		if cause := context.Cause(runCtx); cause != nil && !errors.Is(cause, context.Canceled) {
			return cause
		}
		return errors.Join(errs...)
	}
	if total, err = countEvents(ctx, app); err != nil {
		return err
	}
	prog.total = total
	prog.update(total)
	prog.finish()
	return nil
}
