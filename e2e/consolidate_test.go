package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arq-memory/arq/app"
	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/internal/testserver"
)

// ruledExtractor is a deterministic extractor for consolidation tests: it
// decides each candidate by the rule for its text, naming the target by
// its text among the candidate's similar memories (a target text none of
// them has is sent as it is: an id the model invented). Before each
// decision it runs the hook, if any, with the decision's number.
type ruledExtractor struct {
	rules map[string]rule
	calls atomic.Int32
	hook  atomic.Pointer[func(call int)]
}

// rule is one proposal: action on the memory whose text is target,
// leaving the text content.
type rule struct{ action, target, content, reason string }

func (*ruledExtractor) Name() string          { return "ruled" }
func (*ruledExtractor) Model() string         { return "ruled-model-1" }
func (*ruledExtractor) PromptVersion() string { return "ruled-1" }

func (*ruledExtractor) Extract(context.Context, []domain.TranscriptLine) ([]domain.Candidate, error) {
	return nil, nil
}

func (x *ruledExtractor) Decide(_ context.Context, cands []domain.Candidate, similar [][]domain.KnownMemory) ([]domain.Proposal, error) {
	n := int(x.calls.Add(1))
	if h := x.hook.Load(); h != nil {
		(*h)(n)
	}
	var out []domain.Proposal
	for i, c := range cands {
		r, ok := x.rules[c.Content]
		if !ok {
			continue
		}
		target := r.target
		for _, k := range similar[i] {
			if k.Content == r.target {
				target = k.ID
			}
		}
		out = append(out, domain.Proposal{Candidate: i, Action: r.action, Target: target, Reason: r.reason,
			Memory: domain.Candidate{Type: c.Type, Content: r.content, Importance: c.Importance, Tags: c.Tags}})
	}
	return out, nil
}

// startConsolidating starts a server whose consolidations ask ex.
func startConsolidating(t *testing.T, ex domain.Extractor) *testserver.Server {
	t.Helper()
	return testserver.StartLogged(t, nil, func(o *app.Options) { o.ConsolidationExtractor = ex })
}

// remember stores memories of the user, in order, and returns their ids.
func remember(s *testserver.Server, uid, typ string, texts ...string) []string {
	s.T().Helper()
	var ids []string
	for _, text := range texts {
		ids = append(ids, s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": typ, "content": text, "importance": 0.5})).Str("id"))
	}
	return ids
}

// consolidated is a consolidation's answer.
type consolidated struct {
	RunID  string `json:"run_id"`
	Merged []struct {
		Kept       string   `json:"kept"`
		Superseded []string `json:"superseded"`
		Reason     string   `json:"reason"`
		Action     string   `json:"action"`
	} `json:"merged"`
	Examined int     `json:"examined"`
	Model    *string `json:"model"`
}

func consolidate(s *testserver.Server, uid string, headers ...string) (consolidated, testserver.Response) {
	s.T().Helper()
	r := s.Must(200, s.Do("POST", "/v1/users/"+uid+"/memories/consolidate", nil, headers...))
	var c consolidated
	if err := json.Unmarshal(r.Body, &c); err != nil {
		s.T().Fatalf("consolidation answer: %v: %s", err, r.Body)
	}
	return c, r
}

// superseded are the user's memory.superseded events, by memory id.
func supersededEvents(s *testserver.Server, uid string) map[string]map[string]any {
	s.T().Helper()
	out := map[string]map[string]any{}
	for _, e := range s.Must(200, s.Do("GET", "/v1/users/"+uid+"/audit?type=memory.superseded", nil)).Items() {
		out[e["stream_id"].(string)] = e
	}
	return out
}

// Exact duplicates (one type, one text once trimmed and case-folded) are
// merged without a model: the oldest is kept, the others are superseded
// by it, with the run's provenance and the caller's request; the
// superseded one leaves every read and keeps its history, and a read as
// of before shows it as it was. A second consolidation finds nothing.
func TestConsolidateExactDuplicates(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "c", "name": "Cleo"})).Str("id")
	ids := remember(s, uid, "semantic", "Cleo likes green tea", "  cleo LIKES green TEA ", "Cleo walks to work")
	other := remember(s, uid, "episodic", "Cleo likes green tea")
	before := time.Now().UTC()

	c, r := consolidate(s, uid, "X-Request-ID", "consolidate-1")
	if r.Header.Get("X-Arq-Position") == "" || c.RunID == "" || c.Model != nil || c.Examined != 4 {
		t.Fatalf("answer: %s %v", r.Body, r.Header)
	}
	if len(c.Merged) != 1 || c.Merged[0].Kept != ids[0] || !slices.Equal(c.Merged[0].Superseded, []string{ids[1]}) ||
		c.Merged[0].Action != "exact" || c.Merged[0].Reason != "same text" {
		t.Fatalf("merged: %s", r.Body)
	}
	s.Must(404, s.Do("GET", "/v1/memories/"+ids[1], nil))
	for _, id := range []string{ids[0], ids[2], other[0]} {
		s.Must(200, s.Do("GET", "/v1/memories/"+id, nil))
	}
	if items := s.Must(200, s.Do("GET", "/v1/users/"+uid+"/memories", nil)).Items(); len(items) != 3 {
		t.Fatalf("listed after the merge: %v", items)
	}
	h := s.Must(200, s.Do("GET", "/v1/memories/"+ids[1]+"/history", nil)).Items()
	if len(h) != 2 || h[1]["event_type"] != "memory.superseded" || h[1]["client_request_id"] != "consolidate-1" || h[1]["actor"] != "anonymous" {
		t.Fatalf("history of the superseded memory: %v", h)
	}
	was := s.Must(200, s.Do("GET", "/v1/memories/"+ids[1]+"?as_of="+url.QueryEscape(before.Format(time.RFC3339Nano)), nil))
	if was.Str("content") != "  cleo LIKES green TEA " {
		t.Fatalf("as of before: %s", was.Body)
	}
	e := supersededEvents(s, uid)["memory-"+ids[1]]
	data, _ := e["data"].(map[string]any)
	prov, _ := data["provenance"].(map[string]any)
	if data["superseded_by"] != ids[0] || data["reason"] != "same text" || prov["run_id"] != c.RunID ||
		prov["extractor"] != "consolidation" || prov["prompt_version"] != "exact-1" || prov["session_id"] != "" {
		t.Fatalf("the superseded event: %v", e)
	}
	if msgs, ok := prov["messages"].([]any); !ok || len(msgs) != 0 {
		t.Fatalf("the provenance's messages: %v", prov)
	}

	again, r2 := consolidate(s, uid)
	if len(again.Merged) != 0 || again.Examined != 3 || again.RunID == c.RunID || r2.Header.Get("X-Arq-Position") == "" {
		t.Fatalf("a second consolidation: %s", r2.Body)
	}
}

// A retry with the same Idempotency-Key answers the first consolidation
// again, without running another.
func TestConsolidateIdempotently(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "i", "name": "Ida"})).Str("id")
	remember(s, uid, "semantic", "Ida reads at night", "Ida reads at night")
	first, _ := consolidate(s, uid, "Idempotency-Key", "once")
	again, r := consolidate(s, uid, "Idempotency-Key", "once")
	if r.Header.Get("Idempotent-Replayed") != "true" || again.RunID != first.RunID || len(again.Merged) != 1 {
		t.Fatalf("replayed: %s %v", r.Body, r.Header)
	}
}

// Near-duplicates go to the extractor: "update" merges the candidate into
// its target (which takes the model's text), "supersede" makes the
// candidate replace its target; "none" changes nothing. Each event
// carries the extractor, model and prompt version.
func TestConsolidateNearDuplicatesWithAModel(t *testing.T) {
	t.Parallel()
	ex := &ruledExtractor{rules: map[string]rule{
		"Alice lives in Paris":   {action: "update", target: "Alice moved to Berlin", content: "Alice lives in Berlin", reason: "she moved"},
		"Bob drinks black tea":   {action: "supersede", target: "Bob drinks tea with milk", content: "Bob drinks black tea now", reason: "changed taste"},
		"Carol plays the violin": {action: "none"},
	}}
	s := startConsolidating(t, ex)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "n", "name": "Nia"})).Str("id")
	ids := remember(s, uid, "semantic", "Alice lives in Paris", "Bob drinks black tea", "Carol plays the violin",
		"Alice moved to Berlin", "Bob drinks tea with milk", "Carol plays violin in an orchestra")

	c, r := consolidate(s, uid)
	if c.Model == nil || *c.Model != "ruled-model-1" || c.Examined != 6 || len(c.Merged) != 2 {
		t.Fatalf("answer: %s", r.Body)
	}
	got := map[string][2]string{}
	for _, m := range c.Merged {
		if len(m.Superseded) != 1 {
			t.Fatalf("merge: %s", r.Body)
		}
		got[m.Action] = [2]string{m.Kept, m.Superseded[0]}
	}
	if got["update"] != [2]string{ids[3], ids[0]} || got["supersede"] != [2]string{ids[1], ids[4]} {
		t.Fatalf("merged: %s", r.Body)
	}
	if m := s.Must(200, s.Do("GET", "/v1/memories/"+ids[3], nil)); m.Str("content") != "Alice lives in Berlin" {
		t.Fatalf("the updated target: %s", m.Body)
	}
	if m := s.Must(200, s.Do("GET", "/v1/memories/"+ids[1], nil)); m.Str("content") != "Bob drinks black tea now" {
		t.Fatalf("the superseding candidate: %s", m.Body)
	}
	for _, id := range []string{ids[0], ids[4]} {
		s.Must(404, s.Do("GET", "/v1/memories/"+id, nil))
	}
	for _, id := range []string{ids[2], ids[5]} {
		if h := s.Must(200, s.Do("GET", "/v1/memories/"+id+"/history", nil)).Items(); len(h) != 1 {
			t.Fatalf("a memory left alone changed: %v", h)
		}
	}
	events := supersededEvents(s, uid)
	for id, by := range map[string]string{ids[0]: ids[3], ids[4]: ids[1]} {
		data, _ := events["memory-"+id]["data"].(map[string]any)
		prov, _ := data["provenance"].(map[string]any)
		if data["superseded_by"] != by || prov["run_id"] != c.RunID || prov["extractor"] != "ruled" || prov["model"] != "ruled-model-1" || prov["prompt_version"] != "ruled-1" {
			t.Fatalf("superseded event of %s: %v", id, events["memory-"+id])
		}
	}
}

// A model's answer the rules refuse (here an update of a memory it was
// not shown) changes nothing, the exact duplicates included: 502.
func TestConsolidateRefusesAMalformedAnswer(t *testing.T) {
	t.Parallel()
	ex := &ruledExtractor{rules: map[string]rule{
		"Dan owns a red bike": {action: "update", target: domain.NewID().String(), content: "Dan owns a bike", reason: "invented"},
	}}
	s := startConsolidating(t, ex)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "d", "name": "Dan"})).Str("id")
	ids := remember(s, uid, "semantic", "Dan owns a red bike", "Dan owns a blue bike", "Dan cooks", "dan cooks")
	isProblem(t, s.Do("POST", "/v1/users/"+uid+"/memories/consolidate", nil), 502, "")
	for _, id := range ids {
		if h := s.Must(200, s.Do("GET", "/v1/memories/"+id+"/history", nil)).Items(); len(h) != 1 {
			t.Fatalf("memory %s changed: %v", id, h)
		}
	}
	if n := ex.calls.Load(); n != 1 {
		t.Fatalf("decisions asked: %d", n)
	}
}

// Another tenant's key finds no such user (404), a read-only key may not
// consolidate (403); the tenant's own key may.
func TestConsolidateKeepsToTheTenant(t *testing.T) {
	t.Parallel()
	s := startTenanted(t, nil)
	newTenant(s, "acme")
	newTenant(s, "other")
	mine, _ := newKey(s, "acme", "", "read", "write")
	theirs, _ := newKey(s, "other", "", "read", "write")
	readOnly, _ := newKey(s, "acme", "", "read")
	uid := as{s, mine}.must(201, "POST", "/v1/users", map[string]any{"external_id": "t", "name": "Tess"}).Str("id")
	for range 2 {
		as{s, mine}.must(201, "POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "Tess sails"})
	}
	path := "/v1/users/" + uid + "/memories/consolidate"
	isProblem(t, as{s, theirs}.do("POST", path, nil), 404, "")
	isProblem(t, as{s, readOnly}.do("POST", path, nil), 403, "")
	if r := (as{s, mine}).must(200, "POST", path, nil); len(r.JSON["merged"].([]any)) != 1 {
		t.Fatalf("the tenant's own consolidation: %s", r.Body)
	}
}

// A memory changed while the model decides makes the consolidation decide
// afresh, from the memory as changed: the change is kept, and the merge
// recorded after it. One that keeps changing gives up (503 busy),
// changing nothing.
func TestConsolidateDecidesAfreshOnAConcurrentChange(t *testing.T) {
	t.Parallel()
	ex := &ruledExtractor{rules: map[string]rule{
		"Eve runs on Sundays": {action: "update", target: "Eve runs every Sunday morning", content: "Eve runs on Sunday mornings", reason: "same habit"},
	}}
	s := startConsolidating(t, ex)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "e", "name": "Eve"})).Str("id")
	ids := remember(s, uid, "semantic", "Eve runs on Sundays", "Eve runs every Sunday morning")
	var patched atomic.Int32
	patch := func(id string, importance float64) {
		body, _ := json.Marshal(map[string]any{"importance": importance})
		req, err := http.NewRequest("PATCH", s.Base+"/v1/memories/"+id, bytes.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return
		}
		resp.Body.Close()
		if resp.StatusCode == 200 {
			patched.Add(1)
		}
	}
	target := ids[1]
	once := func(call int) {
		if call == 1 {
			patch(target, 0.9)
		}
	}
	ex.hook.Store(&once)
	c, r := consolidate(s, uid)
	if ex.calls.Load() != 2 || patched.Load() != 1 || len(c.Merged) != 1 || c.Merged[0].Kept != ids[1] {
		t.Fatalf("decisions %d, patches %d: %s", ex.calls.Load(), patched.Load(), r.Body)
	}
	h := s.Must(200, s.Do("GET", "/v1/memories/"+ids[1]+"/history", nil)).Items()
	if len(h) != 3 || h[1]["event_type"] != "memory.updated" || h[2]["event_type"] != "memory.updated" {
		t.Fatalf("history of the target: %v", h)
	}
	s.Must(404, s.Do("GET", "/v1/memories/"+ids[0], nil))

	// Another user's two of the same kind, which a PATCH on every
	// decision keeps from merging.
	other := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "f", "name": "Fay"})).Str("id")
	more := remember(s, other, "semantic", "Eve runs on Sundays", "Eve runs every Sunday morning")
	ex.calls.Store(0)
	always := func(call int) { patch(more[1], 0.1*float64(call)) }
	ex.hook.Store(&always)
	isProblem(t, s.Do("POST", "/v1/users/"+other+"/memories/consolidate", nil), 503, "")
	if ex.calls.Load() != 3 {
		t.Fatalf("decisions asked: %d", ex.calls.Load())
	}
	s.Must(200, s.Do("GET", "/v1/memories/"+more[0], nil))
	if h := s.Must(200, s.Do("GET", "/v1/memories/"+more[0]+"/history", nil)).Items(); len(h) != 1 {
		t.Fatalf("the candidate changed: %v", h)
	}
}
