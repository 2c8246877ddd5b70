package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
)

// entityOf reads a stream id as an entity: "memory-01J..." is memory 01J....
func entityOf(stream string) (domain.Kind, string, error) {
	kind, id, err := domain.ParseEntityStreamID(stream)
	if err != nil {
		return domain.Kind{}, "", usagef("%q: history and replay know user-, session-, message- and memory- streams (e.g. memory-<id>)", stream)
	}
	return kind, id, nil
}

// history prints every event of an entity's stream with when, who, which
// request and what it changed.
func (c *cli) history(ctx context.Context, o historyCmd) error {
	asJSON := o.JSON
	kind, id, err := entityOf(o.Stream)
	if err != nil {
		return err
	}
	a, err := c.open(ctx, 0)
	if err != nil {
		return err
	}
	defer a.Close()
	entries, err := a.History().History(ctx, kind, id)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(c.stdout)
	for _, e := range entries {
		if asJSON {
			if err := enc.Encode(e); err != nil {
				return err
			}
			continue
		}
		client := ""
		if e.ClientRequestID != "" {
			client = " client_request=" + e.ClientRequestID
		}
		fmt.Fprintf(c.stdout, "v%d  %s  %s  actor=%s request=%s%s\n", e.Version, e.RecordedAt.UTC().Format(time.RFC3339Nano), e.Type, e.Actor, e.RequestID, client)
		fields := make([]string, 0, len(e.Changes))
		for f := range e.Changes {
			fields = append(fields, f)
		}
		sort.Strings(fields)
		for _, f := range fields {
			ch := e.Changes[f]
			before, _ := json.Marshal(ch.Before)
			after, _ := json.Marshal(ch.After)
			fmt.Fprintf(c.stdout, "    %s: %s -> %s\n", f, before, after)
		}
	}
	return nil
}

// replay prints an entity as it was at a version or a time, folded from
// the log.
func (c *cli) replay(ctx context.Context, o replayCmd) error {
	var (
		version         int
		asOf            string
		hasVer, hasTime = o.Version != nil, o.AsOf != nil
	)
	if hasVer {
		version = *o.Version
	}
	if hasTime {
		asOf = *o.AsOf
	}
	kind, id, err := entityOf(o.Stream)
	if err != nil {
		return err
	}
	var at *time.Time
	switch {
	case hasVer && hasTime:
		return usagef("--version and --as-of exclude each other")
	case !hasVer && !hasTime:
		return usagef("replay needs one of --version N or --as-of TIME")
	case hasVer && version < 1:
		return usagef("--version must be 1 or more")
	case hasTime:
		t, err := time.Parse(time.RFC3339Nano, asOf)
		if err != nil {
			return usagef("--as-of %q is not an RFC 3339 time", asOf)
		}
		at = &t
	}
	a, err := c.open(ctx, 0)
	if err != nil {
		return err
	}
	defer a.Close()
	state, err := a.History().At(ctx, kind, id, version, at)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(state)
}

// audit prints every event that touched a user or anything of theirs, in
// log order.
func (c *cli) audit(ctx context.Context, o auditUserCmd) error {
	types, asJSON, userID := o.Type, o.JSON, o.ID
	a, err := c.open(ctx, 0)
	if err != nil {
		return err
	}
	defer a.Close()
	var f eventstore.Filter
	if types != "" {
		f.EventTypes = strings.Split(types, ",")
	}
	enc := json.NewEncoder(c.stdout)
	after := eventstore.Start
	for {
		events, err := a.History().Audit(ctx, userID, f, after, 1000)
		if errors.Is(err, domain.ErrNotFound) {
			return fmt.Errorf("no such user %s", userID)
		}
		if err != nil {
			return err
		}
		for _, e := range events {
			after = e.Cursor()
			if asJSON {
				if err := enc.Encode(e); err != nil {
					return err
				}
				continue
			}
			fmt.Fprintf(c.stdout, "%s  %-26s %-44s actor=%s request=%s\n", e.RecordedAt.UTC().Format(time.RFC3339Nano), e.Type, e.StreamID, e.Metadata.Actor, e.Metadata.CorrelationID)
		}
		if len(events) < 1000 {
			break
		}
	}
	return nil
}
