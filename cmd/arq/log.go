package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/arq-memory/arq/app"
	"github.com/arq-memory/arq/ledger"
	"github.com/arq-memory/arq/logproof"
)

type (
	logCmd struct {
		Keygen     logKeygenCmd     `cmd:"" help:"Make a signing key for the log's checkpoints in the key file (--log-signing-key-file) and print its verifier key."`
		Key        logKeyCmd        `cmd:"" help:"Print the verifier key of the configured signing key: what checks the log's checkpoints."`
		Checkpoint logCheckpointCmd `cmd:"" help:"Print the latest signed checkpoint of the log (or the one of --size), as signed: keep it outside the database for 'arq verify --checkpoint'."`
		Prove      logProveCmd      `cmd:"" help:"Print the proof (JSON) that an event is in the log at a checkpoint, with that checkpoint."`
	}
	logKeygenCmd struct {
		Name string `help:"The key's name, which signatures carry (default arq-<host name>)."`
	}
	logKeyCmd        struct{}
	logCheckpointCmd struct {
		Size int64 `help:"The checkpoint of this size (0: the latest)."`
	}
	logProveCmd struct {
		Event string `arg:"" name:"EVENT" help:"an event id"`
		Size  int64  `help:"Prove it in the checkpoint of this size (0: the latest)."`
	}
)

func (o logKeygenCmd) Run(c *cli) error                          { return c.logKeygen(o) }
func (logKeyCmd) Run(c *cli) error                               { return c.logKey() }
func (o logCheckpointCmd) Run(ctx context.Context, c *cli) error { return c.logCheckpoint(ctx, o) }
func (o logProveCmd) Run(ctx context.Context, c *cli) error      { return c.logProve(ctx, o) }

// logKeygen makes the signing key file, refusing to replace one.
func (c *cli) logKeygen(o logKeygenCmd) error {
	path := c.cfg.LogSigningKeyFile
	if _, err := os.Stat(path); err == nil {
		return usagef("%s exists: a new key would leave the checkpoints signed with it unverifiable by its verifier key; move it away first", path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	_, vkey, err := app.MakeLogKeyFile(path, o.Name)
	if err != nil {
		return err
	}
	if vkey == "" {
		return fmt.Errorf("%s was made by another process meanwhile", path)
	}
	fmt.Fprintf(c.stderr, "signing key written to %s\n", path)
	_, err = fmt.Fprintln(c.stdout, vkey)
	return err
}

// logKey prints the verifier key of the configured signing key.
func (c *cli) logKey() error {
	skey, err := app.LogSigningKey(c.cfg)
	if err != nil {
		return err
	}
	if skey == "" {
		return usagef("no signing key: set ARQ_LOG_SIGNING_KEY, or ARQ_LOG_SIGNING_KEY_FILE to its file (%s does not exist; 'arq log keygen' makes it)", c.cfg.LogSigningKeyFile)
	}
	vkey, err := ledger.VerifierKey(skey)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(c.stdout, vkey)
	return err
}

// logCheckpoint prints a signed checkpoint as signed.
func (c *cli) logCheckpoint(ctx context.Context, o logCheckpointCmd) error {
	return c.withCheckpoint(ctx, o.Size, func(_ *app.App, s ledger.Signed) error {
		_, err := fmt.Fprint(c.stdout, s.Note)
		return err
	})
}

// logProve prints an event's inclusion proof with its checkpoint.
func (c *cli) logProve(ctx context.Context, o logProveCmd) error {
	return c.withCheckpoint(ctx, o.Size, func(a *app.App, s ledger.Signed) error {
		p, err := a.Tree().Prove(ctx, o.Event, s.Size)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			ledgerProof
			Checkpoint string `json:"checkpoint"`
		}{p, s.Note})
	})
}

// withCheckpoint opens the log (no data keys: the tree holds hashes) and
// hands fn the signed checkpoint of size events (0: the latest).
func (c *cli) withCheckpoint(ctx context.Context, size int64, fn func(*app.App, ledger.Signed) error) error {
	a, err := c.openWith(ctx, app.Options{WithoutKeys: true})
	if err != nil {
		return err
	}
	defer a.Close()
	s, err := a.Tree().Checkpoint(ctx, size)
	if err != nil {
		return err
	}
	return fn(a, s)
}

// ledgerProof is an inclusion proof as `arq log prove` prints it: the
// API's fields.
type ledgerProof = logproof.Inclusion
