package domain_test

import (
	"strings"
	"testing"
	"time"

	"github.com/arq-memory/arq/domain"
)

// A model's decisions pass only if each names a candidate once, a known
// action, a target the candidate was shown, and a memory a client could
// store; anything else refuses the whole answer, naming the field.
func TestCheckProposalsRefusesWhatAModelShouldNotSay(t *testing.T) {
	cand := domain.Candidate{Type: "semantic", Content: "User's city is Paris", Importance: 0.7, Tags: []string{"city"}}
	cands := []domain.Candidate{cand, cand}
	similar := [][]domain.KnownMemory{{{ID: "m-berlin", Version: 1}}, {{ID: "m-rome", Version: 2}}}
	good := domain.Proposal{Candidate: 0, Action: domain.ActionSupersede, Target: "m-berlin", Memory: cand, Reason: "moved"}
	for _, c := range []struct {
		name  string
		props []domain.Proposal
		want  string // the first field named; "" passes
	}{
		{"good", []domain.Proposal{good, {Candidate: 1, Action: domain.ActionAdd, Memory: cand, Reason: "new"}}, ""},
		{"none needs nothing", []domain.Proposal{{Candidate: 0, Action: domain.ActionNone, Target: "whatever"}}, ""},
		{"a candidate left out is none", nil, ""},
		{"no such candidate", []domain.Proposal{{Candidate: 2, Action: domain.ActionNone}}, "decisions[0].candidate"},
		{"a candidate twice", []domain.Proposal{good, good}, "decisions[1].candidate"},
		{"an unknown action", []domain.Proposal{{Candidate: 0, Action: "delete", Target: "m-berlin"}}, "decisions[0].action"},
		{"an invented target", []domain.Proposal{{Candidate: 0, Action: domain.ActionUpdate, Target: "m-nowhere", Memory: cand}}, "decisions[0].target"},
		{"another candidate's target", []domain.Proposal{{Candidate: 0, Action: domain.ActionUpdate, Target: "m-rome", Memory: cand}}, "decisions[0].target"},
		{"an addition with a target", []domain.Proposal{{Candidate: 0, Action: domain.ActionAdd, Target: "m-berlin", Memory: cand}}, "decisions[0].target"},
		{"a bad memory", []domain.Proposal{{Candidate: 0, Action: domain.ActionAdd, Memory: domain.Candidate{Type: "belief", Content: "x", Importance: 2}}}, "decisions[0].memory.type"},
		{"a reason too long", []domain.Proposal{{Candidate: 1, Action: domain.ActionAdd, Memory: cand, Reason: strings.Repeat("x", domain.MaxReasonRunes+1)}}, "decisions[0].reason"},
	} {
		err := domain.CheckProposals(cands, similar, c.props)
		got := ""
		if f := fields(err); len(f) > 0 {
			got = f[0]
		} else if err != nil {
			got = err.Error()
		}
		if got != c.want {
			t.Errorf("%s: refused %q (%v); want %q", c.name, got, err, c.want)
		}
	}
	// Two candidates may not change one memory.
	similar[1] = similar[0]
	twice := []domain.Proposal{good, {Candidate: 1, Action: domain.ActionUpdate, Target: "m-berlin", Memory: cand, Reason: "more"}}
	if f := fields(domain.CheckProposals(cands, similar, twice)); len(f) != 1 || f[0] != "decisions[1].target" {
		t.Errorf("two decisions on one memory: %v", f)
	}
	if err := domain.CheckCandidates(make([]domain.Candidate, domain.MaxCandidates+1)); err == nil {
		t.Error("more candidates than a run takes passed")
	}
}

// A superseded memory leaves the present and keeps its past: it no
// longer exists, says by whom and until when, and decides nothing more.
func TestSupersededMemoryEndsItsLife(t *testing.T) {
	stored := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	m := &domain.Memory{}
	m.Apply(domain.Event{Type: domain.MemoryStored, Data: domain.MemoryStoredData{MemoryID: "m1", UserID: "u1", Type: "semantic", Content: "Berlin"}}, 1, stored)
	if _, err := m.Supersede("m1", nil, "", stored); err == nil {
		t.Fatal("a memory superseded by itself")
	}
	now := stored.Add(time.Hour)
	events, err := m.Supersede("m2", &domain.Provenance{RunID: "r1"}, "moved", now)
	if err != nil || len(events) != 1 {
		t.Fatalf("supersede: %v %v", events, err)
	}
	m.Apply(events[0], 2, now)
	if m.Exists() || m.SupersededBy() != "m2" || m.ValidUntil() == nil || !m.ValidUntil().Equal(now) {
		t.Fatalf("after supersession: exists %v, by %q, until %v", m.Exists(), m.SupersededBy(), m.ValidUntil())
	}
	if _, err := m.Supersede("m3", nil, "", now); err == nil {
		t.Fatal("a superseded memory superseded again")
	}
}
