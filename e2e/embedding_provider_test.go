package e2e

import (
	"encoding/json"
	"github.com/arq-memory/arq/app"
	"github.com/arq-memory/arq/internal/testserver"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

// fakeEmbeddings is an OpenAI-compatible /embeddings endpoint: each text
// gets (bee words, music words, 0.1). It fails while fail is set.
func fakeEmbeddings(t *testing.T, fail *atomic.Bool, calls *atomic.Int64) *httptest.Server {
	axes := map[string]int{"bees": 0, "honey": 0, "hive": 0, "pollen": 0, "jazz": 1, "music": 1, "records": 1}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if fail != nil && fail.Load() {
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
			return
		}
		var req struct {
			Model string   `json:"model"`
			Input []string `json:"input"`
		}
		if r.URL.Path != "/v1/embeddings" || r.Header.Get("Authorization") != "Bearer sk-emb" ||
			json.NewDecoder(r.Body).Decode(&req) != nil || req.Model != "tiny-embed" || len(req.Input) == 0 {
			http.Error(w, "wrong request", http.StatusBadRequest)
			return
		}
		var data []map[string]any
		for i, text := range req.Input {
			v := []float64{0, 0, 0.1}
			for _, w := range strings.Fields(strings.ToLower(text)) {
				if a, ok := axes[strings.Trim(w, ".,?!")]; ok {
					v[a]++
				}
			}
			// Answered in reverse, as the index allows.
			data = append([]map[string]any{{"object": "embedding", "index": i, "embedding": v}}, data...)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": data, "model": req.Model})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func providerEnv(url string) map[string]string {
	return map[string]string{"ARQ_EMBEDDING_DIM": "3", "ARQ_EMBEDDINGS_URL": url + "/v1", "ARQ_EMBEDDINGS_MODEL": "tiny-embed", "ARQ_EMBEDDINGS_API_KEY": "sk-emb"}
}

// eventEmbedding is the embedding in the data of a stream's first event.
func eventEmbedding(t *testing.T, s *testserver.Server, stream string) []float64 {
	t.Helper()
	items := s.Must(200, s.Do("GET", "/v1/events?stream="+stream, nil)).Items()
	if len(items) == 0 {
		t.Fatalf("no events in %s", stream)
	}
	raw, _ := items[0]["data"].(map[string]any)["embedding"].([]any)
	var out []float64
	for _, x := range raw {
		out = append(out, x.(float64))
	}
	return out
}

// A configured provider fills in the embeddings clients leave out, in the
// events themselves, and embeds a text query, so that a search or a
// context window ranks by vector with text alone.
func TestEmbeddingProviderFillsIn(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	fake := fakeEmbeddings(t, nil, &calls)
	s := testserver.Start(t, providerEnv(fake.URL))
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "p", "name": "P"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")

	bees := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "Ada keeps bees on the roof"}))
	if bees.Num("embedding_dim") != 3 {
		t.Fatalf("stored memory without an embedding: %s", bees.Body)
	}
	if got := eventEmbedding(t, s, "memory-"+bees.Str("id")); !slices.Equal(got, []float64{1, 0, 0.1}) {
		t.Fatalf("embedding in the memory.stored event: %v", got)
	}
	jazz := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "Ada collects jazz records"})).Str("id")
	// A client's embedding is kept as given.
	own := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "Ada likes honey", "embedding": []float64{0, 0, 1}})).Str("id")
	if got := eventEmbedding(t, s, "memory-"+own); !slices.Equal(got, []float64{0, 0, 1}) {
		t.Fatalf("client's embedding replaced: %v", got)
	}

	// "hive" is in no memory's text; the provider's vector finds the bees.
	items := s.Must(200, s.Do("POST", "/v1/users/"+uid+"/memories/search", map[string]any{"query": "hive"})).Items()
	if len(items) == 0 || items[0]["id"] != bees.Str("id") || !near(items[0]["score"].(float64), 1.0/61) {
		t.Fatalf("search for 'hive': %v", items)
	}

	// Messages get one too, in one request for a batch; without a query the
	// latest user message's embedding ranks the window's memories.
	before := calls.Load()
	r := s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"messages": []map[string]any{
		{"role": "assistant", "content": "Tell me about your music."}, {"role": "user", "content": "Where should the new hive go?"}}}))
	if calls.Load() != before+1 {
		t.Fatalf("%d provider calls for a batch of two", calls.Load()-before)
	}
	msgs, _ := r.JSON["messages"].([]any)
	for _, m := range msgs {
		if m.(map[string]any)["embedding_dim"] != 3.0 {
			t.Fatalf("appended message without an embedding: %s", r.Body)
		}
	}
	var w window
	if err := json.Unmarshal(s.Must(200, s.Do("GET", "/v1/sessions/"+sid+"/context", nil)).Body, &w); err != nil {
		t.Fatal(err)
	}
	// By vector: bees, then own (0.1 of the way), then jazz; by recency
	// alone (no embedding) own, jazz, bees.
	var got []string
	for _, m := range w.Memories {
		got = append(got, m.ID)
	}
	if !slices.Equal(got, []string{bees.Str("id"), own, jazz}) {
		t.Fatalf("window ranked by the latest user message: %+v", w.Memories)
	}

	// An unknown session is 404 before the provider is asked to embed
	// the query.
	before = calls.Load()
	isProblem(t, s.Do("GET", "/v1/sessions/01M8AW15D2ZRQDGG00653QZD87/context?query=fresh+words", nil), 404, "")
	isProblem(t, s.Do("POST", "/v1/sessions/01M8AW15D2ZRQDGG00653QZD87/context/snapshots", map[string]any{"query": "other words"}), 404, "")
	if n := calls.Load() - before; n != 0 {
		t.Fatalf("%d provider calls for the context of an unknown session", n)
	}
}

// A provider that fails or answers wrongly blocks nothing: messages and
// memories are stored without an embedding, and queries rank by full
// text alone.
func TestEmbeddingProviderDownBlocksNothing(t *testing.T) {
	t.Parallel()
	var fail atomic.Bool
	fail.Store(true)
	var calls atomic.Int64
	fake := fakeEmbeddings(t, &fail, &calls)
	env := providerEnv(fake.URL)
	env["ARQ_EMBEDDING_DIM"] = "4" // the fake's 3 dimensions are wrong too
	s := testserver.Start(t, env)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "d", "name": "D"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")

	for _, down := range []bool{true, false} {
		fail.Store(down)
		before := calls.Load()
		m := s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "Where should the hive go?"}))
		mem := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "Ada keeps bees"}))
		if m.Num("embedding_dim") != 0 || mem.Num("embedding_dim") != 0 || calls.Load() < before+2 {
			t.Fatalf("provider down=%v: message %s, memory %s, %d calls", down, m.Body, mem.Body, calls.Load()-before)
		}
		items := s.Must(200, s.Do("POST", "/v1/users/"+uid+"/memories/search", map[string]any{"query": "bees"})).Items()
		if len(items) == 0 || items[0]["content"] != "Ada keeps bees" {
			t.Fatalf("full-text search with the provider down=%v: %v", down, items)
		}
		s.Must(200, s.Do("GET", "/v1/sessions/"+sid+"/context?query=bees", nil))
	}
}

// The embedding settings are checked at start.
func TestEmbeddingConfig(t *testing.T) {
	t.Parallel()
	for env, ok := range map[[2]string]bool{
		{"ARQ_EMBEDDING_DIM", "1536"}:                      true,
		{"ARQ_EMBEDDING_DIM", "0"}:                         false,
		{"ARQ_EMBEDDING_DIM", "5000"}:                      false,
		{"ARQ_EMBEDDING_DIM", "many"}:                      false,
		{"ARQ_EMBEDDINGS_URL", "http://127.0.0.1:9/v1"}:    true,
		{"ARQ_EMBEDDINGS_URL", "ftp://embeddings.example"}: false,
		{"ARQ_EMBEDDINGS_TIMEOUT", "0s"}:                   false,
	} {
		cfg, err := app.FromEnv(func(k string) string {
			if k == env[0] {
				return env[1]
			}
			return ""
		})
		if err == nil {
			err = cfg.Validate()
		}
		if (err == nil) != ok {
			t.Errorf("%s=%s: %v", env[0], env[1], err)
		}
	}
}

// The provider is asked only for what would be written: a refused
// message, memory or change costs no call to it.
func TestEmbeddingProviderIsNotAskedForRefusedInput(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	fake := fakeEmbeddings(t, nil, &calls)
	s := testserver.Start(t, providerEnv(fake.URL))
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "r", "name": "R"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	mid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "bees"})).Str("id")
	closed := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	s.Must(200, s.Do("POST", "/v1/sessions/"+closed+"/close", nil))
	before := calls.Load()

	isProblem(t, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "robot", "content": "beep"}), 422, "role")
	isProblem(t, s.Do("POST", "/v1/sessions/"+closed+"/messages", map[string]any{"role": "user", "content": "late"}), 409, "")
	isProblem(t, s.Do("POST", "/v1/sessions/nosuch/messages", map[string]any{"role": "user", "content": "lost"}), 404, "")
	isProblem(t, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "dream", "content": "honey"}), 422, "type")
	isProblem(t, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "honey", "importance": 7}), 422, "importance")
	isProblem(t, s.Do("PATCH", "/v1/memories/"+mid, map[string]any{"content": "hive", "importance": -1}), 422, "importance")
	if n := calls.Load() - before; n != 0 {
		t.Fatalf("the provider was asked %d times for refused input", n)
	}
	// What is written still gets its embedding.
	s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "bees"}))
	s.Must(200, s.Do("PATCH", "/v1/memories/"+mid, map[string]any{"content": "hive"}))
	if n := calls.Load() - before; n != 2 {
		t.Fatalf("the provider was asked %d times for two writes", n)
	}
}
