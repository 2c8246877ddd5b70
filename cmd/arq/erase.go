package main

import (
	"context"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/arq-memory/arq/app"
	"github.com/arq-memory/arq/commands"
)

// eraseActor is the actor of the erasures run from the command line.
const eraseActor = "cli"

// erase erases a user, a message or a memory to the end, as the API's
// erasure does (commands.Eraser): data keys, kept answers, the erasure's
// event, then, once the projections (here or in a server) have applied
// it, the deployment's Redis keys. It prints one line.
func (c *cli) erase(ctx context.Context, kind string, o eraseTarget) error {
	if o.Wait <= 0 {
		return usagef("--wait must be positive, not %s", o.Wait)
	}
	a, err := c.open(ctx, app.PartCommands)
	if err != nil {
		return err
	}
	defer a.Close()
	e, err := a.Eraser(ctx, o.Wait)
	if err != nil {
		return err
	}
	erase := map[string]func(context.Context, commands.Meta, string) (commands.Result, error){
		"user": e.EraseUser, "message": e.EraseMessage, "memory": e.EraseMemory,
	}[kind]
	meta := commands.Meta{RequestID: ulid.Make().String(), Actor: eraseActor}
	res, err := erase(ctx, meta, o.ID)
	if err != nil {
		return err
	}
	if res.Cursor.IsZero() {
		_, err = fmt.Fprintf(c.stdout, "%s %s was erased already\n", kind, o.ID)
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "erased %s %s (position %s)\n", kind, o.ID, res.Cursor)
	return err
}

// defaultEraseWait is how long `arq erase` waits for the projections.
const defaultEraseWait = 30 * time.Second
