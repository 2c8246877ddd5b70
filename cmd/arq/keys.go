package main

import (
	"context"
	"fmt"

	"github.com/arq-memory/arq/vault"
)

// keysNew prints a new master key, for ARQ_MASTER_KEY or its file. It
// touches no database.
func (c *cli) keysNew() error {
	_, err := fmt.Fprintln(c.stdout, vault.NewMasterKey())
	return err
}

// keysRotate rewraps with the current master key every data key wrapped
// by a previous one (ARQ_PREVIOUS_MASTER_KEYS), and says how many. The
// events are untouched; once it is done the previous keys may go.
func (c *cli) keysRotate(ctx context.Context, o keysRotateCmd) error {
	a, err := c.open(ctx, 0)
	if err != nil {
		return err
	}
	defer a.Close()
	prog := newProgress(c.stderr, "rotate", 0, o.Quiet)
	prog.unit = "keys"
	n, err := a.Vault().Rotate(ctx, prog.update)
	if err != nil {
		prog.fail()
		return err
	}
	if n > 0 {
		prog.finish()
	}
	_, err = fmt.Fprintf(c.stdout, "rewrapped %d data keys with the current master key\n", n)
	return err
}
