package main

import (
	"bytes"
	"fmt"
	"testing"
)

// After `arq projections rebuild` of every projection, every read returns
// exactly what it returned before.
func TestRebuildOfEveryProjectionKeepsEveryRead(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	var reads []string
	for i := 0; i < 3; i++ {
		uid := s.must(201, s.do("POST", "/v1/users", map[string]any{"external_id": fmt.Sprintf("u%d", i), "name": fmt.Sprintf("User %d", i), "metadata": map[string]any{"n": i}})).str("id")
		if i == 0 {
			s.must(200, s.do("PATCH", "/v1/users/"+uid, map[string]any{"email": "u0@example.com"}))
		}
		sid := s.must(201, s.do("POST", "/v1/users/"+uid+"/sessions", map[string]any{"title": "s", "ttl_seconds": 3600})).str("id")
		var first string
		for j := 0; j < 4; j++ {
			m := s.must(201, s.do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": fmt.Sprintf("message %d about topic %d", j, i)}))
			if j == 0 {
				first = m.str("id")
			}
		}
		s.must(200, s.do("PATCH", "/v1/messages/"+first, map[string]any{"content": "edited"}))
		for j := 0; j < 3; j++ {
			mid := s.must(201, s.do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": fmt.Sprintf("fact %d of topic %d", j, i), "tags": []string{"t"}, "importance": 0.3 * float64(j)})).str("id")
			if j == 2 {
				s.must(204, s.do("DELETE", "/v1/memories/"+mid, nil))
			}
		}
		if i == 2 {
			s.must(200, s.do("POST", "/v1/sessions/"+sid+"/close", nil))
		}
		reads = append(reads, "/v1/users/"+uid, "/v1/users/"+uid+"/sessions", "/v1/sessions/"+sid, "/v1/sessions/"+sid+"/messages",
			"/v1/messages/"+first, "/v1/users/"+uid+"/memories", "/v1/users/"+uid+"/memories?tag=t&min_importance=0.2")
	}
	reads = append(reads, "/v1/users", "/v1/users?limit=2")
	snapshot := func() map[string][]byte {
		out := map[string][]byte{}
		for _, r := range reads {
			out[r] = s.must(200, s.do("GET", r, nil)).body
		}
		return out
	}
	before := snapshot()

	for _, p := range registered() {
		code, _, errOut := runCLI(t, s.url, "projections", "rebuild", p.Name(), "--quiet")
		if code != 0 {
			t.Fatalf("rebuild %s: exit %d: %s", p.Name(), code, errOut)
		}
	}
	after := snapshot()
	for _, r := range reads {
		if !bytes.Equal(before[r], after[r]) {
			t.Errorf("GET %s changed across the rebuild:\nbefore %s\nafter  %s", r, before[r], after[r])
		}
	}
}
