package domain

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Extraction: memories that a model proposes from a conversation. Every
// step is an event: the run over a session's messages (SessionExtracted,
// with each decision and the model's reason), and the memories it stored,
// updated or superseded, each carrying its Provenance. Nothing a model
// says is applied unless it passes the rules a client's command passes.

// Extraction event types.
const (
	// MemorySuperseded goes to the memory's stream: a newer memory
	// replaced it. It leaves every current read, as a deleted memory does,
	// but its history stays: a read as of a time before ValidUntil shows
	// it as it was believed then.
	MemorySuperseded = "memory.superseded" // MemorySupersededData
	// SessionExtracted goes to the session's extraction stream: one run of
	// an extractor over the session's messages, with every decision.
	SessionExtracted = "session.extracted" // SessionExtractedData
)

// StreamExtraction holds a user's extraction runs, one stream per user;
// its version numbers them, and a run is recorded only at the version it
// started from, so that each message is extracted once however many
// processes run passes, and two runs over one user's sessions never
// decide at once (each would miss what the other stores).
const StreamExtraction = "extraction"

// UnitExtraction is one extraction run (one session.extracted event): its
// decisions hold text the model read in messages and wrote about them, so
// erasing one of its messages erases it.
const UnitExtraction = "extraction"

// Decision actions.
const (
	// ActionAdd stores a new memory.
	ActionAdd = "add"
	// ActionUpdate changes a memory the user has (its Target).
	ActionUpdate = "update"
	// ActionSupersede stores a new memory and marks its Target superseded
	// by it: the fact changed, the old one was true until now.
	ActionSupersede = "supersede"
	// ActionNone changes nothing: the memory is known already, or not
	// worth keeping.
	ActionNone = "none"
)

// Provenance says where a memory (or a change of it) came from: the
// extraction run, the extractor and model behind it, and the messages it
// read, each at the version it read.
type Provenance struct {
	RunID         string          `json:"run_id"`
	Extractor     string          `json:"extractor"`
	Model         string          `json:"model,omitempty"`
	PromptVersion string          `json:"prompt_version"`
	SessionID     string          `json:"session_id"`
	Messages      []SourceMessage `json:"messages"`
}

// Names reports whether p read the message id.
func (p *Provenance) Names(id string) bool {
	return p != nil && slices.ContainsFunc(p.Messages, func(m SourceMessage) bool { return m.ID == id })
}

// SourceMessage is one message an extraction read: its id, its place in
// its session and the version of it that was read.
type SourceMessage struct {
	ID      string `json:"id"`
	Seq     int    `json:"seq"`
	Version int    `json:"version"`
}

// MemorySupersededData records that a newer memory replaced this one.
type MemorySupersededData struct {
	SupersededBy string      `json:"superseded_by"`
	ValidUntil   time.Time   `json:"valid_until"`
	Provenance   *Provenance `json:"provenance,omitempty"`
	Reason       string      `json:"reason,omitempty"`
}

// SessionExtractedData is one extraction run over a session's messages
// FromSeq..ToSeq.
type SessionExtractedData struct {
	RunID         string          `json:"run_id"`
	SessionID     string          `json:"session_id"`
	UserID        string          `json:"user_id"`
	FromSeq       int             `json:"from_seq"`
	ToSeq         int             `json:"to_seq"`
	Messages      []SourceMessage `json:"messages"`
	Extractor     string          `json:"extractor"`
	Model         string          `json:"model,omitempty"`
	PromptVersion string          `json:"prompt_version"`
	// Decisions are personal (UnitExtraction): the candidates' text and
	// the model's reasons.
	Decisions []Decision `json:"decisions"`
}

// Candidate is a memory a model proposes.
type Candidate struct {
	Type       string   `json:"type"`
	Content    string   `json:"content"`
	Importance float64  `json:"importance"`
	Tags       []string `json:"tags"`
}

// Decision is what became of one candidate: its Action, the memory it
// made or changed (MemoryID), the memory it superseded or updated
// (Target), and the model's Reason.
type Decision struct {
	Action    string    `json:"action"`
	Candidate Candidate `json:"candidate"`
	MemoryID  string    `json:"memory_id,omitempty"`
	Target    string    `json:"target,omitempty"`
	Reason    string    `json:"reason"`
}

// KnownMemory is a memory of the user that a candidate resembles, as the
// model is shown it; Version is the version it was read at, so a memory
// changed since is not decided on from its old text.
type KnownMemory struct {
	ID         string
	Version    int
	Type       string
	Content    string
	Importance float64
	Tags       []string
}

// Proposal is a model's decision on candidate number Candidate: Action on
// Target (one of that candidate's known memories, by id), leaving the
// memory as Memory says (for add and supersede the new memory; for update
// the target's new content, importance and tags).
type Proposal struct {
	Candidate int
	Action    string
	Target    string
	Memory    Candidate
	Reason    string
}

// Extractor proposes memories from a conversation and decides each
// against the user's memories that resemble it. An implementation may
// answer anything: CheckProposals is the gate.
type Extractor interface {
	// Name is the extractor, e.g. "chat"; Model and PromptVersion say
	// which model and which prompts. All three are recorded.
	Name() string
	Model() string
	PromptVersion() string
	// Extract proposes candidate memories from lines.
	Extract(ctx context.Context, lines []TranscriptLine) ([]Candidate, error)
	// Decide proposes what to do with each candidate, given the known
	// memories that resemble it (similar[i] for candidates[i]).
	Decide(ctx context.Context, candidates []Candidate, similar [][]KnownMemory) ([]Proposal, error)
}

// MaxCandidates bounds the candidates of one run: a model that proposes
// more answered out of bounds.
const MaxCandidates = 32

// CheckCandidates refuses candidates a model should not have proposed:
// too many, or one no client could store (a bad type, an empty or too
// long content, an importance out of range, bad tags). A malformed
// answer changes nothing, so one bad candidate refuses them all.
func CheckCandidates(cands []Candidate) error {
	if len(cands) > MaxCandidates {
		return fmt.Errorf("%w: %d candidates, at most %d", ErrInvalid, len(cands), MaxCandidates)
	}
	v := &ValidationError{}
	for i, c := range cands {
		checkCandidate(v, fmt.Sprintf("candidates[%d]", i), c)
	}
	return v.Err()
}

func checkCandidate(v *ValidationError, field string, c Candidate) {
	if _, err := ParseMemoryType(c.Type); err != nil {
		v.Add(field+".type", "must be working, episodic, semantic or procedural")
	}
	checkContent(v, field+".content", c.Content)
	if _, err := ParseImportance(c.Importance); err != nil {
		v.Add(field+".importance", "must be from 0 to 1")
	}
	if _, err := NormalizeTags(c.Tags); err != nil {
		v.Add(field+".tags", "%s", trimKind(err))
	}
}

// CheckProposals refuses a model's decisions unless each names a
// candidate once, a known action, a reason of at most MaxReasonRunes, and
// for update and supersede a target
// among that candidate's known memories (no invented ids); and unless
// the memory it leaves would be stored by the same rules as a client's.
// Two decisions may not change one target. A candidate without a
// decision is decided "none".
func CheckProposals(cands []Candidate, similar [][]KnownMemory, props []Proposal) error {
	v := &ValidationError{}
	seen := map[int]bool{}
	targets := map[string]bool{}
	for i, p := range props {
		field := fmt.Sprintf("decisions[%d]", i)
		if p.Candidate < 0 || p.Candidate >= len(cands) || seen[p.Candidate] {
			v.Add(field+".candidate", "must name each candidate once")
			continue
		}
		seen[p.Candidate] = true
		checkText(v, field+".reason", p.Reason, false, MaxReasonRunes)
		switch p.Action {
		case ActionNone:
			continue
		case ActionAdd:
			if p.Target != "" {
				v.Add(field+".target", "an addition has no target")
			}
		case ActionUpdate, ActionSupersede:
			var known []KnownMemory
			if p.Candidate < len(similar) {
				known = similar[p.Candidate]
			}
			switch {
			case !slices.ContainsFunc(known, func(k KnownMemory) bool { return k.ID == p.Target }):
				v.Add(field+".target", "must be one of the candidate's known memories")
			case targets[p.Target]:
				v.Add(field+".target", "is changed by another decision")
			}
			targets[p.Target] = true
		default:
			v.Add(field+".action", "must be add, update, supersede or none")
			continue
		}
		checkCandidate(v, field+".memory", p.Memory)
	}
	return v.Err()
}

// Supersede decides marking a live memory superseded by the memory by,
// from now on, for reason, as prov read it.
func (m *Memory) Supersede(by string, prov *Provenance, reason string, now time.Time) ([]Event, error) {
	if !m.Live(now) {
		return nil, m.gone()
	}
	if by == "" || by == m.id {
		return nil, fmt.Errorf("%w: memory %s cannot be superseded by %q", ErrInvalid, m.id, by)
	}
	return []Event{{Type: MemorySuperseded, Data: MemorySupersededData{
		SupersededBy: by, ValidUntil: now.UTC(), Provenance: prov, Reason: reason,
	}}}, nil
}

// DueExtraction is a session whose messages FromSeq..ToSeq are to be
// extracted, in a run recorded after version After of its user's
// extraction stream: Lines are those messages as the model reads them, Messages the
// same messages as provenance names them (with the version read, so a
// message edited or redacted meanwhile refuses the run). The read model
// finds it; the extraction records it.
type DueExtraction struct {
	SessionID, UserID string
	After             int
	FromSeq, ToSeq    int
	Lines             []TranscriptLine
	Messages          []SourceMessage
}
