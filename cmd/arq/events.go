package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/arq-memory/arq/eventstore"
)

// eventLine is one NDJSON line of `arq events`: the event and the cursor to
// resume after it.
type eventLine struct {
	Cursor string `json:"cursor"`
	eventstore.Recorded
}

func (c *cli) events(ctx context.Context, o eventsCmd) error {
	f := eventstore.Filter{StreamID: o.Stream, StreamType: o.StreamType}
	after, types, follow, limit := o.After, o.Type, o.Follow, o.Limit
	cur, err := eventstore.ParseCursor(after)
	if err != nil {
		return usagef("--after: %v", err)
	}
	if types != "" {
		f.EventTypes = strings.Split(types, ",")
	}
	if limit < 0 {
		return usagef("--limit must not be negative")
	}
	a, err := c.open(ctx, 0)
	if err != nil {
		return err
	}
	defer a.Close()
	if follow {
		nctx, cancel := context.WithCancel(ctx)
		defer cancel()
		wait := a.RunLog(nctx, func(error) {})
		defer wait()
		defer cancel()
	}

	out := bufio.NewWriter(c.stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	printed := 0
	for {
		seen := a.Notifier().Generation()
		page, err := a.Store().ReadAll(ctx, cur, 500, f)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for _, r := range page {
			if err := enc.Encode(eventLine{Cursor: r.Cursor().String(), Recorded: r}); err != nil {
				return fmt.Errorf("write event: %w", err)
			}
			printed++
			if limit > 0 && printed >= limit {
				return nil
			}
		}
		if len(page) > 0 {
			cur = page[len(page)-1].Cursor()
			continue
		}
		if !follow {
			return nil
		}
		if err := out.Flush(); err != nil {
			return fmt.Errorf("write events: %w", err)
		}
		// Poll now and then too: a commit hidden behind an older open
		// transaction becomes visible without any notification.
		a.Notifier().Wait(ctx, seen, 200*time.Millisecond)
		if ctx.Err() != nil {
			return nil
		}
	}
}
