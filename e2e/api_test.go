package e2e

import (
	"github.com/arq-memory/arq/internal/testserver"
	"testing"
	"time"
)

func TestAPIWalkthrough(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)

	// A user.
	u := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "ada", "name": "Ada", "email": "ada@example.com", "metadata": map[string]any{"plan": "pro"}}))
	uid := u.Str("id")
	if uid == "" || u.Num("version") != 1 || u.Header.Get("ETag") != `"1"` || u.Header.Get("X-Arq-Position") == "" || u.Header.Get("Location") != "/v1/users/"+uid {
		t.Fatalf("created user: %d %v %v", u.Status, u.JSON, u.Header)
	}
	s.Must(409, s.Do("POST", "/v1/users", map[string]any{"external_id": "ada", "name": "Other"}))
	got := s.Must(200, s.Do("GET", "/v1/users/"+uid, nil))
	if got.Str("name") != "Ada" || got.Str("external_id") != "ada" {
		t.Fatalf("read user: %s", got.Body)
	}

	// Edits with ETags.
	s.Must(412, s.Do("PATCH", "/v1/users/"+uid, map[string]any{"name": "Ada L."}, "If-Match", `"7"`))
	upd := s.Must(200, s.Do("PATCH", "/v1/users/"+uid, map[string]any{"name": "Ada L."}, "If-Match", `"1"`))
	if upd.Str("name") != "Ada L." || upd.Num("version") != 2 || upd.Header.Get("ETag") != `"2"` {
		t.Fatalf("updated user: %s", upd.Body)
	}

	// A session and its messages.
	sess := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{"title": "chat", "ttl_seconds": 3600}))
	sid, token := sess.Str("id"), sess.Str("token")
	if sid == "" || len(token) < 30 || sess.Str("status") != "open" {
		t.Fatalf("session: %s", sess.Body)
	}
	if v := s.Must(200, s.Do("POST", "/v1/sessions/validate", map[string]any{"token": token})); v.Str("id") != sid || v.Str("token") != "" {
		t.Fatalf("validate: %s", v.Body)
	}
	s.Must(401, s.Do("POST", "/v1/sessions/validate", map[string]any{"token": "arqs_nope"}))

	m1 := s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "I prefer short answers about gardening"}))
	if m1.Num("seq") != 1 || m1.Num("tokens") < 1 {
		t.Fatalf("message: %s", m1.Body)
	}
	batch := s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"messages": []map[string]any{
		{"role": "assistant", "content": "Noted."}, {"role": "user", "content": "What grows in shade?"},
	}}))
	msgs, _ := batch.JSON["messages"].([]any)
	if len(msgs) != 2 || msgs[1].(map[string]any)["seq"].(float64) != 3 {
		t.Fatalf("batch: %s", batch.Body)
	}
	s.Must(422, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "narrator", "content": "x"}))

	// Pagination over messages; a cursor belongs to its list.
	seen := 0
	cursor, first := "", ""
	for {
		p := s.Must(200, s.Do("GET", "/v1/sessions/"+sid+"/messages?limit=2&cursor="+cursor, nil))
		for _, it := range p.Items() {
			seen++
			if int(it["seq"].(float64)) != seen {
				t.Fatalf("message %d has seq %v", seen, it["seq"])
			}
		}
		cursor = p.Str("next_cursor")
		if first == "" {
			first = cursor
		}
		if cursor == "" {
			break
		}
	}
	if seen != 3 {
		t.Fatalf("paged through %d messages, want 3", seen)
	}
	isProblem(t, s.Do("GET", "/v1/users/"+uid+"/memories?cursor="+first, nil), 422, "cursor")
	isProblem(t, s.Do("GET", "/v1/users?cursor="+first, nil), 422, "cursor")
	isProblem(t, s.Do("GET", "/v1/users?cursor=garbage", nil), 422, "cursor")

	// Edit then delete a message.
	mid := m1.Str("id")
	ed := s.Must(200, s.Do("PATCH", "/v1/messages/"+mid, map[string]any{"content": "I prefer short answers"}, "If-Match", `"1"`))
	if ed.Num("version") != 2 || ed.Str("content") != "I prefer short answers" {
		t.Fatalf("edited: %s", ed.Body)
	}
	s.Must(412, s.Do("DELETE", "/v1/messages/"+mid, nil, "If-Match", `"1"`))
	s.Must(204, s.Do("DELETE", "/v1/messages/"+mid, nil, "If-Match", `"2"`))
	s.Must(404, s.Do("GET", "/v1/messages/"+mid, nil))
	if l := s.Must(200, s.Do("GET", "/v1/sessions/"+sid+"/messages", nil)); len(l.Items()) != 2 {
		t.Fatalf("after delete, %d messages listed", len(l.Items()))
	}

	// Memories, filters and search.
	mem := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{
		"type": "semantic", "content": "Ada likes gardening in the shade", "importance": 0.9, "tags": []string{"Hobby"}, "source_session_id": sid,
		"metadata": map[string]any{"source": "chat", "\x01n": 3},
	}))
	s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "episodic", "content": "Ada asked about tomatoes", "importance": 0.2}))
	// A memory of one second may expire before a command would read it
	// back (its answer would then be 202 after all): this one is asked
	// for without waiting.
	working := s.Must(202, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "working", "content": "draft reply about soil", "ttl_seconds": 1},
		"Prefer", "respond-async"))
	if tags, _ := mem.JSON["tags"].([]any); len(tags) != 1 || tags[0] != "hobby" {
		t.Fatalf("memory tags: %s", mem.Body)
	}
	for q, want := range map[string]int{
		"type=semantic": 1, "tag=hobby": 1, "min_importance=0.6": 1, "session_id=" + sid: 1, "metadata=source=chat": 1, "q=tomatoes": 1,
		"metadata=%01n=3": 1, "metadata=%01n=4": 0, // a key JSON must escape, with a number
	} {
		if l := s.Must(200, s.Do("GET", "/v1/users/"+uid+"/memories?"+q, nil)); len(l.Items()) != want {
			t.Errorf("filter %s: %d memories, want %d", q, len(l.Items()), want)
		}
	}
	hits := s.Must(200, s.Do("POST", "/v1/users/"+uid+"/memories/search", map[string]any{"query": "gardening"}))
	if h := hits.Items(); len(h) < 1 || h[0]["id"] != mem.Str("id") || h[0]["score"].(float64) <= 0 {
		t.Fatalf("search: %s", hits.Body)
	}

	// Expiry: the one-second working memory disappears from every read
	// that includes it being stored.
	deadline := time.Now().Add(10 * time.Second)
	for {
		l := s.Must(200, s.Do("GET", "/v1/users/"+uid+"/memories?type=working", nil, "X-Arq-Min-Position", working.Header.Get("X-Arq-Position")))
		if len(l.Items()) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("expired memory still listed")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Closing the session refuses new messages.
	s.Must(200, s.Do("POST", "/v1/sessions/"+sid+"/close", nil))
	s.Must(409, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "still there?"}))
	s.Must(401, s.Do("POST", "/v1/sessions/validate", map[string]any{"token": token}))

	// Delete the memory, then the user.
	s.Must(204, s.Do("DELETE", "/v1/memories/"+mem.Str("id"), nil))
	s.Must(404, s.Do("GET", "/v1/memories/"+mem.Str("id"), nil))
	s.Must(204, s.Do("DELETE", "/v1/users/"+uid, nil))
	s.Must(404, s.Do("GET", "/v1/users/"+uid, nil))
	s.Must(404, s.Do("GET", "/v1/sessions/"+sid, nil))
}
