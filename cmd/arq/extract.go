package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/arq-memory/arq/app"
	"github.com/arq-memory/arq/domain"
)

// memoriesExtract runs the extractor by hand over a session's messages,
// or every session of a user's, each as one run (app.ExtractSession),
// and prints a line per run.
func (c *cli) memoriesExtract(ctx context.Context, o memoriesExtractCmd) error {
	if (o.Session == "") == (o.User == "") {
		return usagef("memories extract needs --session ID or --user ID (one of them)")
	}
	var since time.Time
	if o.Since != "" {
		if d, err := time.ParseDuration(o.Since); err == nil && d > 0 {
			since = time.Now().Add(-d)
		} else if t, err := time.Parse(time.RFC3339Nano, o.Since); err == nil {
			since = t
		} else {
			return usagef("--since must be an RFC 3339 time or a positive duration such as 24h, not %q", o.Since)
		}
	}
	if c.cfg.Extractor == "off" {
		return usagef("%v", app.ErrExtractionOff)
	}
	a, err := c.open(ctx, app.PartCommands)
	if err != nil {
		return err
	}
	defer a.Close()
	// The notifier tells the projectors (in a server, or arq project) of
	// each run's events at once: the next run reads the memories the one
	// before it stored, and waits for them to be projected.
	nctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wait := a.RunLog(nctx, func(error) {})
	defer wait()
	defer cancel()
	sessions := []string{o.Session}
	if o.User != "" {
		if sessions, err = a.SessionsOf(ctx, o.User); err != nil {
			return err
		}
		if len(sessions) == 0 {
			return fmt.Errorf("%w: user %s has no sessions", domain.ErrNotFound, o.User)
		}
	}
	runs := 0
	for _, id := range sessions {
		out, err := a.ExtractSession(ctx, id, since)
		if o.User != "" && errors.Is(err, domain.ErrNotFound) {
			continue // a session without messages in range
		}
		if err != nil {
			return fmt.Errorf("session %s: %w", id, err)
		}
		runs++
		_, err = fmt.Fprintf(c.stdout, "session %s: run %s: %d added, %d updated, %d superseded, %d unchanged (position %s)\n", id, out.RunID,
			out.Actions[domain.ActionAdd], out.Actions[domain.ActionUpdate], out.Actions[domain.ActionSupersede], out.Actions[domain.ActionNone], out.Result.Cursor)
		if err != nil {
			return err
		}
	}
	if runs == 0 {
		return fmt.Errorf("%w: no message of user %s in range", domain.ErrNotFound, o.User)
	}
	return nil
}
