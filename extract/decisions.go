package extract

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/arq-memory/arq/domain"
)

// StepDecisions names the second step's schema, and so the step, in a
// request: what to do with each candidate.
const StepDecisions = "memory_decisions"

const decidePrompt = `You keep a user's memories up to date. You are given, as JSON, candidate memories found in a new conversation, each with the memories already known about the user that resemble it. Known memories are named by short aliases ("m1", "m2", ...).

Decide for every candidate one action:
- "add": the candidate is new; nothing known says it. Target "", memory the candidate.
- "update": a known memory and the candidate say the same thing and the candidate adds detail. Target the known memory's alias; memory the two merged into one statement.
- "supersede": the candidate contradicts or replaces a known memory that was true until now (a changed address, a new job, a preference given up). Target the known memory's alias; memory the new fact.
- "none": the candidate is already known, or not worth keeping. Target the alias of the memory that knows it, or "". Memory the candidate.

Name targets only by the aliases shown with that candidate; never change one known memory in two decisions. A memory is written as a short statement about the user in the third person, with its type (working, episodic, semantic or procedural), importance from 0 to 1, and a few short lowercase tags. Give each decision a short reason.`

// decisionsSchema is the answer of the second step.
const decisionsSchema = `{
  "type": "object",
  "properties": {
    "decisions": {
      "type": "array",
      "items": {
        "type": "object",
        "properties": {
          "candidate": {"type": "integer"},
          "action": {"type": "string", "enum": ["add", "update", "supersede", "none"]},
          "target": {"type": "string"},
          "memory": ` + memorySchema + `,
          "reason": {"type": "string"}
        },
        "required": ["candidate", "action", "target", "memory", "reason"],
        "additionalProperties": false
      }
    }
  },
  "required": ["decisions"],
  "additionalProperties": false
}`

// DecideRequest is the user message Decide sends, as JSON: the
// candidates, each with the known memories it resembles. Tests' fake
// models read it, so its shape is defined here only.
type DecideRequest struct {
	Candidates []ShownCandidate `json:"candidates"`
}

// ShownCandidate is candidate number Candidate and its known memories.
type ShownCandidate struct {
	Candidate  int           `json:"candidate"`
	Type       string        `json:"type"`
	Content    string        `json:"content"`
	Importance float64       `json:"importance"`
	Tags       []string      `json:"tags"`
	Known      []ShownMemory `json:"known"`
}

// ShownMemory is a known memory as the model sees it: under an alias
// ("m1", "m2", ... numbered across the run, one per memory) rather than
// its id, so that a model copies a short name it was shown and cannot
// make up an id that happens to exist.
type ShownMemory struct {
	Alias      string   `json:"alias"`
	Type       string   `json:"type"`
	Content    string   `json:"content"`
	Importance float64  `json:"importance"`
	Tags       []string `json:"tags"`
}

// newDecideRequest shows cands with their known memories (similar[i] for
// cands[i]) and says which memory id each alias stands for.
func newDecideRequest(cands []domain.Candidate, similar [][]domain.KnownMemory) (DecideRequest, map[string]string) {
	req := DecideRequest{Candidates: make([]ShownCandidate, len(cands))}
	aliasOf := map[string]string{} // memory id -> alias
	ids := map[string]string{}     // alias -> memory id
	for i, c := range cands {
		shown := ShownCandidate{Candidate: i, Type: c.Type, Content: c.Content, Importance: c.Importance, Tags: nonNil(c.Tags), Known: []ShownMemory{}}
		if i < len(similar) {
			for _, k := range similar[i] {
				alias, ok := aliasOf[k.ID]
				if !ok {
					alias = "m" + strconv.Itoa(len(ids)+1)
					aliasOf[k.ID], ids[alias] = alias, k.ID
				}
				shown.Known = append(shown.Known, ShownMemory{Alias: alias, Type: k.Type, Content: k.Content, Importance: k.Importance, Tags: nonNil(k.Tags)})
			}
		}
		req.Candidates[i] = shown
	}
	return req, ids
}

// nonNil shows no tags as [] rather than null.
func nonNil(tags []string) []string {
	if tags == nil {
		return []string{}
	}
	return tags
}

// Decide implements domain.Extractor: one call for all candidates, sent
// as a DecideRequest. The proposals name targets by memory id; an alias
// that was not shown is a malformed answer, and the proposals must pass
// domain.CheckProposals.
func (c Chat) Decide(ctx context.Context, cands []domain.Candidate, similar [][]domain.KnownMemory) ([]domain.Proposal, error) {
	if len(cands) == 0 {
		return nil, nil
	}
	if len(similar) > len(cands) {
		return nil, fmt.Errorf("memory decisions: %d lists of known memories for %d candidates", len(similar), len(cands))
	}
	req, ids := newDecideRequest(cands, similar)
	user, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("memory decisions: encode request: %w", err)
	}
	var ans struct {
		Decisions *[]decisionAnswer `json:"decisions"`
	}
	if err := c.complete(ctx, StepDecisions, decisionsSchema, decidePrompt, string(user), &ans); err != nil {
		return nil, fmt.Errorf("memory decisions: %w", err)
	}
	if ans.Decisions == nil {
		return nil, fmt.Errorf("memory decisions: %w", missing("decisions"))
	}
	props := make([]domain.Proposal, len(*ans.Decisions))
	for i, d := range *ans.Decisions {
		if props[i], err = d.proposal(fmt.Sprintf("decisions[%d]", i), ids); err != nil {
			return nil, fmt.Errorf("memory decisions: %w", err)
		}
	}
	if err := domain.CheckProposals(cands, similar, props); err != nil {
		return nil, fmt.Errorf("memory decisions: %w", err)
	}
	return props, nil
}

// decisionAnswer is a decision in an answer; a nil field was left out.
type decisionAnswer struct {
	Candidate *int          `json:"candidate"`
	Action    *string       `json:"action"`
	Target    *string       `json:"target"`
	Memory    *memoryAnswer `json:"memory"`
	Reason    *string       `json:"reason"`
}

// proposal reads the decision, turning its target alias into the id it
// stands for.
func (d decisionAnswer) proposal(field string, ids map[string]string) (domain.Proposal, error) {
	switch {
	case d.Candidate == nil:
		return domain.Proposal{}, missing(field + ".candidate")
	case d.Action == nil:
		return domain.Proposal{}, missing(field + ".action")
	case d.Target == nil:
		return domain.Proposal{}, missing(field + ".target")
	case d.Memory == nil:
		return domain.Proposal{}, missing(field + ".memory")
	case d.Reason == nil:
		return domain.Proposal{}, missing(field + ".reason")
	}
	mem, err := d.Memory.candidate(field + ".memory")
	if err != nil {
		return domain.Proposal{}, err
	}
	target := ""
	if *d.Target != "" {
		var ok bool
		if target, ok = ids[*d.Target]; !ok {
			return domain.Proposal{}, fmt.Errorf("answer: %s.target %.40q is not an alias that was shown", field, *d.Target)
		}
	}
	return domain.Proposal{Candidate: *d.Candidate, Action: *d.Action, Target: target, Memory: mem, Reason: *d.Reason}, nil
}
