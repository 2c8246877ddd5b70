package extract

import (
	"context"
	"fmt"
	"strings"

	"github.com/arq-memory/arq/domain"
)

// StepCandidates names the first step's schema, and so the step, in a
// request: candidate memories from a transcript.
const StepCandidates = "memory_candidates"

const extractPrompt = `You find what is worth remembering about the user across conversations, in a conversation between the user and an assistant.

Keep facts about the user that will still matter in another conversation: preferences, biography, plans, relationships, and how the user does things. Write each as a short statement about the user in the third person ("User's sister is Ann", "User prefers tea to coffee"). Take facts from the user's own words; take nothing from the assistant's claims unless the user confirmed them. Skip small talk, questions, and anything only about this conversation.

For each memory give:
- type: "semantic" for lasting facts and preferences; "episodic" for events that happened (with when, if known); "procedural" for how the user does something or wants something done; "working" for what the user is doing now and will soon not matter.
- content: the statement.
- importance: from 0 to 1, how much it would matter to know (1 for a name or a strong preference, 0.3 for a passing detail).
- tags: a few short lowercase words naming the topic.

The conversation follows, one message a line as "role: content". When nothing is worth keeping, answer an empty list.`

// candidatesSchema is the answer of the first step. Strict mode wants
// every property required and no others.
const candidatesSchema = `{
  "type": "object",
  "properties": {
    "candidates": {
      "type": "array",
      "items": ` + memorySchema + `
    }
  },
  "required": ["candidates"],
  "additionalProperties": false
}`

// memorySchema is one memory, as proposed and as decided.
const memorySchema = `{
        "type": "object",
        "properties": {
          "type": {"type": "string", "enum": ["working", "episodic", "semantic", "procedural"]},
          "content": {"type": "string"},
          "importance": {"type": "number"},
          "tags": {"type": "array", "items": {"type": "string"}}
        },
        "required": ["type", "content", "importance", "tags"],
        "additionalProperties": false
      }`

// Extract implements domain.Extractor: it sends the lines as one user
// message, a line "role: content" each, and proposes the model's
// candidates if they pass domain.CheckCandidates.
func (c Chat) Extract(ctx context.Context, lines []domain.TranscriptLine) ([]domain.Candidate, error) {
	if len(lines) == 0 {
		return nil, nil
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.Role + ": " + l.Content + "\n")
	}
	var ans struct {
		Candidates *[]memoryAnswer `json:"candidates"`
	}
	if err := c.complete(ctx, StepCandidates, candidatesSchema, extractPrompt, b.String(), &ans); err != nil {
		return nil, fmt.Errorf("memory candidates: %w", err)
	}
	if ans.Candidates == nil {
		return nil, fmt.Errorf("memory candidates: %w", missing("candidates"))
	}
	cands := make([]domain.Candidate, len(*ans.Candidates))
	for i, m := range *ans.Candidates {
		var err error
		if cands[i], err = m.candidate(fmt.Sprintf("candidates[%d]", i)); err != nil {
			return nil, fmt.Errorf("memory candidates: %w", err)
		}
	}
	if err := domain.CheckCandidates(cands); err != nil {
		return nil, fmt.Errorf("memory candidates: %w", err)
	}
	return cands, nil
}

// memoryAnswer is a memory in an answer; a nil field was left out.
type memoryAnswer struct {
	Type       *string   `json:"type"`
	Content    *string   `json:"content"`
	Importance *float64  `json:"importance"`
	Tags       *[]string `json:"tags"`
}

func (m memoryAnswer) candidate(field string) (domain.Candidate, error) {
	switch {
	case m.Type == nil:
		return domain.Candidate{}, missing(field + ".type")
	case m.Content == nil:
		return domain.Candidate{}, missing(field + ".content")
	case m.Importance == nil:
		return domain.Candidate{}, missing(field + ".importance")
	case m.Tags == nil:
		return domain.Candidate{}, missing(field + ".tags")
	}
	return domain.Candidate{Type: *m.Type, Content: *m.Content, Importance: *m.Importance, Tags: *m.Tags}, nil
}
