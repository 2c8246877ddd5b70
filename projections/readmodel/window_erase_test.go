package readmodel_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/oklog/ulid/v2"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/history"
	"github.com/arq-memory/arq/projections/readmodel"
	"github.com/arq-memory/arq/tokens"
)

// The window behind an assistant message, worked out from the log after
// the fact, reads the summaries it takes from the log opened; after an
// erasure it holds nothing erased, though the erasure came after the
// message.
func TestWindowAtOpensTheLogAndLeavesOutTheErased(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := newSealedLog(t)
	tc, err := tokens.New("cl100k_base")
	if err != nil {
		t.Fatal(err)
	}
	reader := readmodel.NewReader(l.pool, readmodel.OpenEventsWith(l.store))
	past := history.New(l.store)
	id := func() string { return ulid.Make().String() }
	user, session := id(), id()
	msgs := make([]string, 6)
	for i := range msgs {
		msgs[i] = id()
	}
	l.add(domain.StreamUser, user, domain.UserRegistered, domain.UserRegisteredData{UserID: user, Tenant: "t", ExternalID: "x", Name: "N"})
	l.add(domain.StreamSession, session, domain.SessionStarted, domain.SessionStartedData{SessionID: session, UserID: user, TokenHash: "h"})
	texts := []string{"alpha zqxfirst", "beta", "gamma zqxthird", "delta", "epsilon question", "zeta answer"}
	appendMsg := func(i int) {
		role := "user"
		if i%2 == 1 {
			role = "assistant"
		}
		l.add(domain.StreamMessageLog, session, domain.MessageAppended, domain.MessageAppendedData{MessageID: msgs[i], SessionID: session,
			UserID: user, Role: role, Content: texts[i], Tokens: 20})
	}
	for i := range 4 {
		appendMsg(i)
	}
	summary := l.add(domain.StreamSummary, session, domain.SessionSummarized, domain.SessionSummarizedData{SessionID: session, UserID: user,
		Content: "summary zqxsummary", Tokens: 4, FromSeq: 1, ToSeq: 2, Method: "extractive"})
	appendMsg(4)
	appendMsg(5)
	// A redaction after the answer: the window behind it works out its
	// summary from the log.
	l.add(domain.StreamMessage, msgs[2], domain.MessageRedacted, domain.MessageRedactedData{})
	l.caughtUp()

	// A budget for the summary and two messages (24 tokens each): the
	// summary is not left out for repeating every message.
	small := domain.Budget{MaxTokens: 60, SummaryShare: 0.2}
	window := func(b domain.Budget) string {
		t.Helper()
		w, err := reader.WindowAt(ctx, msgs[5], b, tc, past)
		if err != nil {
			t.Fatal(err)
		}
		j, err := json.Marshal(w)
		if err != nil {
			t.Fatal(err)
		}
		return string(j)
	}
	got := window(small)
	for _, want := range []string{"summary zqxsummary", "delta", "epsilon question"} {
		if !strings.Contains(got, want) {
			t.Errorf("the window behind the answer lacks %q: %s", want, got)
		}
	}
	if strings.Contains(got, "zqxfirst") {
		t.Errorf("the window holds a message its summary covers: %s", got)
	}

	if _, err := l.vault.Erase(ctx, nil, []string{domain.KeyID(domain.UnitMessage, msgs[0]), domain.KeyID(domain.UnitSummary, summary)}); err != nil {
		t.Fatal(err)
	}
	l.add(domain.StreamMessage, msgs[0], domain.MessageErased, domain.MessageErasedData{SessionID: session, UserID: user, Seq: 1,
		Reason: domain.ErasedOnRequest, Summaries: []string{summary}})
	l.caughtUp()
	for _, b := range []domain.Budget{small, domain.DefaultBudget()} {
		got = window(b)
		for _, gone := range []string{"zqxfirst", "zqxsummary"} {
			if strings.Contains(got, gone) {
				t.Errorf("the window behind the answer (budget %d) holds erased %q: %s", b.MaxTokens, gone, got)
			}
		}
		if !strings.Contains(got, `"summary":null`) {
			t.Errorf("the window behind the answer (budget %d) takes an erased summary: %s", b.MaxTokens, got)
		}
	}
	// With room for every message, the window holds those not erased (the
	// one redacted after the answer as it was then).
	for _, want := range []string{`"beta"`, "gamma zqxthird", "delta", "epsilon question"} {
		if !strings.Contains(got, want) {
			t.Errorf("after the erasure the window lacks %q: %s", want, got)
		}
	}
}
