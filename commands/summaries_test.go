package commands_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/arq-memory/arq/commands"
	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
)

// fixedSummaries serves the same due sessions on every pass.
type fixedSummaries []domain.DueSummary

func (f fixedSummaries) DueSummaries(_ context.Context, _ int, skip, _ []string) ([]domain.DueSummary, error) {
	var out []domain.DueSummary
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

// A summary is made from messages at their versions; one redacted (or
// edited) while the summarizer ran would leave its old text in the
// summary, so the log refuses the summary, and one made from the messages
// as they are now goes through.
func TestSummaryOfAMessageChangedMeanwhileIsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, store, uid, sid := newService(t)
	res, err := svc.AppendMessages(ctx, testMeta, sid, []domain.NewMessage{
		{Role: "user", Content: "the vault code is 8812"}, {Role: "assistant", Content: "noted"}})
	if err != nil {
		t.Fatal(err)
	}
	secret, kept := res.Messages[0].ID, res.Messages[1].ID
	summary := domain.SessionSummarizedData{SessionID: sid, UserID: uid, Content: "user: the vault code is 8812\nassistant: noted", FromSeq: 1, ToSeq: 2, Method: "test"}
	read := map[string]int{secret: 1, kept: 1} // as the summary pass read them

	// The redaction lands while the summarizer runs.
	if _, err := store.Append(ctx, eventstore.Stream{ID: domain.StreamID(domain.StreamMessage, secret), Type: domain.StreamMessage}, eventstore.NoStream(),
		eventstore.Event{Type: domain.MessageRedacted, Data: []byte(`{"reason":"secret"}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.RecordSummary(ctx, testMeta, 0, read, summary); !errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("summary of a message redacted meanwhile: %v, want a conflict", err)
	}
	if v, err := store.StreamVersion(ctx, domain.StreamID(domain.StreamSummary, sid)); err != nil || v != 0 {
		t.Fatalf("summary stream at version %d (%v), want none recorded", v, err)
	}
	summary.Content = "assistant: noted"
	if _, err := svc.RecordSummary(ctx, testMeta, 0, map[string]int{kept: 1}, summary); err != nil {
		t.Fatalf("summary of the messages as they are: %v", err)
	}
}
