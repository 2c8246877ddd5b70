package summarize_test

import (
	"context"
	"strings"
	"testing"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/summarize"
	"github.com/arq-memory/arq/tokens"
)

// The extractive summary keeps the sentences about what the conversation
// is mostly about, in their order, within its token budget, and is the
// same for the same input.
func TestExtractiveKeepsTheTopicWithinBudget(t *testing.T) {
	tc, err := tokens.New("cl100k_base")
	if err != nil {
		t.Fatal(err)
	}
	e := summarize.Extractive{MaxTokens: 40, Tokens: tc}
	lines := []domain.TranscriptLine{
		{Role: "user", Content: "My tomatoes have blight again. The weather was nice on Sunday."},
		{Role: "assistant", Content: "Tomato blight spreads from wet leaves. Water tomatoes at the soil."},
		{Role: "user", Content: "Should I remove blighted tomato leaves? Also, what is the capital of Peru?"},
	}
	got, err := e.Summarize(context.Background(), "", lines)
	if err != nil {
		t.Fatal(err)
	}
	if n := tc.Count(got); n > 40 {
		t.Fatalf("summary of %d tokens over a budget of 40: %q", n, got)
	}
	if !strings.Contains(got, "blight") || strings.Contains(got, "Peru") {
		t.Fatalf("summary misses the topic or keeps the aside: %q", got)
	}
	again, _ := e.Summarize(context.Background(), "", lines)
	if again != got {
		t.Fatalf("not deterministic: %q then %q", got, again)
	}
	folded, _ := e.Summarize(context.Background(), got, []domain.TranscriptLine{{Role: "user", Content: "The blight is gone now."}})
	if !strings.Contains(folded, "blight") {
		t.Fatalf("later summary lost the earlier one: %q", folded)
	}
}

// A conversation whose every sentence is longer than the budget (a long
// message without punctuation) still gets a summary: the best sentence,
// cut to fit.
func TestExtractiveCutsASentenceLongerThanTheBudget(t *testing.T) {
	tc, err := tokens.New("cl100k_base")
	if err != nil {
		t.Fatal(err)
	}
	e := summarize.Extractive{MaxTokens: 30, Tokens: tc}
	long := strings.Repeat("the garden needs water and the roses need pruning ", 200)
	got, err := e.Summarize(context.Background(), "", []domain.TranscriptLine{{Role: "user", Content: long}})
	if err != nil {
		t.Fatal(err)
	}
	if n := tc.Count(got); got == "" || n > 30 || !strings.HasPrefix(got, "user: the garden") {
		t.Fatalf("summary of %d tokens: %q", n, got)
	}
}

// Text without spaces (Chinese) is cut between characters, within the
// budget, keeping more than its role.
func TestExtractiveCutsTextWithoutSpaces(t *testing.T) {
	tc, err := tokens.New("cl100k_base")
	if err != nil {
		t.Fatal(err)
	}
	e := summarize.Extractive{MaxTokens: 30, Tokens: tc}
	got, err := e.Summarize(context.Background(), "", []domain.TranscriptLine{{Role: "user", Content: strings.Repeat("花园需要浇水，玫瑰需要修剪。", 100)}})
	if err != nil {
		t.Fatal(err)
	}
	if n := tc.Count(got); n > 30 || !strings.Contains(got, "花园") {
		t.Fatalf("summary of %d tokens: %q", n, got)
	}
}
