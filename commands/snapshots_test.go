package commands_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/arq-memory/arq/commands"
	"github.com/arq-memory/arq/domain"
)

// dueSource serves fixed due messages and a window for each but one,
// counting the windows asked for.
type dueSource struct {
	userID string
	due    []commands.DueSnapshot
	bad    string
	mu     sync.Mutex
	asked  map[string]int
}

func (s *dueSource) DueSnapshots(context.Context, int, []string, []string) ([]commands.DueSnapshot, error) {
	return s.due, nil
}

func (s *dueSource) WindowBefore(_ context.Context, due commands.DueSnapshot) (commands.WindowRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.due {
		if d.MessageID == due.MessageID {
			s.asked[d.MessageID]++
			if d.MessageID == s.bad {
				return commands.WindowRecord{}, errors.New("the window cannot be made")
			}
		}
	}
	return commands.WindowRecord{UserID: s.userID, MaxTokens: 100}, nil
}

// A message whose window fails holds up no other, and backs off; a
// message whose snapshot is in the log already (here, from the pass
// before) is passed over without computing its window again.
func TestSnapshotterPassesOverFailuresAndRecordedOnes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, _, uid, sid := newService(t)
	src := &dueSource{userID: uid, asked: map[string]int{}}
	for seq := 1; seq <= 4; seq++ {
		src.due = append(src.due, commands.DueSnapshot{MessageID: domain.NewID().String(), SessionID: sid, Seq: seq, At: time.Now()})
	}
	src.bad = src.due[1].MessageID
	x := commands.NewSnapshotter(svc, src, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if n, err := x.RunOnce(ctx); err != nil || n != 3 {
		t.Fatalf("first pass recorded %d (%v), want the three that can be made", n, err)
	}
	if n, err := x.RunOnce(ctx); err != nil || n != 0 {
		t.Fatalf("second pass recorded %d (%v), want none", n, err)
	}
	for _, d := range src.due {
		if src.asked[d.MessageID] != 1 {
			t.Errorf("window of message %s asked %d times, want once (the failing one backs off, the others are recorded)", d.MessageID, src.asked[d.MessageID])
		}
		recorded, err := svc.SnapshotRecorded(ctx, d.MessageID)
		if err != nil || recorded != (d.MessageID != src.bad) {
			t.Errorf("message %s recorded: %v (%v)", d.MessageID, recorded, err)
		}
	}
}

// pagedSource serves due messages as the read model does: a page of the
// oldest, those in last after the others, those in skip left out. The
// window of every message in bad cannot be made.
type pagedSource struct {
	userID string
	due    []commands.DueSnapshot // oldest first
	bad    map[string]bool
}

func (s *pagedSource) DueSnapshots(_ context.Context, limit int, skip, last []string) ([]commands.DueSnapshot, error) {
	var first, after []commands.DueSnapshot
	for _, d := range s.due {
		switch {
		case slices.Contains(skip, d.MessageID):
		case slices.Contains(last, d.MessageID):
			after = append(after, d)
		default:
			first = append(first, d)
		}
	}
	out := append(first, after...)
	return out[:min(limit, len(out))], nil
}

func (s *pagedSource) WindowBefore(_ context.Context, due commands.DueSnapshot) (commands.WindowRecord, error) {
	for _, d := range s.due {
		if d.MessageID == due.MessageID && s.bad[d.MessageID] {
			return commands.WindowRecord{}, errors.New("the window cannot be made")
		}
	}
	return commands.WindowRecord{UserID: s.userID, MaxTokens: 100}, nil
}

// More messages whose window fails than a pass reads at once hold up no
// newer message: while they back off, the pass reads past them.
func TestSnapshotterGetsPastAPageOfFailures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, _, uid, sid := newService(t)
	const failing = 120 // a pass reads 100
	src := &pagedSource{userID: uid, bad: map[string]bool{}}
	for seq := 1; seq <= failing+1; seq++ {
		d := commands.DueSnapshot{MessageID: domain.NewID().String(), SessionID: sid, Seq: seq, At: time.Now()}
		if seq <= failing {
			src.bad[d.MessageID] = true
		}
		src.due = append(src.due, d)
	}
	newest := src.due[failing].MessageID
	// A pass ends at its third failure, and a failed message waits two
	// hours: after failing/3 passes at most, every failing message is
	// waiting, and the next pass reads the newest.
	x := commands.NewSnapshotter(svc, src, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for pass := 1; pass <= failing/3+1; pass++ {
		if _, err := x.RunOnce(ctx); err != nil {
			t.Fatalf("pass %d: %v", pass, err)
		}
		recorded, err := svc.SnapshotRecorded(ctx, newest)
		if err != nil {
			t.Fatal(err)
		}
		if recorded {
			return
		}
	}
	t.Fatalf("after %d passes, the newest message has no snapshot (behind %d failing ones)", failing/3+1, failing)
}
