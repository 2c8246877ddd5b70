package domain_test

import (
	"math/rand/v2"
	"testing"

	"github.com/arq-memory/arq/domain"
)

// Over random budgets and candidates, a window never exceeds its budget,
// holds the newest messages as an unbroken run, counts what it holds, and
// carries a summary only when older messages are left out.
func TestFitWindowProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	share := func() float64 {
		if r.IntN(4) == 0 {
			return 0
		}
		return r.Float64() * 0.5
	}
	for i := 0; i < 20000; i++ {
		b := domain.Budget{MaxTokens: 1 + r.IntN(3000), SummaryShare: share(), MemoryShare: share()}
		c := domain.WindowCandidates{Complete: r.IntN(2) == 0}
		if r.IntN(2) == 0 {
			c.Summary = 5 + r.IntN(600)
		}
		for n := r.IntN(40); n > 0; n-- {
			c.Messages = append(c.Messages, 5+r.IntN(300))
		}
		for n := r.IntN(20); n > 0; n-- {
			c.Memories = append(c.Memories, 5+r.IntN(200))
		}
		p := domain.FitWindow(b, c)
		sum := 0
		if p.Summary {
			sum += c.Summary
		}
		for _, cost := range c.Messages[:p.Messages] {
			sum += cost
		}
		last := -1
		for _, m := range p.Memories {
			if m <= last || m >= len(c.Memories) {
				t.Fatalf("case %d: memory indexes %v", i, p.Memories)
			}
			last = m
			sum += c.Memories[m]
		}
		if p.Total != sum || p.Total > b.MaxTokens {
			t.Fatalf("case %d: total %d, held %d, budget %d", i, p.Total, sum, b.MaxTokens)
		}
		if p.Summary && c.Complete && p.Messages == len(c.Messages) {
			t.Fatalf("case %d: summary held beside every message", i)
		}
		if (p.Summary && b.SummaryShare == 0) || (len(p.Memories) > 0 && b.MemoryShare == 0) {
			t.Fatalf("case %d: a part held with a share of 0: %+v for %+v", i, p, b)
		}
		if p.Messages < len(c.Messages) && p.Total+c.Messages[p.Messages] <= b.MaxTokens && len(p.Memories) == 0 && !p.Summary {
			t.Fatalf("case %d: message %d fits but was left out", i, p.Messages)
		}
	}
}

func TestBudgetValidate(t *testing.T) {
	for _, b := range []domain.Budget{
		{MaxTokens: 0, SummaryShare: 0.2, MemoryShare: 0.3},
		{MaxTokens: 100, SummaryShare: -0.1},
		{MaxTokens: 100, SummaryShare: 0.7, MemoryShare: 0.5},
	} {
		if err := b.Validate(); err == nil {
			t.Errorf("%+v: no error", b)
		}
	}
	if err := domain.DefaultBudget().Validate(); err != nil {
		t.Fatal(err)
	}
}
