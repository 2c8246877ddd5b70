package commands_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/arq-memory/arq/commands"
	"github.com/arq-memory/arq/domain"
)

// fixedSummaries serves the same due sessions on every pass.
type fixedSummaries []commands.DueSummary

func (f fixedSummaries) DueSummaries(_ context.Context, _ int, skip, _ []string) ([]commands.DueSummary, error) {
	var out []commands.DueSummary
	for _, d := range f {
		if !contains(skip, d.SessionID) {
			out = append(out, d)
		}
	}
	return out, nil
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// firstLine summarizes a session as its first line, which may be empty,
// counting its calls.
type firstLine struct{ calls *int }

func (firstLine) Name() string { return "first-line" }
func (f firstLine) Summarize(_ context.Context, _ string, lines []domain.TranscriptLine) (string, error) {
	*f.calls++
	return lines[0].Content, nil
}

// A summary the log refuses (here, an empty one) backs its session off
// and holds up no other session.
func TestRefusedSummaryHoldsUpNoOtherSession(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, _, uid, first := newService(t)
	second, err := svc.StartSession(ctx, testMeta, uid, domain.StartSession{Title: "second"})
	if err != nil {
		t.Fatal(err)
	}
	src := fixedSummaries{
		{SessionID: first, UserID: uid, FromSeq: 1, ToSeq: 1, Lines: []domain.TranscriptLine{{Role: "user", Content: ""}}},
		{SessionID: second.ID, UserID: uid, FromSeq: 1, ToSeq: 1, Lines: []domain.TranscriptLine{{Role: "user", Content: "peppers"}}},
	}
	calls := 0
	x := commands.NewSummaryWorker(svc, src, firstLine{&calls}, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if n, err := x.RunOnce(ctx); err != nil || n != 1 {
		t.Fatalf("pass recorded %d summaries (%v), want the second session's", n, err)
	}
	// The refused session waits out its back-off: the next pass asks the
	// summarizer for the second session alone (which the fixed source
	// serves again; the log has its summary already).
	calls = 0
	if _, err := x.RunOnce(ctx); err != nil || calls != 1 {
		t.Fatalf("second pass: %d summarizer calls (%v), want 1", calls, err)
	}
}
