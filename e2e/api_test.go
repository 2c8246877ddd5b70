package e2e

import (
	"testing"
	"time"
)

func TestAPIWalkthrough(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)

	// A user.
	u := s.must(201, s.do("POST", "/v1/users", map[string]any{"external_id": "ada", "name": "Ada", "email": "ada@example.com", "metadata": map[string]any{"plan": "pro"}}))
	uid := u.str("id")
	if uid == "" || u.num("version") != 1 || u.header.Get("ETag") != `"1"` || u.header.Get("X-Arq-Position") == "" || u.header.Get("Location") != "/v1/users/"+uid {
		t.Fatalf("created user: %d %v %v", u.status, u.json, u.header)
	}
	s.must(409, s.do("POST", "/v1/users", map[string]any{"external_id": "ada", "name": "Other"}))
	got := s.must(200, s.do("GET", "/v1/users/"+uid, nil))
	if got.str("name") != "Ada" || got.str("external_id") != "ada" {
		t.Fatalf("read user: %s", got.body)
	}

	// Edits with ETags.
	s.must(412, s.do("PATCH", "/v1/users/"+uid, map[string]any{"name": "Ada L."}, "If-Match", `"7"`))
	upd := s.must(200, s.do("PATCH", "/v1/users/"+uid, map[string]any{"name": "Ada L."}, "If-Match", `"1"`))
	if upd.str("name") != "Ada L." || upd.num("version") != 2 || upd.header.Get("ETag") != `"2"` {
		t.Fatalf("updated user: %s", upd.body)
	}

	// A session and its messages.
	sess := s.must(201, s.do("POST", "/v1/users/"+uid+"/sessions", map[string]any{"title": "chat", "ttl_seconds": 3600}))
	sid, token := sess.str("id"), sess.str("token")
	if sid == "" || len(token) < 30 || sess.str("status") != "open" {
		t.Fatalf("session: %s", sess.body)
	}
	if v := s.must(200, s.do("POST", "/v1/sessions/validate", map[string]any{"token": token})); v.str("id") != sid || v.str("token") != "" {
		t.Fatalf("validate: %s", v.body)
	}
	s.must(401, s.do("POST", "/v1/sessions/validate", map[string]any{"token": "arqs_nope"}))

	m1 := s.must(201, s.do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "I prefer short answers about gardening"}))
	if m1.num("seq") != 1 || m1.num("tokens") < 1 {
		t.Fatalf("message: %s", m1.body)
	}
	batch := s.must(201, s.do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"messages": []map[string]any{
		{"role": "assistant", "content": "Noted."}, {"role": "user", "content": "What grows in shade?"},
	}}))
	msgs, _ := batch.json["messages"].([]any)
	if len(msgs) != 2 || msgs[1].(map[string]any)["seq"].(float64) != 3 {
		t.Fatalf("batch: %s", batch.body)
	}
	s.must(422, s.do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "narrator", "content": "x"}))

	// Pagination over messages; a cursor belongs to its list.
	seen := 0
	cursor, first := "", ""
	for {
		p := s.must(200, s.do("GET", "/v1/sessions/"+sid+"/messages?limit=2&cursor="+cursor, nil))
		for _, it := range p.items() {
			seen++
			if int(it["seq"].(float64)) != seen {
				t.Fatalf("message %d has seq %v", seen, it["seq"])
			}
		}
		cursor = p.str("next_cursor")
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
	isProblem(t, s.do("GET", "/v1/users/"+uid+"/memories?cursor="+first, nil), 422, "cursor")
	isProblem(t, s.do("GET", "/v1/users?cursor="+first, nil), 422, "cursor")
	isProblem(t, s.do("GET", "/v1/users?cursor=garbage", nil), 422, "cursor")

	// Edit then delete a message.
	mid := m1.str("id")
	ed := s.must(200, s.do("PATCH", "/v1/messages/"+mid, map[string]any{"content": "I prefer short answers"}, "If-Match", `"1"`))
	if ed.num("version") != 2 || ed.str("content") != "I prefer short answers" {
		t.Fatalf("edited: %s", ed.body)
	}
	s.must(412, s.do("DELETE", "/v1/messages/"+mid, nil, "If-Match", `"1"`))
	s.must(204, s.do("DELETE", "/v1/messages/"+mid, nil, "If-Match", `"2"`))
	s.must(404, s.do("GET", "/v1/messages/"+mid, nil))
	if l := s.must(200, s.do("GET", "/v1/sessions/"+sid+"/messages", nil)); len(l.items()) != 2 {
		t.Fatalf("after delete, %d messages listed", len(l.items()))
	}

	// Memories, filters and search.
	mem := s.must(201, s.do("POST", "/v1/users/"+uid+"/memories", map[string]any{
		"type": "semantic", "content": "Ada likes gardening in the shade", "importance": 0.9, "tags": []string{"Hobby"}, "source_session_id": sid,
		"metadata": map[string]any{"source": "chat", "\x01n": 3},
	}))
	s.must(201, s.do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "episodic", "content": "Ada asked about tomatoes", "importance": 0.2}))
	s.must(201, s.do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "working", "content": "draft reply about soil", "ttl_seconds": 1}))
	if tags, _ := mem.json["tags"].([]any); len(tags) != 1 || tags[0] != "hobby" {
		t.Fatalf("memory tags: %s", mem.body)
	}
	for q, want := range map[string]int{
		"type=semantic": 1, "tag=hobby": 1, "min_importance=0.6": 1, "session_id=" + sid: 1, "metadata=source=chat": 1, "q=tomatoes": 1,
		"metadata=%01n=3": 1, "metadata=%01n=4": 0, // a key JSON must escape, with a number
	} {
		if l := s.must(200, s.do("GET", "/v1/users/"+uid+"/memories?"+q, nil)); len(l.items()) != want {
			t.Errorf("filter %s: %d memories, want %d", q, len(l.items()), want)
		}
	}
	hits := s.must(200, s.do("POST", "/v1/users/"+uid+"/memories/search", map[string]any{"query": "gardening"}))
	if h := hits.items(); len(h) < 1 || h[0]["id"] != mem.str("id") || h[0]["score"].(float64) <= 0 {
		t.Fatalf("search: %s", hits.body)
	}

	// Expiry: the one-second working memory disappears from every read.
	deadline := time.Now().Add(10 * time.Second)
	for {
		l := s.must(200, s.do("GET", "/v1/users/"+uid+"/memories?type=working", nil))
		if len(l.items()) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("expired memory still listed")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Closing the session refuses new messages.
	s.must(200, s.do("POST", "/v1/sessions/"+sid+"/close", nil))
	s.must(409, s.do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "still there?"}))
	s.must(401, s.do("POST", "/v1/sessions/validate", map[string]any{"token": token}))

	// Delete the memory, then the user.
	s.must(204, s.do("DELETE", "/v1/memories/"+mem.str("id"), nil))
	s.must(404, s.do("GET", "/v1/memories/"+mem.str("id"), nil))
	s.must(204, s.do("DELETE", "/v1/users/"+uid, nil))
	s.must(404, s.do("GET", "/v1/users/"+uid, nil))
	s.must(404, s.do("GET", "/v1/sessions/"+sid, nil))
}
