package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/arq-memory/arq/app"
	"github.com/arq-memory/arq/ledger"
	"github.com/arq-memory/arq/logproof"
)

// verifyCheckpoint checks the whole log against a signed checkpoint kept
// outside the database (ledger.Tree.Check), and its streams' chains.
func (c *cli) verifyCheckpoint(ctx context.Context, o verifyCmd) error {
	if o.Stream != "" {
		return errors.New("--checkpoint checks the whole log: it does not go with --stream")
	}
	vkey := o.LogKey
	if vkey == "" {
		// The signing key configured here, when there is one, says
		// which verifier key.
		skey, err := app.LogSigningKey(c.cfg)
		if err != nil {
			return err
		}
		if skey == "" {
			return errors.New("--checkpoint needs --log-key (the verifier key of the key that signs the log's checkpoints), or a signing key configured (ARQ_LOG_SIGNING_KEY or its file)")
		}
		if vkey, err = ledger.VerifierKey(skey); err != nil {
			return err
		}
	}
	note, err := os.ReadFile(o.Checkpoint)
	if err != nil {
		return fmt.Errorf("read the checkpoint: %w", err)
	}
	cp, err := logproof.OpenCheckpoint(note, vkey)
	if err != nil {
		return fmt.Errorf("%s: %w", o.Checkpoint, err)
	}
	a, total, err := c.openLog(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	prog := newProgress(c.stderr, "verify", total, o.Quiet)
	audit, err := ledger.NewTree(a.Pool(), a.Log()).Check(ctx, cp, prog.update)
	if err != nil {
		prog.fail()
		return err
	}
	prog.finish()
	if o.JSON {
		if audit.Breaks == nil {
			audit.Breaks = []ledger.Problem{}
		}
		type checkpoint struct {
			Origin string    `json:"origin"`
			Size   int64     `json:"size"`
			Root   string    `json:"root"`
			Time   time.Time `json:"time"`
		}
		out := struct {
			ledger.Audit
			Checkpoint checkpoint `json:"checkpoint"`
		}{audit, checkpoint{cp.Origin, cp.Size, cp.Root.String(), cp.Time}}
		if err := json.NewEncoder(c.stdout).Encode(out); err != nil {
			return err
		}
	} else {
		for _, b := range audit.Breaks {
			fmt.Fprintln(c.stdout, describeProblem(b))
		}
		if audit.Differs != nil {
			fmt.Fprintln(c.stdout, describeProblem(*audit.Differs))
		}
		if audit.First != nil {
			fmt.Fprintln(c.stdout, "first problem:", describeProblem(*audit.First))
		}
		root := "have the same root as the checkpoint's"
		if !audit.RootMatches {
			root = "do NOT have the checkpoint's root"
		}
		fmt.Fprintf(c.stdout, "%d events in %d streams checked, %d broken links; the first %d, signed %s by %s, %s\n",
			audit.Events, audit.Streams, audit.BrokenLinks, cp.Size, cp.Time.Format(time.RFC3339), cp.Origin, root)
	}
	if !audit.Intact() {
		return errBroken
	}
	return nil
}

// describeProblem is a problem on one line: its kind, where in the log,
// which event, and what is wrong.
func describeProblem(p ledger.Problem) string {
	var b strings.Builder
	b.WriteString(strings.ToUpper(p.Kind))
	if p.Index >= 0 {
		fmt.Fprintf(&b, " event %d of the log", p.Index)
	}
	switch {
	case p.EventID != "":
		fmt.Fprintf(&b, ", %s version %d (event %s, position %d)", p.StreamID, p.Version, p.EventID, p.Position)
	case p.StreamID != "":
		fmt.Fprintf(&b, ", %s version %d", p.StreamID, p.Version)
	case p.Position != 0:
		fmt.Fprintf(&b, ", position %d", p.Position)
	}
	return b.String() + ": " + p.Problem
}
