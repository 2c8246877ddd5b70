package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/arq-memory/arq/app"
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/ledger"
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
	a, total, err := c.openLog(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	// A whole log's export carries its signed checkpoints; one since a
	// time cannot, as its first event is not the tree's first leaf.
	var checkpoints eventstore.CheckpointPager
	if from.IsZero() {
		checkpoints = logCheckpoints(ledger.NewTree(a.Pool(), a.Log()))
	} else if !quiet {
		fmt.Fprintln(c.stderr, "export: an export since a time carries no checkpoint of the log")
	}
	prog := newProgress(c.stderr, "export", total, quiet)
	if err := a.Store().WriteNDJSON(ctx, c.stdout, from, checkpoints, prog.update); err != nil {
		prog.fail()
		return err
	}
	prog.finish()
	return nil
}

// logCheckpoints pages through the checkpoints tree keeps.
func logCheckpoints(tree *ledger.Tree) eventstore.CheckpointPager {
	return func(ctx context.Context, after int64, limit int) ([]eventstore.SignedCheckpoint, error) {
		signed, err := tree.Checkpoints(ctx, after, limit)
		out := make([]eventstore.SignedCheckpoint, len(signed))
		for i, s := range signed {
			out[i] = eventstore.SignedCheckpoint{Size: s.Size, Note: s.Note}
		}
		return out, err
	}
}

// importLog reads an exported log (a file, or - for stdin) into this
// database, if it verifies (see eventstore.ReadNDJSON), then rebuilds every
// projection from it.
func (c *cli) importLog(ctx context.Context, o importCmd) error {
	force, quiet, file := o.Force, o.Quiet, o.File
	if o.LogKey != "" {
		if _, err := note.NewVerifier(o.LogKey); err != nil {
			return usagef("--log-key is not a verifier key: %v", err)
		}
	}
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
	got, err := a.Store().ReadNDJSON(ctx, in, eventstore.ImportOptions{Force: force, LogKey: o.LogKey, Progress: prog.update})
	if err != nil {
		prog.fail()
		return err
	}
	prog.total = got.Events
	prog.finish()
	if !quiet {
		fmt.Fprintln(c.stderr, checkedLine(got))
	}
	return c.rebuild(ctx, a, app.Projections(), "rebuild projections", quiet)
}

// checkedLine says what an import checked besides the hash chains.
func checkedLine(r eventstore.ImportReport) string {
	switch {
	case r.Checkpoints == 0:
		return fmt.Sprintf("import: %d events, hash chains checked; the file carries no checkpoint of its log", r.Events)
	case r.Signed:
		return fmt.Sprintf("import: %d events, hash chains checked; the first %d match the log's %d checkpoints, signed by the key given",
			r.Events, r.Covered, r.Checkpoints)
	default:
		return fmt.Sprintf("import: %d events, hash chains checked; the first %d match the log's %d checkpoints, whose signatures were not checked (no --log-key)",
			r.Events, r.Covered, r.Checkpoints)
	}
}
