package fakellm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/embeddings"
	"github.com/arq-memory/arq/extract"
	"github.com/arq-memory/arq/internal/fakellm"
	"github.com/arq-memory/arq/summarize"
)

func post(t *testing.T, url string, body any) (int, map[string]any) {
	t.Helper()
	raw, _ := json.Marshal(body)
	resp, err := http.Post(url, "application/json", bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func cosine(a, b []float32) float64 {
	var dot float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
	}
	return dot
}

func TestEmbeddingsAreNormalisedAndShareWords(t *testing.T) {
	s := fakellm.New(t, fakellm.Dimensions(32))
	e := embeddings.OpenAI{URL: s.URL, Model: "fake-embed"}
	texts := []string{"User's dog is Rex", "the DOG Rex!", "User likes green tea", "User's dog is Rex"}
	vs, err := e.Embed(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vs {
		if len(v) != 32 || math.Abs(cosine(v, v)-1) > 1e-5 {
			t.Errorf("vector %d: %d dimensions, norm² %v", i, len(v), cosine(v, v))
		}
	}
	if cosine(vs[0], vs[3]) < 0.9999 {
		t.Errorf("one text, two vectors")
	}
	if near, far := cosine(vs[0], vs[1]), cosine(vs[1], vs[2]); near <= far {
		t.Errorf("texts sharing words %v, not sharing %v", near, far)
	}
	if s.Calls(fakellm.StepEmbeddings) != 1 {
		t.Errorf("%d calls", s.Calls(fakellm.StepEmbeddings))
	}
}

func TestAChatWithoutSchemaGetsText(t *testing.T) {
	s := fakellm.New(t)
	got, err := summarize.Chat{URL: s.URL, Model: "fake"}.Summarize(context.Background(), "", []domain.TranscriptLine{{Role: "user", Content: "hi"}})
	if err != nil || got != fakellm.TextAnswer {
		t.Errorf("got %q, %v", got, err)
	}
	if req, ok := s.LastChat(fakellm.StepChat); !ok || req.UserMessage() != "user: hi\n" {
		t.Errorf("recorded %+v, %v", req, ok)
	}
}

func TestScriptsAnswerInOrderUntilUsed(t *testing.T) {
	s := fakellm.New(t)
	s.Script(fakellm.StepEmbeddings, 2, fakellm.Reply{Status: http.StatusTooManyRequests})
	s.Script("", 1, fakellm.Reply{Status: http.StatusTeapot})
	body := map[string]any{"model": "m", "input": "x"}
	for i, want := range []int{429, 429, 418, 200, 200} {
		if got, _ := post(t, s.URL+"/embeddings", body); got != want {
			t.Errorf("call %d: %d, want %d", i, got, want)
		}
	}
	s.Script("", fakellm.Always, fakellm.Reply{Body: `{"choices": []}`})
	for range 3 {
		if _, out := post(t, s.URL+"/chat/completions", map[string]any{"model": "m", "messages": []any{}}); len(out["choices"].([]any)) != 0 {
			t.Errorf("got %v", out)
		}
	}
	if s.Calls(fakellm.StepEmbeddings) != 5 || s.Calls(fakellm.StepChat) != 3 {
		t.Errorf("calls %d, %d", s.Calls(fakellm.StepEmbeddings), s.Calls(fakellm.StepChat))
	}
	s.Reset()
	if s.Calls(fakellm.StepChat) != 0 || s.LastRequest(fakellm.StepChat) != nil {
		t.Error("Reset kept the record")
	}
	if got, _ := post(t, s.URL+"/chat/completions", map[string]any{"model": "m", "messages": []any{map[string]any{"role": "user", "content": "hi"}}}); got != 200 {
		t.Errorf("after Reset: %d", got)
	}
}

func TestCountsAreRaceFree(t *testing.T) {
	s := fakellm.New(t)
	e := embeddings.OpenAI{URL: s.URL, Model: "m"}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := e.Embed(context.Background(), []string{"a b"}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := s.Calls(fakellm.StepEmbeddings); got != 20 {
		t.Errorf("%d calls, want 20", got)
	}
}

// A schema OpenAI's strict mode would refuse is refused, so that no test
// passes with a schema the real endpoint rejects.
func TestLooseSchemasAreRefused(t *testing.T) {
	s := fakellm.New(t)
	for name, schema := range map[string]string{
		"extra properties allowed": `{"type": "object", "properties": {"candidates": {"type": "array", "items": {"type": "string"}}}, "required": ["candidates"]}`,
		"optional property":        `{"type": "object", "properties": {"candidates": {"type": "array"}, "x": {"type": "string"}}, "required": ["candidates"], "additionalProperties": false}`,
		"loose item":               `{"type": "object", "properties": {"candidates": {"type": "array", "items": {"type": "object", "properties": {}}}}, "required": ["candidates"], "additionalProperties": false}`,
	} {
		status, out := post(t, s.URL+"/chat/completions", map[string]any{
			"model":    "m",
			"messages": []any{map[string]any{"role": "user", "content": "user: My name is Ann."}},
			"response_format": map[string]any{"type": "json_schema", "json_schema": map[string]any{
				"name": fakellm.StepCandidates, "strict": true, "schema": json.RawMessage(schema),
			}},
		})
		if msg, _ := json.Marshal(out["error"]); status != http.StatusBadRequest || !strings.Contains(string(msg), "schema") {
			t.Errorf("%s: %d %s", name, status, msg)
		}
	}
}

// The fake checks its answers against the schema sent: a client whose
// schema differs from the fake's format hears so.
func TestAnswersMustFitTheSchemaSent(t *testing.T) {
	s := fakellm.New(t)
	status, out := post(t, s.URL+"/chat/completions", map[string]any{
		"model":    "m",
		"messages": []any{map[string]any{"role": "user", "content": "user: My name is Ann."}},
		"response_format": map[string]any{"type": "json_schema", "json_schema": map[string]any{
			"name": fakellm.StepCandidates, "strict": true, "schema": json.RawMessage(
				`{"type": "object", "properties": {"candidates": {"type": "array", "items": {"type": "integer"}}}, "required": ["candidates"], "additionalProperties": false}`),
		}},
	})
	if status != http.StatusInternalServerError {
		t.Errorf("%d %v", status, out)
	}
}

func TestEachKnownMemoryChangesOnce(t *testing.T) {
	s := fakellm.New(t)
	c := extract.Chat{URL: s.URL, ModelName: "m"}
	cands := []domain.Candidate{
		{Type: "semantic", Content: "User's dog is Rex", Importance: 0.7, Tags: []string{"dog"}},
		{Type: "semantic", Content: "User's dog is Bo", Importance: 0.7, Tags: []string{"dog"}},
	}
	dog := []domain.KnownMemory{{ID: "mem-dog", Type: "semantic", Content: "User's dog is Max"}}
	got, err := c.Decide(context.Background(), cands, [][]domain.KnownMemory{dog, dog})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Action != domain.ActionSupersede || got[1].Action != domain.ActionAdd {
		t.Errorf("got %+v", got)
	}
}
