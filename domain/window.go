package domain

import "math"

// ItemOverhead is what every item of a context window costs beyond the
// tokens of its text: the chat format's framing of one message
// (<|start|>role<|message|>…<|end|> in the cl100k and o200k chat formats).
// Summaries and memories are handed to the model as messages too, so they
// pay it alike. A message with a name pays the name's tokens on top.
const ItemOverhead = 4

// Budget is how many tokens a context window may hold, and how it is
// split: at most SummaryShare of it for the session's summary and
// MemoryShare for memories at first; messages get the rest, and what they
// leave over goes back to memories (and to the summary). A share of 0
// leaves that part out altogether.
type Budget struct {
	MaxTokens    int
	SummaryShare float64
	MemoryShare  float64
}

// Budget defaults and bounds.
const (
	DefaultMaxTokens    = 4096
	MaxWindowTokens     = 1_000_000
	DefaultSummaryShare = 0.2
	DefaultMemoryShare  = 0.3
)

// DefaultBudget is the budget of a context read that names none.
func DefaultBudget() Budget {
	return Budget{MaxTokens: DefaultMaxTokens, SummaryShare: DefaultSummaryShare, MemoryShare: DefaultMemoryShare}
}

// Validate reports every wrong field of the budget.
func (b Budget) Validate() error {
	v := &ValidationError{}
	if b.MaxTokens < 1 || b.MaxTokens > MaxWindowTokens {
		v.Add("max_tokens", "must be between 1 and %d", MaxWindowTokens)
	}
	share := func(field string, s float64) bool {
		if math.IsNaN(s) || s < 0 || s > 1 {
			v.Add(field, "must be between 0 and 1")
			return false
		}
		return true
	}
	summaryOK, memoryOK := share("summary_share", b.SummaryShare), share("memory_share", b.MemoryShare)
	if summaryOK && memoryOK && b.SummaryShare+b.MemoryShare > 1 {
		v.Add("memory_share", "summary_share and memory_share add up to more than 1")
	}
	return v.Err()
}

// WindowCandidates is what a context window may be made of, each given as
// the cost of one item (its tokens plus ItemOverhead).
type WindowCandidates struct {
	// Summary is the cost of the session's summary; 0 when there is none.
	Summary int
	// Messages are the session's messages, newest first. Complete says the
	// list reaches back to the session's first message, so that when all
	// of it fits, the summary of older messages has nothing left to add.
	Messages []int
	Complete bool
	// Memories are the relevant memories, most relevant first.
	Memories []int
}

// WindowPlan says which candidates a context window holds.
type WindowPlan struct {
	Summary bool
	// Messages is how many of the newest messages the window holds.
	Messages int
	// Memories are the indexes of the memories it holds, in rank order.
	Memories []int
	Total    int
}

// FitWindow decides a context window: the summary if it fits its share;
// memories by rank within their share (a memory too large is passed over
// for smaller ones behind it); then the newest messages, in order, until
// the next one does not fit; and whatever is left over to the summary and
// the memories not yet taken, unless their share is 0. The total never
// exceeds b.MaxTokens.
func FitWindow(b Budget, c WindowCandidates) WindowPlan {
	var p WindowPlan
	left := b.MaxTokens
	take := func(cost int) bool {
		if cost > left {
			return false
		}
		left -= cost
		p.Total += cost
		return true
	}
	if c.Summary > 0 && c.Summary <= int(float64(b.MaxTokens)*b.SummaryShare) {
		p.Summary = take(c.Summary)
	}
	taken := make([]bool, len(c.Memories))
	memLeft := int(float64(b.MaxTokens) * b.MemoryShare)
	for i, cost := range c.Memories {
		if cost <= memLeft && take(cost) {
			memLeft -= cost
			taken[i] = true
		}
	}
	for _, cost := range c.Messages {
		if !take(cost) {
			break
		}
		p.Messages++
	}
	if p.Summary && c.Complete && p.Messages == len(c.Messages) {
		// Every message is in the window: the summary repeats them.
		p.Summary = false
		left += c.Summary
		p.Total -= c.Summary
	}
	if !p.Summary && c.Summary > 0 && b.SummaryShare > 0 && !(c.Complete && p.Messages == len(c.Messages)) {
		p.Summary = take(c.Summary)
	}
	for i, cost := range c.Memories {
		if !taken[i] && b.MemoryShare > 0 && take(cost) {
			taken[i] = true
		}
	}
	for i, t := range taken {
		if t {
			p.Memories = append(p.Memories, i)
		}
	}
	return p
}
