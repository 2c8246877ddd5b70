package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/arq-memory/arq/app"
	"github.com/arq-memory/arq/internal/testserver"
	"github.com/arq-memory/arq/internal/testwait"
	"testing"
	"time"
)

// After `arq projections rebuild` of every projection, every read returns
// exactly what it returned before: entities and lists, context windows
// (with their summaries), context snapshots, memory search, history, a
// user's audit and the counts of /v1/stats.
func TestRebuildOfEveryProjectionKeepsEveryRead(t *testing.T) {
	t.Parallel()
	// Small summary thresholds, so that sessions get summaries, and a
	// quick background pass for them and for the snapshots of assistant
	// messages.
	s := testserver.Start(t, map[string]string{"ARQ_BACKGROUND_INTERVAL": "50ms",
		"ARQ_SUMMARY_THRESHOLD_TOKENS": "30", "ARQ_SUMMARY_RECENT_TOKENS": "25", "ARQ_SUMMARY_MAX_TOKENS": "40"})

	// A read is a GET whose body must not change; norm, if set, takes out
	// what may move with the clock alone.
	type read struct {
		path string
		norm func(t *testing.T, body []byte) []byte
	}
	var (
		reads      []read
		sessions   []string // open ones, each due a summary
		closing    string
		answers    []string // assistant messages, each due a snapshot
		users      []string
		searchBody = map[string]any{"query": "topic fact"}
	)
	get := func(paths ...string) {
		for _, p := range paths {
			reads = append(reads, read{path: p})
		}
	}
	for i := 0; i < 3; i++ {
		uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": fmt.Sprintf("u%d", i), "name": fmt.Sprintf("User %d", i), "metadata": map[string]any{"n": i}})).Str("id")
		users = append(users, uid)
		if i == 0 {
			s.Must(200, s.Do("PATCH", "/v1/users/"+uid, map[string]any{"email": "u0@example.com"}))
		}
		sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{"title": "s", "ttl_seconds": 3600})).Str("id")
		var first string
		for j := 0; j < 8; j++ {
			role := []string{"user", "assistant"}[j%2]
			m := s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": role, "content": fmt.Sprintf("message %d about topic %d and the garden", j, i)}))
			if j == 0 {
				first = m.Str("id")
			}
			if role == "assistant" {
				answers = append(answers, m.Str("id"))
				get("/v1/messages/" + m.Str("id") + "/context")
			}
		}
		s.Must(200, s.Do("PATCH", "/v1/messages/"+first, map[string]any{"content": "edited"}))
		for j := 0; j < 3; j++ {
			mid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": fmt.Sprintf("fact %d of topic %d", j, i), "tags": []string{"t"}, "importance": 0.3 * float64(j)})).Str("id")
			if j == 1 {
				s.Must(200, s.Do("PATCH", "/v1/memories/"+mid, map[string]any{"importance": 0.5}))
			}
			if j == 2 {
				s.Must(204, s.Do("DELETE", "/v1/memories/"+mid, nil))
			}
			get("/v1/memories/" + mid + "/history")
		}
		// A snapshot a client takes.
		taken := s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/context/snapshots", map[string]any{"max_tokens": 300, "query": "garden"})).Str("id")
		if i == 2 {
			closing = sid
		} else {
			sessions = append(sessions, sid)
		}
		get("/v1/users/"+uid, "/v1/users/"+uid+"/sessions", "/v1/sessions/"+sid, "/v1/sessions/"+sid+"/messages",
			"/v1/messages/"+first, "/v1/users/"+uid+"/memories", "/v1/users/"+uid+"/memories?tag=t&min_importance=0.2",
			"/v1/context-snapshots/"+taken, "/v1/sessions/"+sid+"/context/snapshots",
			"/v1/sessions/"+sid+"/history", "/v1/messages/"+first+"/history", "/v1/users/"+uid+"/history", "/v1/users/"+uid+"/audit?limit=100")
		// Context windows with a fixed query: a roomy one, and a small one
		// where the summary takes half. Memory scores weigh recency, which
		// moves with the clock alone: the windows are compared without them
		// (the memories and their order stay).
		for _, q := range []string{"max_tokens=2000&query=topic+garden", "max_tokens=120&summary_share=0.5&query=topic"} {
			reads = append(reads, read{path: "/v1/sessions/" + sid + "/context?" + q, norm: withoutScores("memories")})
		}
	}
	get("/v1/users", "/v1/users?limit=2")

	// The background pass has done its work: every assistant message has
	// the snapshot of its context, every open session a summary.
	testwait.Eventually(t, 30*time.Second, "snapshots of every assistant message", func() (bool, error) {
		for _, a := range answers {
			if r := s.Do("GET", "/v1/messages/"+a+"/context", nil); r.Status != 200 {
				return false, nil
			}
		}
		return true, nil
	})
	testwait.Eventually(t, 30*time.Second, "a summary in every open session's window", func() (bool, error) {
		for _, sid := range sessions {
			if w := windowOf(s, sid, "max_tokens=120&summary_share=0.5&query=topic"); w.Summary == nil {
				return false, nil
			}
		}
		return true, nil
	})
	s.Must(200, s.Do("POST", "/v1/sessions/"+closing+"/close", nil))

	snapshot := func() map[string][]byte {
		out := map[string][]byte{}
		for _, r := range reads {
			body := s.Must(200, s.Do("GET", r.path, nil)).Body
			if r.norm != nil {
				body = r.norm(t, body)
			}
			out[r.path] = body
		}
		for _, uid := range users {
			body := s.Must(200, s.Do("POST", "/v1/users/"+uid+"/memories/search", searchBody)).Body
			out["search of "+uid] = withoutScores("items")(t, body)
		}
		var stats struct {
			Counts json.RawMessage `json:"counts"`
		}
		if err := json.Unmarshal(s.Must(200, s.Do("GET", "/v1/stats", nil)).Body, &stats); err != nil {
			t.Fatal(err)
		}
		out["/v1/stats counts"] = stats.Counts
		return out
	}
	// Nothing moves by itself any more (a summary or snapshot late, say),
	// so that a difference below is the rebuild's.
	var before map[string][]byte
	testwait.Eventually(t, 30*time.Second, "reads settled", func() (bool, error) {
		a := snapshot()
		b := snapshot()
		before = b
		return fmt.Sprint(a) == fmt.Sprint(b), nil
	})
	// The reads hold what this test is about.
	for _, sid := range sessions {
		if w := windowOf(s, sid, "max_tokens=120&summary_share=0.5&query=topic"); w.Summary == nil || len(w.Messages) == 0 || len(w.Memories) == 0 {
			t.Fatalf("window of %s: %+v", sid, w)
		}
		if l := s.Must(200, s.Do("GET", "/v1/sessions/"+sid+"/context/snapshots", nil)).Items(); len(l) != 5 {
			t.Fatalf("session %s has %d snapshots, want 5", sid, len(l))
		}
	}
	if n := len(s.Must(200, s.Do("POST", "/v1/users/"+users[0]+"/memories/search", searchBody)).Items()); n != 2 {
		t.Fatalf("search finds %d memories, want 2", n)
	}

	for _, p := range app.Projections() {
		code, _, errOut := runCLI(t, s.URL, "projections", "rebuild", p.Name(), "--quiet")
		if code != 0 {
			t.Fatalf("rebuild %s: exit %d: %s", p.Name(), code, errOut)
		}
	}
	after := snapshot()
	if len(after) != len(before) {
		t.Fatalf("%d reads before, %d after", len(before), len(after))
	}
	for r, b := range before {
		if !bytes.Equal(b, after[r]) {
			t.Errorf("%s changed across the rebuild:\nbefore %s\nafter  %s", r, b, after[r])
		}
	}
}

// withoutScores drops the "score" of every element of the named list in a
// JSON object, keeping the elements and their order.
func withoutScores(list string) func(t *testing.T, body []byte) []byte {
	return func(t *testing.T, body []byte) []byte {
		t.Helper()
		var doc map[string]any
		if err := json.Unmarshal(body, &doc); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		items, _ := doc[list].([]any)
		for _, it := range items {
			if m, ok := it.(map[string]any); ok {
				delete(m, "score")
			}
		}
		out, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
}
