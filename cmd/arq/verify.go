package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/arq-memory/arq/eventstore"
)

// errBroken makes `arq verify` exit non-zero when the log is not intact.
var errBroken = errors.New("the event log is not intact")

// verify walks the hash chains of the log (or of one stream) and reports
// every broken link, with progress on a terminal.
func (c *cli) verify(ctx context.Context, o verifyCmd) error {
	if o.Checkpoint != "" {
		return c.verifyCheckpoint(ctx, o)
	}
	stream, asJSON, quiet := o.Stream, o.JSON, o.Quiet
	a, total, err := c.openLog(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	prog := newProgress(c.stderr, "verify", total, quiet || stream != "")
	verify := a.Store().Verify
	if stream != "" {
		verify = a.Store().VerifyStream // a stream without events is not found, as over HTTP
	}
	v, err := verify(ctx, stream, prog.update)
	if err != nil {
		prog.fail()
		return err
	}
	prog.finish()
	if asJSON {
		if v.Breaks == nil {
			v.Breaks = []eventstore.Break{} // as the API answers: a list, empty
		}
		if err := json.NewEncoder(c.stdout).Encode(v); err != nil {
			return err
		}
	} else {
		for _, b := range v.Breaks {
			fmt.Fprintf(c.stdout, "BROKEN %s version %d (event %s, position %d): %s\n", b.StreamID, b.Version, b.EventID, b.Position, b.Problem)
		}
		if v.First != nil {
			fmt.Fprintf(c.stdout, "first broken link: %s version %d (event %s)\n", v.First.StreamID, v.First.Version, v.First.EventID)
		}
		fmt.Fprintf(c.stdout, "%d events in %d streams checked, %d broken links\n", v.Events, v.Streams, len(v.Breaks))
	}
	if !v.Intact() {
		return errBroken
	}
	return nil
}
