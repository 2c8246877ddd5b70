package e2e

import (
	"encoding/json"
	"github.com/arq-memory/arq/internal/testserver"
	"math"
	"slices"
	"testing"
)

// fusionFixture is a user with four memories: three with embeddings, one
// (D, the most important) without. Only C shares words with the query
// "pollinator hobby"; A's vector is nearest to the query's.
type fusionFixture struct {
	s              *testserver.Server
	uid, sid       string
	a, b, c, d     string
	query          string
	queryEmbedding []float64
	contentOf      map[string]string
}

func newFusionFixture(t *testing.T) *fusionFixture {
	s := testserver.Start(t, map[string]string{"ARQ_EMBEDDING_DIM": "3"})
	f := &fusionFixture{s: s, query: "pollinator hobby", queryEmbedding: []float64{1, 0.05, 0}, contentOf: map[string]string{}}
	f.uid = s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "v", "name": "V"})).Str("id")
	f.sid = s.Must(201, s.Do("POST", "/v1/users/"+f.uid+"/sessions", map[string]any{})).Str("id")
	mem := func(content string, importance float64, embedding []float64) string {
		body := map[string]any{"type": "semantic", "content": content, "importance": importance}
		if embedding != nil {
			body["embedding"] = embedding
		}
		r := s.Must(201, s.Do("POST", "/v1/users/"+f.uid+"/memories", body))
		if want := float64(len(embedding)); r.Num("embedding_dim") != want {
			t.Fatalf("embedding_dim %v, want %v: %s", r.Num("embedding_dim"), want, r.Body)
		}
		f.contentOf[r.Str("id")] = content
		return r.Str("id")
	}
	f.a = mem("Ada keeps bees on the roof", 0.3, []float64{1, 0, 0})
	f.b = mem("Ada collects jazz records", 0.2, []float64{0, 1, 0})
	f.c = mem("Ada writes pollinator hobby notes", 0.5, []float64{0.5, 0, 0.866})
	f.d = mem("Ada once visited Lisbon", 0.9, nil)
	return f
}

func (f *fusionFixture) search(t *testing.T, body map[string]any) (ids []string, scores []float64) {
	t.Helper()
	for _, it := range f.s.Must(200, f.s.Do("POST", "/v1/users/"+f.uid+"/memories/search", body)).Items() {
		ids = append(ids, it["id"].(string))
		scores = append(scores, it["score"].(float64))
	}
	return ids, scores
}

func (f *fusionFixture) window(t *testing.T, method, query string, body map[string]any) []string {
	t.Helper()
	var r testserver.Response
	if method == "GET" {
		r = f.s.Must(200, f.s.Do("GET", "/v1/sessions/"+f.sid+"/context?"+query, nil))
	} else {
		r = f.s.Must(200, f.s.Do("POST", "/v1/sessions/"+f.sid+"/context", body))
	}
	var w window
	if err := json.Unmarshal(r.Body, &w); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range w.Memories {
		ids = append(ids, m.ID)
	}
	return ids
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// With a query embedding, a memory that shares no word with the query but
// whose vector is nearest to it ranks above unrelated ones, and the score
// fuses the full-text and the vector rankings: 1/(60 + rank) in each.
func TestEmbeddingRankingFusesVectorAndFullText(t *testing.T) {
	t.Parallel()
	f := newFusionFixture(t)
	// Vector ranks: A 1, C 2, B 3 (D has none). Full-text ranks: C 1.
	ids, scores := f.search(t, map[string]any{"query": f.query, "embedding": f.queryEmbedding})
	if !slices.Equal(ids, []string{f.c, f.a, f.b}) {
		t.Fatalf("search with an embedding: %v, want C, A, B (%v)", ids, f.contentOf)
	}
	if !near(scores[0], 1.0/61+1.0/62) || !near(scores[1], 1.0/61) || !near(scores[2], 1.0/63) {
		t.Fatalf("fused scores %v, want 1/61+1/62, 1/61, 1/63", scores)
	}
	// An embedding alone searches by vector.
	if ids, _ := f.search(t, map[string]any{"embedding": []float64{0, 1, 0}}); len(ids) != 3 || ids[0] != f.b {
		t.Fatalf("search by embedding alone: %v", ids)
	}

	// In a context window, relevance is the fusion relative to the best
	// (C: 1, A: 61/123 of it, B: ...), weighed with importance and recency.
	got := f.window(t, "POST", "", map[string]any{"query": f.query, "embedding": f.queryEmbedding})
	if !slices.Equal(got, []string{f.c, f.a, f.b, f.d}) {
		t.Fatalf("window with an embedding: %v, want C, A, B, D", got)
	}

	// A new content without a new embedding drops the old one: B no
	// longer matches by vector.
	r := f.s.Must(200, f.s.Do("PATCH", "/v1/memories/"+f.b, map[string]any{"content": "Ada collects vinyl"}))
	if r.Num("embedding_dim") != 0 {
		t.Fatalf("embedding kept after a new content: %s", r.Body)
	}
	if ids, _ := f.search(t, map[string]any{"query": f.query, "embedding": f.queryEmbedding}); !slices.Equal(ids, []string{f.c, f.a}) {
		t.Fatalf("search after B lost its embedding: %v", ids)
	}
}

// Without an embedding in the request, ranking is full text as before:
// the search finds the text match alone with its text rank, and the window
// orders the rest by importance.
func TestWithoutEmbeddingRankingIsFullText(t *testing.T) {
	t.Parallel()
	f := newFusionFixture(t)
	ids, scores := f.search(t, map[string]any{"query": f.query})
	if !slices.Equal(ids, []string{f.c}) || near(scores[0], 1.0/61) || near(scores[0], 1.0/61+1.0/62) {
		t.Fatalf("full-text search: %v %v", ids, scores)
	}
	want := []string{f.c, f.d, f.a, f.b}
	if got := f.window(t, "GET", "query=pollinator+hobby", nil); !slices.Equal(got, want) {
		t.Fatalf("GET window: %v, want C, D, A, B", got)
	}
	if got := f.window(t, "POST", "", map[string]any{"query": f.query}); !slices.Equal(got, want) {
		t.Fatalf("POST window without an embedding: %v, want C, D, A, B", got)
	}
}

// Wrong embeddings are refused with 422 naming the field, and nothing is
// appended.
func TestBadEmbeddingsAreRefused(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, map[string]string{"ARQ_EMBEDDING_DIM": "3"})
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "b", "name": "B"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	events := eventCount(t, s)

	for _, bad := range []string{`[1, 2]`, `[]`, `["a", 1, 2]`, `"1,2,3"`, `[0, 0, 0]`, `[1, 2, 1e39]`, `{"x": 1}`} {
		isProblem(t, s.Do("POST", "/v1/users/"+uid+"/memories", `{"type": "semantic", "content": "x", "embedding": `+bad+`}`), 422, "embedding")
		isProblem(t, s.Do("POST", "/v1/sessions/"+sid+"/messages", `{"role": "user", "content": "x", "embedding": `+bad+`}`), 422, "embedding")
		isProblem(t, s.Do("POST", "/v1/sessions/"+sid+"/messages", `{"messages": [{"role": "user", "content": "ok", "embedding": [1, 2, 3]},
			{"role": "user", "content": "x", "embedding": `+bad+`}]}`), 422, "messages[1].embedding")
		isProblem(t, s.Do("POST", "/v1/users/"+uid+"/memories/search", `{"query": "x", "embedding": `+bad+`}`), 422, "embedding")
		isProblem(t, s.Do("POST", "/v1/sessions/"+sid+"/context", `{"query": "x", "embedding": `+bad+`}`), 422, "embedding")
		isProblem(t, s.Do("POST", "/v1/sessions/"+sid+"/context/snapshots", `{"embedding": `+bad+`}`), 422, "embedding")
	}
	if n := eventCount(t, s); n != events {
		t.Fatalf("refused requests appended %d events", n-events)
	}
	// The same requests with a good embedding pass.
	mid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", `{"type": "semantic", "content": "x", "embedding": [1, 2, 3]}`)).Str("id")
	s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", `{"role": "user", "content": "x", "embedding": [1, 2, 3]}`))
	isProblem(t, s.Do("PATCH", "/v1/memories/"+mid, `{"embedding": [1]}`), 422, "embedding")
}

// Without ARQ_EMBEDDING_DIM any length is accepted, and an embedding of
// another length than the query's never matches it.
func TestEmbeddingsOfAnotherLengthNeverMatch(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "l", "name": "L"})).Str("id")
	two := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "alpha note", "embedding": []float64{1, 0}})).Str("id")
	three := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "beta note", "embedding": []float64{1, 0, 0}})).Str("id")
	for _, c := range []struct {
		embedding []float64
		want      []string
	}{{[]float64{1, 0, 0}, []string{three}}, {[]float64{0.5, 0.5}, []string{two}}, {[]float64{1, 0, 0, 0}, nil}} {
		var got []string
		for _, it := range s.Must(200, s.Do("POST", "/v1/users/"+uid+"/memories/search", map[string]any{"embedding": c.embedding})).Items() {
			got = append(got, it["id"].(string))
		}
		if !slices.Equal(got, c.want) {
			t.Fatalf("search by %v: %v, want %v", c.embedding, got, c.want)
		}
	}
}
