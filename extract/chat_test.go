package extract_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/extract"
	"github.com/arq-memory/arq/internal/fakellm"
)

// Chat is an Extractor.
var _ domain.Extractor = extract.Chat{}

func newChat(t *testing.T) (extract.Chat, *fakellm.Server) {
	t.Helper()
	s := fakellm.New(t)
	return extract.Chat{URL: s.URL, ModelName: "fake-model", APIKey: "k", Client: &http.Client{}}, s
}

func TestNames(t *testing.T) {
	c, _ := newChat(t)
	if c.Name() != "chat" || c.Model() != "fake-model" || c.PromptVersion() == "" {
		t.Errorf("name %q, model %q, prompt version %q", c.Name(), c.Model(), c.PromptVersion())
	}
}

func TestExtractProposesTheUsersFacts(t *testing.T) {
	c, s := newChat(t)
	lines := []domain.TranscriptLine{
		{Role: "user", Content: "Hello. My favourite colour is green. I like tea."},
		{Role: "assistant", Content: "My name is Bot. I like tea too."},
	}
	got, err := c.Extract(context.Background(), lines)
	if err != nil {
		t.Fatal(err)
	}
	want := []domain.Candidate{
		{Type: "semantic", Content: "User's favourite colour is green", Importance: 0.7, Tags: []string{"favourite-colour"}},
		{Type: "semantic", Content: "User likes tea", Importance: 0.5, Tags: []string{"preference"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("candidates\n got %+v\nwant %+v", got, want)
	}

	req, ok := s.LastChat(fakellm.StepCandidates)
	if !ok {
		t.Fatal("no candidates request recorded")
	}
	if req.Model != "fake-model" || req.Temperature == nil || *req.Temperature != 0 {
		t.Errorf("model %q, temperature %v", req.Model, req.Temperature)
	}
	if f := req.ResponseFormat; f == nil || f.Type != "json_schema" || f.JSONSchema == nil || !f.JSONSchema.Strict {
		t.Errorf("response_format %+v", f)
	}
	if len(req.Messages) != 2 || req.Messages[0].Role != "system" {
		t.Fatalf("messages %+v", req.Messages)
	}
	wantUser := "user: Hello. My favourite colour is green. I like tea.\nassistant: My name is Bot. I like tea too.\n"
	if req.Messages[1] != (fakellm.Message{Role: "user", Content: wantUser}) {
		t.Errorf("user message %q", req.Messages[1].Content)
	}
}

func TestExtractNothingWorthKeeping(t *testing.T) {
	c, s := newChat(t)
	got, err := c.Extract(context.Background(), []domain.TranscriptLine{{Role: "user", Content: "What time is it?"}})
	if err != nil || len(got) != 0 {
		t.Errorf("got %v, %v; want no candidates", got, err)
	}
	if _, err := c.Extract(context.Background(), nil); err != nil || s.Calls(fakellm.StepCandidates) != 1 {
		t.Errorf("no lines: %v, %d calls; want no call", err, s.Calls(fakellm.StepCandidates))
	}
}

func TestDecideMapsAliasesToIDs(t *testing.T) {
	c, s := newChat(t)
	cands := []domain.Candidate{
		{Type: "semantic", Content: "User's name is Ann", Importance: 0.7, Tags: []string{"name"}},
		{Type: "semantic", Content: "User's dog is Rex", Importance: 0.7, Tags: []string{"dog"}},
		{Type: "semantic", Content: "User's sister is also Bea", Importance: 0.7, Tags: []string{"sister"}},
		{Type: "semantic", Content: "User likes tea", Importance: 0.5, Tags: []string{"preference"}},
	}
	dog := domain.KnownMemory{ID: "mem-dog", Version: 1, Type: "semantic", Content: "User's dog is Max", Importance: 0.7}
	similar := [][]domain.KnownMemory{
		{{ID: "mem-name", Version: 3, Type: "semantic", Content: "User's name is Ann", Importance: 0.9, Tags: []string{"name"}}},
		{dog},
		{dog, {ID: "mem-sister", Version: 2, Type: "semantic", Content: "User's sister is Ann", Importance: 0.6}},
		nil,
	}
	got, err := c.Decide(context.Background(), cands, similar)
	if err != nil {
		t.Fatal(err)
	}
	want := []domain.Proposal{
		{Candidate: 0, Action: domain.ActionNone, Target: "mem-name", Memory: cands[0], Reason: "already known"},
		{Candidate: 1, Action: domain.ActionSupersede, Target: "mem-dog", Memory: cands[1], Reason: "dog changed from Max to Rex"},
		{Candidate: 2, Action: domain.ActionUpdate, Target: "mem-sister", Memory: domain.Candidate{
			Type: "semantic", Content: "User's sister is Ann and Bea", Importance: 0.7, Tags: []string{"sister"},
		}, Reason: "sister has one more value"},
		{Candidate: 3, Action: domain.ActionAdd, Memory: cands[3], Reason: "new fact"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("proposals\n got %+v\nwant %+v", got, want)
	}

	// The model saw aliases, one per memory across the run, and no id.
	req, _ := s.LastChat(fakellm.StepDecisions)
	user := req.UserMessage()
	if strings.Contains(user, "mem-") {
		t.Errorf("the request shows memory ids: %s", user)
	}
	var sent extract.DecideRequest
	if err := json.Unmarshal([]byte(user), &sent); err != nil {
		t.Fatal(err)
	}
	var aliases [][]string
	for _, c := range sent.Candidates {
		var a []string
		for _, k := range c.Known {
			a = append(a, k.Alias)
		}
		aliases = append(aliases, a)
	}
	if want := [][]string{{"m1"}, {"m2"}, {"m2", "m3"}, nil}; !reflect.DeepEqual(aliases, want) {
		t.Errorf("aliases %v, want %v", aliases, want)
	}
}

func TestDecideNothingWithoutCandidates(t *testing.T) {
	c, s := newChat(t)
	if got, err := c.Decide(context.Background(), nil, nil); err != nil || got != nil || s.Calls(fakellm.StepDecisions) != 0 {
		t.Errorf("got %v, %v after %d calls; want nothing and no call", got, err, s.Calls(fakellm.StepDecisions))
	}
}

// completion is a chat completion body with one choice.
func completion(content, finish string) string {
	b, _ := json.Marshal(map[string]any{"choices": []any{map[string]any{
		"message": map[string]any{"role": "assistant", "content": content}, "finish_reason": finish,
	}}})
	return string(b)
}

func TestExtractRefusesMalformedAnswers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply fakellm.Reply
		want  string
	}{
		{"not JSON", fakellm.Reply{Content: `{"candidates": [`}, "unexpected EOF"},
		{"unknown field", fakellm.Reply{Content: `{"candidates": [], "note": "x"}`}, `unknown field "note"`},
		{"unknown nested field", fakellm.Reply{Content: `{"candidates": [{"type": "semantic", "content": "x", "importance": 0.5, "tags": [], "why": "?"}]}`}, `unknown field "why"`},
		{"no candidates", fakellm.Reply{Content: `{}`}, "candidates is missing"},
		{"missing field", fakellm.Reply{Content: `{"candidates": [{"type": "semantic", "content": "x", "importance": 0.5}]}`}, "candidates[0].tags is missing"},
		{"wrong type", fakellm.Reply{Content: `{"candidates": [{"type": "semantic", "content": "x", "importance": "high", "tags": []}]}`}, "cannot unmarshal string"},
		{"text after", fakellm.Reply{Content: `{"candidates": []} {}`}, "text after the JSON value"},
		{"bad memory type", fakellm.Reply{Content: `{"candidates": [{"type": "feeling", "content": "x", "importance": 0.5, "tags": []}]}`}, "candidates[0].type"},
		{"importance out of range", fakellm.Reply{Content: `{"candidates": [{"type": "semantic", "content": "x", "importance": 2, "tags": []}]}`}, "candidates[0].importance"},
		{"empty content", fakellm.Reply{Body: completion("", "stop")}, "the answer is empty"},
		{"cut short", fakellm.Reply{Body: completion(`{"candidates": [`, "length")}, "token limit"},
		{"no choices", fakellm.Reply{Body: `{"choices": []}`}, "no choices"},
		{"not a completion", fakellm.Reply{Body: `[1, 2]`}, "decode chat answer"},
		{"refusal", fakellm.Reply{Refusal: "I cannot help with that."}, "the model refused: I cannot help with that."},
		{"server error", fakellm.Reply{Status: http.StatusInternalServerError}, "500 Internal Server Error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, s := newChat(t)
			s.Script(fakellm.StepCandidates, 1, tc.reply)
			lines := []domain.TranscriptLine{{Role: "user", Content: "My name is Ann."}}
			got, err := c.Extract(context.Background(), lines)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "memory candidates: ") {
				t.Fatalf("got %v, %v; want an error with %q", got, err, tc.want)
			}
			// The script was for one call: the next is answered.
			if got, err := c.Extract(context.Background(), lines); err != nil || len(got) != 1 {
				t.Errorf("the next call: %v, %v", got, err)
			}
		})
	}
}

func TestDecideRefusesMalformedAnswers(t *testing.T) {
	memory := `{"type": "semantic", "content": "User's dog is Rex", "importance": 0.7, "tags": ["dog"]}`
	decisions := func(ds ...string) string { return `{"decisions": [` + strings.Join(ds, ", ") + `]}` }
	decision := func(cand, action, target string) string {
		return `{"candidate": ` + cand + `, "action": "` + action + `", "target": "` + target + `", "memory": ` + memory + `, "reason": "r"}`
	}
	for _, tc := range []struct {
		name  string
		reply fakellm.Reply
		want  string
	}{
		{"invented alias", fakellm.Reply{Content: decisions(decision("0", "supersede", "m9"))}, `decisions[0].target "m9" is not an alias that was shown`},
		{"an id instead of an alias", fakellm.Reply{Content: decisions(decision("0", "supersede", "mem-dog"))}, "is not an alias"},
		{"another candidate's memory", fakellm.Reply{Content: decisions(decision("0", "supersede", "m2"))}, "decisions[0].target"},
		{"unknown action", fakellm.Reply{Content: decisions(decision("0", "delete", ""))}, "decisions[0].action"},
		{"a candidate twice", fakellm.Reply{Content: decisions(decision("0", "add", ""), decision("0", "none", ""))}, "decisions[1].candidate"},
		{"no such candidate", fakellm.Reply{Content: decisions(decision("5", "add", ""))}, "decisions[0].candidate"},
		{"candidate not a number", fakellm.Reply{Content: decisions(decision(`"0"`, "add", ""))}, "cannot unmarshal string"},
		{"missing memory", fakellm.Reply{Content: `{"decisions": [{"candidate": 0, "action": "add", "target": "", "reason": "r"}]}`}, "decisions[0].memory is missing"},
		{"missing reason", fakellm.Reply{Content: `{"decisions": [{"candidate": 0, "action": "add", "target": "", "memory": ` + memory + `}]}`}, "decisions[0].reason is missing"},
		{"memory without tags", fakellm.Reply{Content: decisions(strings.Replace(decision("0", "add", ""), `, "tags": ["dog"]`, "", 1))}, "decisions[0].memory.tags is missing"},
		{"empty memory", fakellm.Reply{Content: decisions(strings.Replace(decision("0", "add", ""), "User's dog is Rex", " ", 1))}, "decisions[0].memory.content"},
		{"unknown field", fakellm.Reply{Content: `{"decisions": [], "thoughts": "hm"}`}, `unknown field "thoughts"`},
		{"no decisions", fakellm.Reply{Content: `{"decision": []}`}, `unknown field "decision"`},
		{"null decisions", fakellm.Reply{Content: `{"decisions": null}`}, "decisions is missing"},
		{"not JSON", fakellm.Reply{Content: `decisions: none`}, "invalid character"},
		{"refusal", fakellm.Reply{Refusal: "No."}, "the model refused: No."},
		{"server error", fakellm.Reply{Status: http.StatusBadGateway}, "502 Bad Gateway"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, s := newChat(t)
			s.Script(fakellm.StepDecisions, 1, tc.reply)
			cands := []domain.Candidate{
				{Type: "semantic", Content: "User's dog is Rex", Importance: 0.7, Tags: []string{"dog"}},
				{Type: "semantic", Content: "User's cat is Tom", Importance: 0.7, Tags: []string{"cat"}},
			}
			similar := [][]domain.KnownMemory{
				{{ID: "mem-dog", Version: 1, Type: "semantic", Content: "User's dog is Max"}},
				{{ID: "mem-cat", Version: 1, Type: "semantic", Content: "User's cat is Kit"}},
			}
			got, err := c.Decide(context.Background(), cands, similar)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "memory decisions: ") {
				t.Fatalf("got %+v, %v; want an error with %q", got, err, tc.want)
			}
			if got, err := c.Decide(context.Background(), cands, similar); err != nil || len(got) != 2 {
				t.Errorf("the next call: %+v, %v", got, err)
			}
		})
	}
}

func TestDeadlineCutsASlowAnswer(t *testing.T) {
	c, s := newChat(t)
	s.Script("", fakellm.Always, fakellm.Reply{Delay: time.Hour})
	withDeadline := func(call func(ctx context.Context) error) error {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		return call(ctx)
	}
	err := withDeadline(func(ctx context.Context) error {
		_, err := c.Extract(ctx, []domain.TranscriptLine{{Role: "user", Content: "My name is Ann."}})
		return err
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("extract: %v, want the deadline", err)
	}
	err = withDeadline(func(ctx context.Context) error {
		_, err := c.Decide(ctx, []domain.Candidate{{Type: "semantic", Content: "User's name is Ann", Importance: 0.7, Tags: []string{}}}, nil)
		return err
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("decide: %v, want the deadline", err)
	}
}

func TestDecideRefusesMoreKnownListsThanCandidates(t *testing.T) {
	c, s := newChat(t)
	_, err := c.Decide(context.Background(), []domain.Candidate{{Type: "semantic", Content: "x", Tags: []string{}}}, make([][]domain.KnownMemory, 2))
	if err == nil || s.Calls(fakellm.StepDecisions) != 0 {
		t.Errorf("got %v after %d calls, want an error and no call", err, s.Calls(fakellm.StepDecisions))
	}
}
