// Package summarize makes session summaries: Extractive picks the
// sentences that carry a conversation's most frequent words, offline; Chat
// asks an OpenAI-compatible chat endpoint.
package summarize

import (
	"context"
	"math"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/arq-memory/arq/domain"
)

// Extractive summarizes by extraction: it scores every sentence of the
// previous summary and of the messages by how frequent its words are in
// the whole, and keeps the best sentences, in their original order, within
// MaxTokens. It needs no network and gives the same summary for the same
// input.
type Extractive struct {
	MaxTokens int
	Tokens    domain.TokenCounter
}

// Name is "extractive".
func (Extractive) Name() string { return "extractive" }

type sentence struct {
	text  string
	order int
	score float64
}

// Summarize implements domain.Summarizer.
func (e Extractive) Summarize(_ context.Context, previous string, lines []domain.TranscriptLine) (string, error) {
	var all []sentence
	for _, s := range splitSentences(previous) {
		all = append(all, sentence{text: s, order: len(all)})
	}
	for _, l := range lines {
		for _, s := range splitSentences(l.Content) {
			all = append(all, sentence{text: l.Role + ": " + s, order: len(all)})
		}
	}
	freq := map[string]float64{}
	for _, s := range all {
		for _, w := range words(s.text) {
			freq[w]++
		}
	}
	for i := range all {
		ws := words(all[i].text)
		if len(ws) == 0 {
			continue
		}
		sum := 0.0
		for _, w := range ws {
			sum += freq[w]
		}
		all[i].score = sum / math.Sqrt(float64(len(ws)))
	}
	ranked := append([]sentence(nil), all...)
	sort.SliceStable(ranked, func(i, j int) bool { return ranked[i].score > ranked[j].score })
	budget := e.MaxTokens
	if budget <= 0 {
		budget = 256
	}
	var kept []sentence
	for _, s := range ranked {
		cost := e.Tokens.Count(s.text) + 1
		if cost > budget {
			continue
		}
		budget -= cost
		kept = append(kept, s)
	}
	if len(kept) == 0 && len(ranked) > 0 {
		// Every sentence is longer than the budget (a message without
		// punctuation is one sentence): the best one, cut to fit, rather
		// than no summary at all.
		kept = append(kept, sentence{text: e.cut(ranked[0].text, e.MaxTokens)})
	}
	sort.Slice(kept, func(i, j int) bool { return kept[i].order < kept[j].order })
	out := make([]string, len(kept))
	for i, s := range kept {
		out[i] = s.text
	}
	return strings.Join(out, "\n"), nil
}

// cut returns the longest start of text that, with an ellipsis, costs at
// most budget tokens (as a kept sentence does, one more for its line end),
// ended at a space when one falls in its second half (text without spaces,
// such as Chinese or Japanese, is cut between characters).
func (e Extractive) cut(text string, budget int) string {
	if budget <= 0 {
		budget = 256
	}
	rs := []rune(text)
	fits := func(n int) bool { return e.Tokens.Count(string(rs[:n])+" …")+1 <= budget }
	n := sort.Search(len(rs)+1, func(n int) bool { return !fits(n) }) - 1
	if n < 1 {
		return "…" // not even one character fits
	}
	if sp := strings.LastIndexFunc(string(rs[:n]), unicode.IsSpace); sp > 0 && utf8.RuneCountInString(string(rs[:n])[:sp]) > n/2 {
		return strings.TrimSpace(string(rs[:n])[:sp]) + " …"
	}
	return strings.TrimSpace(string(rs[:n])) + " …"
}

// splitSentences cuts text after ., ! or ? and at line ends.
func splitSentences(text string) []string {
	var out []string
	start := 0
	rs := []rune(text)
	flush := func(end int) {
		if s := strings.TrimSpace(string(rs[start:end])); s != "" {
			out = append(out, s)
		}
		start = end
	}
	for i, r := range rs {
		switch {
		case r == '\n':
			flush(i + 1)
		case (r == '.' || r == '!' || r == '?') && (i+1 == len(rs) || unicode.IsSpace(rs[i+1])):
			flush(i + 1)
		}
	}
	flush(len(rs))
	return out
}

// stopwords are left out of the word counts: they say nothing of a topic.
var stopwords = map[string]bool{
	"the": true, "and": true, "for": true, "are": true, "but": true, "not": true, "you": true, "your": true,
	"with": true, "this": true, "that": true, "have": true, "was": true, "were": true, "what": true, "can": true,
	"will": true, "just": true, "from": true, "they": true, "them": true, "there": true, "then": true, "than": true,
	"its": true, "it's": true, "our": true, "out": true, "about": true, "would": true, "could": true, "should": true,
	"user": true, "assistant": true, "system": true, "tool": true, "also": true, "some": true, "any": true, "all": true,
}

// words are the lower-cased words of three letters or more, stopwords out.
func words(s string) []string {
	var out []string
	for _, w := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '\''
	}) {
		if len([]rune(w)) >= 3 && !stopwords[w] {
			out = append(out, w)
		}
	}
	return out
}
