package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/idempotency"
	"github.com/arq-memory/arq/internal/testdb"
)

func isProblem(t *testing.T, r response, status int, field string) {
	t.Helper()
	if r.status != status || r.header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("want a %d problem, got %d %s: %s", status, r.status, r.header.Get("Content-Type"), r.body)
	}
	if r.num("status") != float64(status) || !strings.HasPrefix(r.str("type"), "https://arq.dev/problems/") || r.str("title") == "" || r.str("request_id") == "" {
		t.Fatalf("problem body: %s", r.body)
	}
	if field != "" {
		errs, _ := r.json["errors"].([]any)
		found := false
		for _, e := range errs {
			if e.(map[string]any)["field"] == field {
				found = true
			}
		}
		if !found {
			t.Fatalf("problem names no field %q: %s", field, r.body)
		}
	}
}

func eventCount(t *testing.T, s *server) int {
	t.Helper()
	pool := testdb.Pool(t, s.url)
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestErrorsAreProblemsAndAppendNothing(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"ARQ_MAX_BODY_BYTES": "2048"})
	uid := s.must(201, s.do("POST", "/v1/users", map[string]any{"external_id": "e", "name": "E"})).str("id")
	before := eventCount(t, s)

	isProblem(t, s.do("POST", "/v1/users", `{"external_id": "x",`), 400, "")
	isProblem(t, s.do("POST", "/v1/users", `{"external_id": 7, "name": "x"}`), 422, "external_id")
	isProblem(t, s.do("POST", "/v1/users", map[string]any{"external_id": "", "name": "x", "email": "nope"}), 422, "email")
	isProblem(t, s.do("POST", "/v1/users", map[string]any{"external_id": "y", "name": "x", "colour": "red"}), 422, "colour")
	isProblem(t, s.do("GET", "/v1/users/01JZZZZZZZZZZZZZZZZZZZZZZZ", nil), 404, "")
	isProblem(t, s.do("GET", "/v1/nowhere", nil), 404, "")
	isProblem(t, s.do("POST", "/v1/users", map[string]any{"external_id": "e", "name": "again"}), 409, "")
	isProblem(t, s.do("PATCH", "/v1/users/"+uid, map[string]any{"name": "F"}, "If-Match", `"9"`), 412, "")
	isProblem(t, s.do("POST", "/v1/users", map[string]any{"external_id": "big", "name": strings.Repeat("x", 4000)}), 413, "")
	r := s.do("POST", "/v1/users", `{"external_id":"z","name":"z"}`, "Content-Type", "text/plain")
	isProblem(t, r, 415, "")
	isProblem(t, s.do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "dream", "content": ""}), 422, "type")
	isProblem(t, s.do("GET", "/v1/users?limit=500", nil), 422, "limit")
	isProblem(t, s.do("GET", "/v1/users?cursor=garbage", nil), 422, "")

	if after := eventCount(t, s); after != before {
		t.Fatalf("bad requests appended %d events", after-before)
	}
}

func TestIdempotencyKeyReplaysTheFirstAnswer(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	body := map[string]any{"external_id": "idem", "name": "I"}
	first := s.must(201, s.do("POST", "/v1/users", body, "Idempotency-Key", "k-1"))
	events := eventCount(t, s)
	again := s.must(201, s.do("POST", "/v1/users", body, "Idempotency-Key", "k-1"))
	if string(again.body) != string(first.body) || again.header.Get("Idempotent-Replayed") != "true" || again.header.Get("ETag") != first.header.Get("ETag") {
		t.Fatalf("replay differs:\nfirst %s\nagain %s %v", first.body, again.body, again.header)
	}
	if n := eventCount(t, s); n != events {
		t.Fatalf("the retry appended %d events", n-events)
	}
	isProblem(t, s.do("POST", "/v1/users", map[string]any{"external_id": "other", "name": "O"}, "Idempotency-Key", "k-1"), 422, "")
	// A key Postgres cannot keep is refused before anything is done.
	isProblem(t, s.do("POST", "/v1/users", map[string]any{"external_id": "other", "name": "O"}, "Idempotency-Key", "k\xff"), 400, "")
	if n := eventCount(t, s); n != events {
		t.Fatalf("a refused request appended %d events", n-events)
	}
	// Refused input keeps no answer: the key serves the corrected request,
	// whose retry may write its JSON keys in another order.
	isProblem(t, s.do("POST", "/v1/users", `{"external_id":"later","name":""}`, "Idempotency-Key", "k-2"), 422, "name")
	fixed := s.must(201, s.do("POST", "/v1/users", `{"external_id":"later","name":"L"}`, "Idempotency-Key", "k-2"))
	reordered := s.must(201, s.do("POST", "/v1/users", `{ "name": "L", "external_id": "later" }`, "Idempotency-Key", "k-2"))
	if reordered.header.Get("Idempotent-Replayed") != "true" || reordered.str("id") != fixed.str("id") {
		t.Fatalf("retry with the keys reordered: %s %v", reordered.body, reordered.header)
	}
	// Keys equal but for case are refused, in either order (field names
	// are case-sensitive), so neither is kept as the key's answer.
	sid := s.must(201, s.do("POST", "/v1/users/"+fixed.str("id")+"/sessions", map[string]any{})).str("id")
	isProblem(t, s.do("POST", "/v1/sessions/"+sid+"/messages", `{"role":"user","content":"pay alice","Content":"pay mallory"}`, "Idempotency-Key", "k-3"), 422, "Content")
	isProblem(t, s.do("POST", "/v1/sessions/"+sid+"/messages", `{"role":"user","Content":"pay mallory","content":"pay alice"}`, "Idempotency-Key", "k-3"), 422, "Content")
	if m := s.must(201, s.do("POST", "/v1/sessions/"+sid+"/messages", `{"role":"user","content":"pay alice"}`, "Idempotency-Key", "k-3")); m.str("content") != "pay alice" {
		t.Fatalf("the key after refused input: %s", m.body)
	}
}

func TestReadYourWritesAndPositions(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"ARQ_MIN_POSITION_TIMEOUT": "500ms"}) // for the 503 below
	u := s.must(201, s.do("POST", "/v1/users", map[string]any{"external_id": "ryw", "name": "R"}))
	pos := u.header.Get("X-Arq-Position")
	if _, err := eventstore.ParseCursor(pos); err != nil || pos == "" {
		t.Fatalf("X-Arq-Position %q: %v", pos, err)
	}
	// Each write is visible on the next read, many times over.
	for i := 0; i < 20; i++ {
		m := s.must(201, s.do("POST", "/v1/users/"+u.str("id")+"/memories", map[string]any{"type": "semantic", "content": fmt.Sprintf("fact %d", i)}))
		s.must(200, s.do("GET", "/v1/memories/"+m.str("id"), nil))
	}
	// Asynchronous: 202 at once, then a read that waits for the position.
	a := s.must(202, s.do("POST", "/v1/users", map[string]any{"external_id": "async", "name": "A"}, "Prefer", "respond-async"))
	if a.header.Get("Preference-Applied") != "respond-async" || a.str("id") == "" || a.header.Get("X-Arq-Position") == "" {
		t.Fatalf("async answer: %v %s", a.header, a.body)
	}
	got := s.must(200, s.do("GET", "/v1/users/"+a.str("id"), nil, "X-Arq-Min-Position", a.header.Get("X-Arq-Position")))
	if got.str("name") != "A" {
		t.Fatalf("read after min position: %s", got.body)
	}
	// A position the projections will not reach in time: 503, Retry-After.
	far := s.do("GET", "/v1/users", nil, "X-Arq-Min-Position", "999999999999.1")
	isProblem(t, far, 503, "")
	if far.header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	isProblem(t, s.do("GET", "/v1/users", nil, "X-Arq-Min-Position", "garbage"), 400, "")
}

func TestEventsRecordRequestAndCaller(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"ARQ_ADMIN_KEY": "admin-secret"})
	s.key = "admin-secret"
	k := s.must(201, s.do("POST", "/v1/admin/keys", map[string]any{"name": "backend", "scopes": []string{"read", "write"}}))
	s.key = k.str("key")
	r := s.must(201, s.do("POST", "/v1/users", map[string]any{"external_id": "trace", "name": "T"}, "X-Request-ID", "req-trace-1"))
	if r.header.Get("X-Request-ID") != "req-trace-1" {
		t.Fatalf("request id not echoed: %v", r.header)
	}
	gen := s.must(201, s.do("POST", "/v1/users", map[string]any{"external_id": "trace2", "name": "T"}))
	if len(gen.header.Get("X-Request-ID")) != 26 {
		t.Fatalf("no request id made: %v", gen.header)
	}
	pool := testdb.Pool(t, s.url)
	var corr, actor string
	if err := pool.QueryRow(context.Background(), `SELECT metadata->>'correlation_id', metadata->>'actor' FROM events
		WHERE stream_id = 'user-' || $1`, r.str("id")).Scan(&corr, &actor); err != nil {
		t.Fatal(err)
	}
	if corr != "req-trace-1" || actor != "key:"+k.str("id") {
		t.Fatalf("event metadata: correlation %q actor %q", corr, actor)
	}
}

func TestAuthKeysAndScopes(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"ARQ_ADMIN_KEY": "admin-secret"})
	isProblem(t, s.do("GET", "/v1/users", nil), 401, "")
	s.key = "wrong"
	isProblem(t, s.do("GET", "/v1/users", nil), 401, "")
	s.key = ""
	s.must(200, s.do("GET", "/healthz", nil))
	s.must(200, s.do("GET", "/openapi.json", nil))
	for _, path := range []string{"/healthz", "/readyz"} { // as load balancers probe
		if r := s.do("HEAD", path, nil); r.status != 200 || len(r.body) != 0 {
			t.Fatalf("HEAD %s: %d %q", path, r.status, r.body)
		}
	}

	s.key = "admin-secret"
	ro := s.must(201, s.do("POST", "/v1/admin/keys", map[string]any{"name": "reader", "scopes": []string{"read"}}))
	rw := s.must(201, s.do("POST", "/v1/admin/keys", map[string]any{"name": "writer", "scopes": []string{"read", "write"}}))
	isProblem(t, s.do("POST", "/v1/admin/keys", map[string]any{"name": "x", "scopes": []string{"root"}}), 422, "scopes")
	if l := s.must(200, s.do("GET", "/v1/admin/keys", nil)); len(l.items()) != 2 || strings.Contains(string(l.body), ro.str("key")) {
		t.Fatalf("key list: %s", l.body)
	}
	pool := testdb.Pool(t, s.url)
	var leaked int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM api_keys WHERE key_hash = $1 OR name = $1`, ro.str("key")).Scan(&leaked); err != nil || leaked != 0 {
		t.Fatalf("a key's secret is stored: %d %v", leaked, err)
	}

	s.key = ro.str("key")
	s.must(200, s.do("GET", "/v1/users", nil))
	for _, path := range []string{"/v1/users", "/metrics", "/openapi.json"} { // HEAD wherever GET (RFC 9110)
		if r := s.do("HEAD", path, nil); r.status != 200 || len(r.body) != 0 || r.header.Get("Content-Type") == "" {
			t.Fatalf("HEAD %s: %d %v %q", path, r.status, r.header, r.body)
		}
	}
	isProblem(t, s.do("POST", "/v1/users", map[string]any{"external_id": "a", "name": "A"}), 403, "")
	s.key = rw.str("key")
	uid := s.must(201, s.do("POST", "/v1/users", map[string]any{"external_id": "a", "name": "A"})).str("id")
	started := s.must(201, s.do("POST", "/v1/users/"+uid+"/sessions", map[string]any{}))
	isProblem(t, s.do("GET", "/v1/admin/keys", nil), 403, "")
	// The reads that take a body by POST need only the read scope.
	s.key = ro.str("key")
	s.must(200, s.do("POST", "/v1/users/"+uid+"/memories/search", map[string]any{"query": "tea"}))
	s.must(200, s.do("POST", "/v1/sessions/"+started.str("id")+"/context", map[string]any{}))
	s.must(200, s.do("POST", "/v1/sessions/validate", map[string]any{"token": started.str("token")}))
	isProblem(t, s.do("POST", "/v1/sessions/"+started.str("id")+"/context/snapshots", map[string]any{}), 403, "")
	s.key = rw.str("key")

	s.key = "admin-secret"
	s.must(204, s.do("DELETE", "/v1/admin/keys/"+rw.str("id"), nil))
	s.key = rw.str("key")
	isProblem(t, s.do("GET", "/v1/users", nil), 401, "")
}

func TestMiddlewareHeaders(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"ARQ_CORS_ORIGINS": "https://app.example"})
	r := s.do("GET", "/v1/users", nil, "Origin", "https://app.example")
	if r.header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Fatalf("allowed origin: %v", r.header)
	}
	// A browser client may read the headers the API answers with.
	for _, h := range []string{"ETag", "X-Arq-Position", "Retry-After", "Idempotent-Replayed", "Preference-Applied", "X-Arq-Cache", "X-Arq-Session-Token"} {
		if !strings.Contains(strings.ToLower(r.header.Get("Access-Control-Expose-Headers")), strings.ToLower(h)) {
			t.Errorf("%s not exposed: %q", h, r.header.Get("Access-Control-Expose-Headers"))
		}
	}
	if r := s.do("GET", "/v1/users", nil, "Origin", "https://evil.example"); r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("denied origin got CORS headers: %v", r.header)
	}
	if !strings.HasPrefix(r.header.Get("Server-Timing"), "app;dur=") || r.header.Get("X-Request-ID") == "" {
		t.Fatalf("timing/request id headers: %v", r.header)
	}
}

// Clients appending to one session at once all succeed, with gapless
// sequence numbers.
func TestConcurrentAppendsToOneSession(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	uid := s.must(201, s.do("POST", "/v1/users", map[string]any{"external_id": "c", "name": "C"})).str("id")
	sid := s.must(201, s.do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).str("id")
	const clients, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan string, clients*each)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				raw, _ := json.Marshal(map[string]any{"role": "user", "content": fmt.Sprintf("client %d message %d", c, i)})
				req, _ := http.NewRequest("POST", s.base+"/v1/sessions/"+sid+"/messages", strings.NewReader(string(raw)))
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					errs <- err.Error()
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 201 {
					errs <- fmt.Sprintf("status %d", resp.StatusCode)
				}
			}
		}(c)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	seen := 0
	cursor := ""
	for {
		p := s.must(200, s.do("GET", "/v1/sessions/"+sid+"/messages?limit=100&cursor="+cursor, nil))
		for _, it := range p.items() {
			seen++
			if int(it["seq"].(float64)) != seen {
				t.Fatalf("message %d has seq %v", seen, it["seq"])
			}
		}
		if cursor = p.str("next_cursor"); cursor == "" {
			break
		}
	}
	if seen != clients*each {
		t.Fatalf("%d messages, want %d", seen, clients*each)
	}
	if got := s.must(200, s.do("GET", "/v1/sessions/"+sid, nil)); got.num("message_count") != clients*each {
		t.Fatalf("session message_count: %s", got.body)
	}
}

// Background expiry records each expiry once, also with two servers on one
// database.
func TestExpiryIsRecordedOnce(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"ARQ_EXPIRY_INTERVAL": "50ms"})
	uid := s.must(201, s.do("POST", "/v1/users", map[string]any{"external_id": "x", "name": "X"})).str("id")
	sid := s.must(201, s.do("POST", "/v1/users/"+uid+"/sessions", map[string]any{"ttl_seconds": 1})).str("id")
	mid := s.must(201, s.do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "working", "content": "soon gone", "ttl_seconds": 1})).str("id")
	second := startServerOn(t, s.url, map[string]string{"ARQ_EXPIRY_INTERVAL": "50ms"})
	_ = second
	pool := testdb.Pool(t, s.url)
	deadline := time.Now().Add(20 * time.Second)
	for {
		var sessions, memories int
		err := pool.QueryRow(context.Background(), `SELECT
			(SELECT count(*) FROM events WHERE stream_id = 'session-' || $1 AND event_type = 'session.expired'),
			(SELECT count(*) FROM events WHERE stream_id = 'memory-' || $2 AND event_type = 'memory.expired')`, sid, mid).Scan(&sessions, &memories)
		if err != nil {
			t.Fatal(err)
		}
		if sessions > 1 || memories > 1 {
			t.Fatalf("expiry recorded %d and %d times", sessions, memories)
		}
		if sessions == 1 && memories == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("expiry not recorded: sessions %d memories %d", sessions, memories)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := s.must(200, s.do("GET", "/v1/sessions/"+sid, nil)); got.str("status") != "expired" {
		t.Fatalf("session: %s", got.body)
	}
	isProblem(t, s.do("GET", "/v1/memories/"+mid, nil), 404, "")
	isProblem(t, s.do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "late"}), 409, "")
}

// A server decides a message append from the session it folded for the
// previous one; changes another server makes to the session in between
// must still count: an extension lets the append through, a close refuses
// it.
func TestMessageAppendSeesSessionChangesOfAnotherServer(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	other := startServerOn(t, s.url, nil)
	uid := s.must(201, s.do("POST", "/v1/users", map[string]any{"external_id": "two", "name": "Two"})).str("id")
	sid := s.must(201, s.do("POST", "/v1/users/"+uid+"/sessions", map[string]any{"ttl_seconds": 3600})).str("id")
	msg := func(content string) response {
		return s.do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": content})
	}
	s.must(201, msg("first"))
	other.must(200, other.do("POST", "/v1/sessions/"+sid+"/extend", map[string]any{"ttl_seconds": 7200}))
	if seq := s.must(201, msg("after the extension")).num("seq"); seq != 2 {
		t.Fatalf("message after the extension has seq %v, want 2", seq)
	}
	other.must(200, other.do("POST", "/v1/sessions/"+sid+"/close", nil))
	isProblem(t, msg("after the close"), 409, "")
	if n := s.must(200, s.do("GET", "/v1/sessions/"+sid, nil)).num("message_count"); n != 2 {
		t.Fatalf("message_count %v, want 2", n)
	}
}

// An id Postgres cannot hold as text (not UTF-8, or with a NUL byte) names
// nothing: every route with one answers 404, reads and commands alike, and
// appends nothing.
func TestIDsPostgresCannotHoldAreNotFound(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	for _, id := range []string{"%FF", "a%00b"} {
		for _, path := range []string{"/v1/messages/", "/v1/memories/", "/v1/sessions/", "/v1/users/",
			"/v1/context-snapshots/", "/v1/messages/%s/context", "/v1/sessions/%s/context", "/v1/sessions/%s/messages",
			"/v1/sessions/%s/context/snapshots", "/v1/users/%s/memories", "/v1/users/%s/sessions"} {
			if !strings.Contains(path, "%s") {
				path += "%s"
			}
			isProblem(t, s.do("GET", fmt.Sprintf(path, id), nil), 404, "")
		}
		isProblem(t, s.do("POST", "/v1/users/"+id+"/memories", map[string]any{"type": "semantic", "content": "x"}), 404, "")
		isProblem(t, s.do("POST", "/v1/sessions/"+id+"/messages", map[string]any{"role": "user", "content": "x"}), 404, "")
	}
	counts, _ := s.must(200, s.do("GET", "/v1/stats", nil)).json["counts"].(map[string]any)
	if n, ok := counts["events"]; !ok || n != 0.0 {
		t.Fatalf("events after requests with bad ids: %v", counts)
	}
}

// A text Postgres cannot hold (the NUL character, \u0000) anywhere in a
// body or a query parameter is a 422 naming the field, and appends
// nothing.
func TestNULInTextIsInvalid(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	uid := s.must(201, s.do("POST", "/v1/users", map[string]any{"external_id": "n", "name": "N"})).str("id")
	sid := s.must(201, s.do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).str("id")
	before := s.must(200, s.do("GET", "/v1/stats", nil)).json["counts"].(map[string]any)["events"]
	isProblem(t, s.do("POST", "/v1/users", map[string]any{"external_id": "a\x00", "name": "B"}), 422, "external_id")
	isProblem(t, s.do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "a\x00b"}), 422, "content")
	isProblem(t, s.do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"messages": []map[string]any{
		{"role": "user", "content": "fine"}, {"role": "user", "content": "x", "metadata": map[string]any{"k": []any{"ok", "\x00"}}}}}), 422, "messages[1].metadata.k[1]")
	isProblem(t, s.do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "x", "metadata": map[string]any{"a\x00": 1}}), 422, "metadata.a\x00")
	isProblem(t, s.do("GET", "/v1/users/"+uid+"/memories?q=a%00b", nil), 422, "q")
	isProblem(t, s.do("GET", "/v1/sessions/"+sid+"/context?query=%FF", nil), 422, "query")
	// A backslash followed by "u0000" is text like any other.
	s.must(201, s.do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": `a\u0000b`}))
	after := s.must(200, s.do("GET", "/v1/stats", nil)).json["counts"].(map[string]any)["events"]
	if after != before.(float64)+1 {
		t.Fatalf("events %v -> %v, want one more (the last message alone)", before, after)
	}
}

// Once a user is deleted, its sessions, messages and memories take no
// more writes: every command on one answers 404 and appends nothing (the
// commands guard the user's stream, so a deletion racing them wins too).
func TestADeletedUsersThingsTakeNoWrites(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	uid := s.must(201, s.do("POST", "/v1/users", map[string]any{"external_id": "gone", "name": "G"})).str("id")
	sid := s.must(201, s.do("POST", "/v1/users/"+uid+"/sessions", map[string]any{"ttl_seconds": 3600})).str("id")
	mid := s.must(201, s.do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "hello"})).str("id")
	mem := s.must(201, s.do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "likes tea"})).str("id")
	// Folded before the deletion: a message append remembers the session
	// and its user, which must not let the next append through.
	s.must(201, s.do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "again"}))
	s.must(204, s.do("DELETE", "/v1/users/"+uid, nil))

	pool := testdb.Pool(t, s.url)
	events := func() (n int) {
		if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM events`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := events()
	for _, c := range []struct {
		method, path string
		body         any
	}{
		{"POST", "/v1/sessions/" + sid + "/messages", map[string]any{"role": "user", "content": "after"}},
		{"POST", "/v1/sessions/" + sid + "/extend", map[string]any{"ttl_seconds": 60}},
		{"POST", "/v1/sessions/" + sid + "/close", map[string]any{}},
		{"PATCH", "/v1/messages/" + mid, map[string]any{"content": "changed"}},
		{"DELETE", "/v1/messages/" + mid, nil},
		{"PATCH", "/v1/memories/" + mem, map[string]any{"content": "zombie"}},
		{"DELETE", "/v1/memories/" + mem, nil},
		{"POST", "/v1/users/" + uid + "/memories", map[string]any{"type": "semantic", "content": "new"}},
		{"POST", "/v1/users/" + uid + "/sessions", map[string]any{}},
		{"POST", "/v1/sessions/" + sid + "/context/snapshots", map[string]any{}},
	} {
		r := s.do(c.method, c.path, c.body)
		if r.status != 404 {
			t.Errorf("%s %s after the user's deletion: %d %s, want 404", c.method, c.path, r.status, r.body)
		}
	}
	if after := events(); after != before {
		t.Fatalf("%d events appended for a deleted user's things", after-before)
	}
}

// A time to live longer than 100 years is refused (it would overflow and
// expire at once); 100 years is accepted and expires 100 years on.
func TestTTLBeyondAHundredYearsIsInvalid(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	uid := s.must(201, s.do("POST", "/v1/users", map[string]any{"external_id": "ttl", "name": "T"})).str("id")
	sid := s.must(201, s.do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).str("id")
	mem := s.must(201, s.do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "x"})).str("id")
	for _, ttl := range []int64{18446744074, 9300000000, 3153600001} {
		isProblem(t, s.do("POST", "/v1/users/"+uid+"/sessions", map[string]any{"ttl_seconds": ttl}), 422, "ttl_seconds")
		isProblem(t, s.do("POST", "/v1/sessions/"+sid+"/extend", map[string]any{"ttl_seconds": ttl}), 422, "ttl_seconds")
		isProblem(t, s.do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "x", "ttl_seconds": ttl}), 422, "ttl_seconds")
		isProblem(t, s.do("PATCH", "/v1/memories/"+mem, map[string]any{"ttl_seconds": ttl}), 422, "ttl_seconds")
	}
	century := int64(100 * 365 * 24 * 60 * 60)
	long := s.must(201, s.do("POST", "/v1/users/"+uid+"/sessions", map[string]any{"ttl_seconds": century}))
	expires, err := time.Parse(time.RFC3339Nano, long.str("expires_at"))
	if err != nil || expires.Before(time.Now().Add(99*365*24*time.Hour)) {
		t.Fatalf("a session of 100 years expires at %q (%v)", long.str("expires_at"), err)
	}
}

// A client that gives up while its command waits for the query tables
// retries with the same key: the command was appended, so the retry gets
// the first answer (202) and appends nothing.
func TestIdempotentRetryAfterTheClientGaveUp(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	uid := s.must(201, s.do("POST", "/v1/users", map[string]any{"external_id": "gave-up", "name": "G"})).str("id")
	ctx := context.Background()
	pool := testdb.Pool(t, s.url)
	release := holdTable(t, pool, "memories")
	send := func(timeout time.Duration) (*http.Response, error) {
		return storeOnce(s, uid, "gave-up-1", timeout)
	}
	if resp, err := send(300 * time.Millisecond); err == nil {
		resp.Body.Close()
		t.Fatalf("answered %d while the projection was held", resp.StatusCode)
	}
	stored := func() (n int) {
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE event_type = 'memory.stored'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	eventually(t, 10*time.Second, "the first request appended", func() (bool, error) { return stored() == 1, nil })
	var replayed *http.Response
	eventually(t, 10*time.Second, "the first request answered", func() (bool, error) {
		resp, err := send(30 * time.Second)
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		replayed = resp
		return resp.StatusCode != http.StatusConflict, nil // 409: the first one is still running
	})
	release()
	if replayed.StatusCode != http.StatusAccepted || replayed.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry: %d %v", replayed.StatusCode, replayed.Header)
	}
	if n := stored(); n != 1 {
		t.Fatalf("%d memories stored", n)
	}
}

// An append whose caller gave up and whose outcome stays unknown (its
// stream's lock held elsewhere past the store's outcome wait) keeps its
// Idempotency-Key claimed: once the append is written and the claim
// lapses, a retry finds it in the log and appends nothing.
func TestIdempotentRetryAfterAnUnknownOutcome(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	uid := s.must(201, s.do("POST", "/v1/users", map[string]any{"external_id": "unknown", "name": "U"})).str("id")
	ctx := context.Background()
	pool := testdb.Pool(t, s.url)
	tx, err := pool.Begin(ctx) // holds the user's stream: a memory's append waits for it
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('user-' || $1, 0))`, uid); err != nil {
		t.Fatal(err)
	}
	send := func(timeout time.Duration) (*http.Response, error) {
		return storeOnce(s, uid, "unknown-1", timeout)
	}
	if resp, err := send(500 * time.Millisecond); err == nil {
		resp.Body.Close()
		t.Fatalf("answered %d while the user's stream was held", resp.StatusCode)
	}
	// The server gives up on the append's outcome after 10 s and keeps
	// the claim; then the append goes through.
	claimKept := func() (bool, error) {
		var n int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM idempotency_keys WHERE key = 'unknown-1' AND status IS NULL`).Scan(&n)
		return n == 1, err
	}
	if resp, err := send(30 * time.Second); err != nil || resp.StatusCode != http.StatusConflict || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("retry while the first runs: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	eventually(t, 40*time.Second, "the server gave up on the append's outcome (503)", func() (bool, error) {
		m := s.do("GET", "/metrics", nil)
		return strings.Contains(string(m.body), `arq_http_requests_total{code="503",method="POST",route="/v1/users/:id/memories"}`), nil
	})
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	stored := func() (n int) {
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE event_type = 'memory.stored'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	eventually(t, 30*time.Second, "the held append written", func() (bool, error) { return stored() == 1, nil })
	eventually(t, 30*time.Second, "the claim kept after the unknown outcome", claimKept)
	if _, err := pool.Exec(ctx, `UPDATE idempotency_keys SET created_at = now() - interval '2 minutes' WHERE key = 'unknown-1'`); err != nil {
		t.Fatal(err)
	}
	resp, err := send(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Idempotent-Replayed") != "true" || stored() != 1 {
		t.Fatalf("retry: %d %v; %d memories stored", resp.StatusCode, resp.Header, stored())
	}
}

// Secrets shown once (a session's token, an API key) are not kept with
// the answer an idempotent retry replays: the database holds only their
// hashes, and the replay answers the same session or key with null in
// their place. Kept answers go after their day.
func TestIdempotentRetriesKeepNoSecrets(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"ARQ_ADMIN_KEY": "admin-secret"})
	s.key = "admin-secret"
	uid := s.must(201, s.do("POST", "/v1/users", map[string]any{"external_id": "sec", "name": "S"})).str("id")
	first := s.must(201, s.do("POST", "/v1/users/"+uid+"/sessions", map[string]any{}, "Idempotency-Key", "start-1"))
	key := s.must(201, s.do("POST", "/v1/admin/keys", map[string]any{"name": "k", "scopes": []string{"read"}}, "Idempotency-Key", "key-1"))
	token, secret := first.str("token"), key.str("key")
	if !strings.HasPrefix(token, "arqs_") || first.header.Get("X-Arq-Session-Token") != token || !strings.HasPrefix(secret, "arqk_") {
		t.Fatalf("first answers: %s %v / %s", first.body, first.header, key.body)
	}
	pool := testdb.Pool(t, s.url)
	var kept int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM idempotency_keys
		WHERE position(convert_to($1::text, 'UTF8') IN body) > 0 OR position(convert_to($2::text, 'UTF8') IN body) > 0
			OR headers::text LIKE '%' || $1::text || '%'`,
		token, secret).Scan(&kept); err != nil || kept != 0 {
		t.Fatalf("%d kept answers hold a secret (%v)", kept, err)
	}
	again := s.must(201, s.do("POST", "/v1/users/"+uid+"/sessions", map[string]any{}, "Idempotency-Key", "start-1"))
	if again.header.Get("Idempotent-Replayed") != "true" || again.str("id") != first.str("id") ||
		again.json["token"] != nil || again.header.Get("X-Arq-Session-Token") != "" {
		t.Fatalf("replayed start: %s %v", again.body, again.header)
	}
	if k := s.must(201, s.do("POST", "/v1/admin/keys", map[string]any{"name": "k", "scopes": []string{"read"}}, "Idempotency-Key", "key-1")); k.str("id") != key.str("id") || k.json["key"] != nil {
		t.Fatalf("replayed key: %s", k.body)
	}
	// The token still opens the session: only the kept answer lost it.
	s.must(200, s.do("POST", "/v1/sessions/validate", map[string]any{"token": token}))

	if _, err := pool.Exec(context.Background(), `UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'start-1'`); err != nil {
		t.Fatal(err)
	}
	n, err := idempotency.New(pool).Prune(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("pruned %d (%v), want the one past its day", n, err)
	}
}

// A value of the wrong type is an invalid field (422 naming it, in the
// API's words, not Go's), as a time without its zone is; nothing is
// appended.
func TestWrongTypesAreInvalidFields(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	uid := s.must(201, s.do("POST", "/v1/users", map[string]any{"external_id": "types", "name": "T"})).str("id")
	sid := s.must(201, s.do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).str("id")
	for _, c := range []struct {
		path, body, field, says string
	}{
		{"/v1/sessions/" + sid + "/messages", `{"role":"user","content":"x","metadata":"str"}`, "metadata", "must be an object, not string"},
		{"/v1/sessions/" + sid + "/messages", `{"role":5,"content":"x"}`, "role", "must be a string, not number"},
		{"/v1/sessions/" + sid + "/messages", `{"messages":[{"role":"user","content":7}]}`, "messages.content", "must be a string, not number"},
		{"/v1/users/" + uid + "/memories", `{"type":"semantic","content":"x","tags":"a"}`, "tags", "must be an array of strings, not string"},
		{"/v1/users/" + uid + "/memories", `{"type":"semantic","content":"x","importance":"high"}`, "importance", "must be a number, not string"},
		{"/v1/users/" + uid + "/memories", `{"type":"semantic","content":"x","expires_at":"2027-01-01T00:00:00"}`, "expires_at", "RFC 3339 with its zone"},
	} {
		r := s.do("POST", c.path, c.body)
		isProblem(t, r, 422, c.field)
		if !strings.Contains(string(r.body), c.says) || strings.Contains(string(r.body), "interface") || strings.Contains(string(r.body), "float64") {
			t.Errorf("%s: %s, want %q", c.body, r.body, c.says)
		}
	}
	if n := s.must(200, s.do("GET", "/v1/sessions/"+sid+"/messages", nil)).items(); len(n) != 0 {
		t.Fatalf("%d messages appended from bad bodies", len(n))
	}
	// NaN is no number from 0 to 1.
	isProblem(t, s.do("GET", "/v1/users/"+uid+"/memories?min_importance=NaN", nil), 422, "min_importance")
}

// If-Match is read as RFC 9110 says: a list of ETags matches when any of
// them is the current version; a weak ETag never matches (the comparison
// is strong); "*" matches any; a header that is no list of ETags is 400.
func TestIfMatchComparesStrongETags(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	uid := s.must(201, s.do("POST", "/v1/users", map[string]any{"external_id": "etag", "name": "E"})).str("id")
	patch := func(ifMatch string) response {
		return s.do("PATCH", "/v1/users/"+uid, map[string]any{"name": "E" + ifMatch}, "If-Match", ifMatch)
	}
	s.must(200, patch(`"7", "1"`)) // now at version 2
	isProblem(t, patch(`W/"2"`), 412, "")
	isProblem(t, patch(`"1", W/"2"`), 412, "")
	isProblem(t, patch(`2`), 400, "")
	isProblem(t, patch(`garbage`), 400, "")
	isProblem(t, patch(`"2`), 400, "")
	s.must(200, patch(`"2"`))
	s.must(200, patch(`*`))
	if v := s.must(200, s.do("GET", "/v1/users/"+uid, nil)).num("version"); v != 4 {
		t.Fatalf("version %v after three matching PATCHes, want 4", v)
	}
}

// A command that changes nothing still names a position, the log's last
// event, and its answer is no older than the log it decided from (here,
// a change answered asynchronously just before).
func TestNoOpCommandAnswersFromTheLogItDecidedFrom(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	uid := s.must(201, s.do("POST", "/v1/users", map[string]any{"external_id": "noop", "name": "A"})).str("id")
	s.must(202, s.do("PATCH", "/v1/users/"+uid, map[string]any{"name": "B"}, "Prefer", "respond-async"))
	same := s.must(200, s.do("PATCH", "/v1/users/"+uid, map[string]any{"name": "B"}))
	if same.header.Get("X-Arq-Position") == "" || same.str("name") != "B" || same.num("version") != 2 {
		t.Fatalf("no-op PATCH: %s %v", same.body, same.header)
	}
}

// A memory's source session and message must be the user's own and
// exist (found in the log, so an append answered asynchronously a moment
// ago counts); ids are kept in canonical form; nothing else is stored.
func TestMemorySourcesAreTheUsersOwn(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	ada := s.must(201, s.do("POST", "/v1/users", map[string]any{"external_id": "src-a", "name": "A"})).str("id")
	bob := s.must(201, s.do("POST", "/v1/users", map[string]any{"external_id": "src-b", "name": "B"})).str("id")
	adaSession := s.must(201, s.do("POST", "/v1/users/"+ada+"/sessions", map[string]any{})).str("id")
	bobSession := s.must(201, s.do("POST", "/v1/users/"+bob+"/sessions", map[string]any{})).str("id")
	adaMsg := s.must(202, s.do("POST", "/v1/sessions/"+adaSession+"/messages", map[string]any{"role": "user", "content": "hi"}, "Prefer", "respond-async")).str("id")
	bobMsg := s.must(201, s.do("POST", "/v1/sessions/"+bobSession+"/messages", map[string]any{"role": "user", "content": "hi"})).str("id")
	store := func(source map[string]any) response {
		body := map[string]any{"type": "episodic", "content": "said hi"}
		for k, v := range source {
			body[k] = v
		}
		return s.do("POST", "/v1/users/"+ada+"/memories", body)
	}
	events := eventCount(t, s)
	isProblem(t, store(map[string]any{"source_session_id": bobSession}), 422, "source_session_id")
	isProblem(t, store(map[string]any{"source_session_id": "01M89VB9XHPWV2SCAB0P286JT9"}), 422, "source_session_id")
	isProblem(t, store(map[string]any{"source_message_id": bobMsg}), 422, "source_message_id")
	isProblem(t, store(map[string]any{"source_session_id": adaSession, "source_message_id": bobMsg}), 422, "source_message_id")
	if n := eventCount(t, s); n != events {
		t.Fatalf("refused sources appended %d events", n-events)
	}
	m := s.must(201, store(map[string]any{"source_session_id": strings.ToLower(adaSession), "source_message_id": adaMsg}))
	if m.str("source_session_id") != adaSession || m.str("source_message_id") != adaMsg {
		t.Fatalf("stored sources: %s", m.body)
	}
}

// holdTable keeps the projections that write table from writing (reads
// go on) until release is called or the test ends.
func holdTable(t *testing.T, pool *pgxpool.Pool, table string) (release func()) {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE `+table+` IN SHARE MODE`); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			if err := tx.Commit(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(release)
	return release
}

// storeOnce stores the memory "stored once" of user uid with an
// Idempotency-Key, waiting timeout at most for the answer.
func storeOnce(s *server, uid, key string, timeout time.Duration) (*http.Response, error) {
	req, err := http.NewRequest("POST", s.base+"/v1/users/"+uid+"/memories", strings.NewReader(`{"type":"semantic","content":"stored once"}`))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	return (&http.Client{Timeout: timeout}).Do(req)
}
