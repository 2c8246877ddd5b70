package e2e

import (
	"github.com/arq-memory/arq/internal/testserver"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// pages follows next_cursor from the first page and returns every item.
func pages(s *testserver.Server, t *testing.T, path string) []map[string]any {
	t.Helper()
	var all []map[string]any
	after := ""
	for i := 0; i < 100; i++ {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		r := s.Must(200, s.Do("GET", path+sep+"after="+after, nil))
		all = append(all, r.Items()...)
		if after = r.Str("next_cursor"); after == "" {
			return all
		}
	}
	t.Fatalf("%s: more than 100 pages", path)
	return nil
}

// The audit of a user holds every event of the user and of everything of
// theirs, none of anyone else's, filtered by type and time, page by page.
func TestUserAuditAndEventLog(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	a := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "a", "name": "A"})).Str("id")
	b := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "b", "name": "B"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+a+"/sessions", map[string]any{})).Str("id")
	msg := s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "hi"})).Str("id")
	s.Must(200, s.Do("PATCH", "/v1/messages/"+msg, map[string]any{"content": "hello"}))
	mem := s.Must(201, s.Do("POST", "/v1/users/"+a+"/memories", map[string]any{"type": "semantic", "content": "x"})).Str("id")
	before := time.Now().UTC()
	s.Must(200, s.Do("PATCH", "/v1/memories/"+mem, map[string]any{"content": "y"}))
	s.Must(201, s.Do("POST", "/v1/users/"+b+"/memories", map[string]any{"type": "semantic", "content": "b's"}))

	audit := pages(s, t, "/v1/users/"+a+"/audit?limit=2")
	types := map[string]int{}
	for _, e := range audit {
		types[e["event_type"].(string)]++
		if sidOf := e["stream_id"].(string); strings.Contains(sidOf, b) {
			t.Fatalf("user A's audit holds %v", e)
		}
	}
	for _, want := range []string{"user.registered", "user.external_id_claimed", "session.started", "message.appended", "message.edited", "memory.stored", "memory.updated"} {
		if types[want] != 1 {
			t.Fatalf("audit of A: %v, want one %s", types, want)
		}
	}
	if n := len(pages(s, t, "/v1/users/"+a+"/audit?limit=100")); n != len(audit) {
		t.Fatalf("paged by 2: %d events, in one page: %d", len(audit), n)
	}
	only := s.Must(200, s.Do("GET", "/v1/users/"+a+"/audit?type=memory.updated", nil)).Items()
	if len(only) != 1 || only[0]["stream_id"] != "memory-"+mem {
		t.Fatalf("type filter: %v", only)
	}
	early := s.Must(200, s.Do("GET", "/v1/users/"+a+"/audit?to="+url.QueryEscape(before.Format(time.RFC3339Nano)), nil)).Items()
	for _, e := range early {
		if e["event_type"] == "memory.updated" {
			t.Fatal("time range let a later event in")
		}
	}
	s.Must(404, s.Do("GET", "/v1/users/01M89VB9XHPWV2SCAB0P286JT9/audit", nil))
	isProblem(t, s.Do("GET", "/v1/users/"+a+"/audit?from=monday", nil), 422, "from")

	code, out, errOut := runCLI(t, s.URL, "audit", "user", a)
	if code != 0 || strings.Count(out, "\n") != len(audit) || !strings.Contains(out, "memory.updated") {
		t.Fatalf("arq audit user: %d, %d lines for %d events\n%s%s", code, strings.Count(out, "\n"), len(audit), out, errOut)
	}

	// The whole log, paged and as NDJSON, holds the same events; a limit
	// bounds the NDJSON stream too.
	paged := pages(s, t, "/v1/events?limit=3")
	ndjson := func(query string) ([]string, string) {
		req, _ := http.NewRequest("GET", s.Base+"/v1/events"+query, nil)
		req.Header.Set("Accept", "application/x-ndjson")
		resp, err := s.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return strings.Split(strings.TrimSpace(string(body)), "\n"), resp.Header.Get("Content-Type")
	}
	lines, ctype := ndjson("")
	if ctype != "application/x-ndjson" || len(lines) != len(paged) || len(paged) < len(audit)+2 {
		t.Fatalf("NDJSON %d lines (%s), paged %d events", len(lines), ctype, len(paged))
	}
	if two, _ := ndjson("?limit=2"); len(two) != 2 || two[1] != lines[1] {
		t.Fatalf("NDJSON with limit=2: %d lines", len(two))
	}
	if got := s.Must(200, s.Do("GET", "/v1/events?type=user.registered", nil)).Items(); len(got) != 2 {
		t.Fatalf("type filter on the log: %d events", len(got))
	}
}

// An external id held in turn by two users (the first deleted, the second
// registered with it) shows in each user's audit only with that user's
// own claim and release.
func TestAuditOfASharedExternalIDIsEachUsersOwn(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	first := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "ada", "name": "A"})).Str("id")
	s.Must(204, s.Do("DELETE", "/v1/users/"+first, nil))
	second := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "ada", "name": "A2"})).Str("id")
	s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "bob", "name": "B"}))
	// A client finds its user by the id it gave: the one who holds it now.
	if l := s.Must(200, s.Do("GET", "/v1/users?external_id=ada", nil)).Items(); len(l) != 1 || l[0]["id"] != second {
		t.Fatalf("users with external id ada: %v, want %s only", l, second)
	}
	if l := s.Must(200, s.Do("GET", "/v1/users?external_id=nobody", nil)).Items(); len(l) != 0 {
		t.Fatalf("users with external id nobody: %v", l)
	}
	for id, want := range map[string][]string{
		first:  {"user.registered", "user.external_id_claimed", "user.deleted", "user.external_id_released"},
		second: {"user.registered", "user.external_id_claimed"},
	} {
		var got []string
		for _, e := range pages(s, t, "/v1/users/"+id+"/audit") {
			if data, _ := e["data"].(map[string]any); data["user_id"] != nil && data["user_id"] != id {
				t.Errorf("audit of %s holds another user's event: %v", id, e)
			}
			got = append(got, e["event_type"].(string))
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("audit of %s: %v, want %v", id, got, want)
		}
		_, out, _ := runCLI(t, s.URL, "audit", "user", id)
		if n := strings.Count(out, "\n"); n != len(want) {
			t.Errorf("arq audit user %s: %d lines, want %d:\n%s", id, n, len(want), out)
		}
	}
}
