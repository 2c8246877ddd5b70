package commands_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
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

func (s *dueSource) DueSnapshots(context.Context, int) ([]commands.DueSnapshot, error) {
	return s.due, nil
}

func (s *dueSource) WindowBefore(_ context.Context, sessionID string, seq int, _ time.Time) (commands.WindowRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.due {
		if d.SessionID == sessionID && d.Seq == seq {
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
