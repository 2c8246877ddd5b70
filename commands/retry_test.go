package commands_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/arq-memory/arq/commands"
	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
)

// A command whose appends keep losing to other writers gives up with
// ErrBusy when its retry budget runs out, or its context ends: the
// server's congestion, which callers that test for a conflict still see as
// eventstore.ErrConflict. A lost race that the attempt turns into ErrStale
// (the caller's If-Match) or another failure ends the retry as it is.
func TestRetryGivesUpBusy(t *testing.T) {
	t.Parallel()
	lost := func() (commands.Result, error) {
		return commands.Result{}, fmt.Errorf("append: %w", &eventstore.ConflictError{StreamID: "user-x", Current: 2})
	}
	tries := 0
	_, err := commands.RetryWithin(context.Background(), 20*time.Millisecond, func() (commands.Result, error) { tries++; return lost() })
	if !errors.Is(err, commands.ErrBusy) || !errors.Is(err, eventstore.ErrConflict) || tries < 2 {
		t.Fatalf("out of budget after %d tries: %v; want ErrBusy, also an ErrConflict", tries, err)
	}
	var ce *eventstore.ConflictError
	if errors.As(err, &ce) {
		t.Errorf("the answer names the stream that was lost to: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := commands.RetryWithin(ctx, time.Minute, lost); !errors.Is(err, commands.ErrBusy) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("context ended: %v; want ErrBusy with the context's error", err)
	}

	stale := fmt.Errorf("%w: at version 3", domain.ErrStale)
	if _, err := commands.RetryWithin(context.Background(), time.Minute, func() (commands.Result, error) { return commands.Result{}, stale }); err != stale {
		t.Errorf("stale: %v", err)
	}
	tries = 0
	res, err := commands.RetryWithin(context.Background(), time.Minute, func() (commands.Result, error) {
		if tries++; tries < 3 {
			return lost()
		}
		return commands.Result{ID: "done"}, nil
	})
	if err != nil || res.ID != "done" || tries != 3 {
		t.Errorf("won on the third try: %v %v after %d", res, err, tries)
	}
}
