package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/arq-memory/arq/internal/testserver"
	"github.com/arq-memory/arq/internal/testwait"
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

func isProblem(t *testing.T, r testserver.Response, status int, field string) {
	t.Helper()
	if r.Status != status || r.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("want a %d problem, got %d %s: %s", status, r.Status, r.Header.Get("Content-Type"), r.Body)
	}
	if r.Num("status") != float64(status) || !strings.HasPrefix(r.Str("type"), "https://arq.dev/problems/") || r.Str("title") == "" || r.Str("request_id") == "" {
		t.Fatalf("problem body: %s", r.Body)
	}
	if field != "" {
		errs, _ := r.JSON["errors"].([]any)
		found := false
		for _, e := range errs {
			if e.(map[string]any)["field"] == field {
				found = true
			}
		}
		if !found {
			t.Fatalf("problem names no field %q: %s", field, r.Body)
		}
	}
}

func eventCount(t *testing.T, s *testserver.Server) int {
	t.Helper()
	pool := testdb.Pool(t, s.URL)
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestErrorsAreProblemsAndAppendNothing(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, map[string]string{"ARQ_MAX_BODY_BYTES": "2048"})
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "e", "name": "E"})).Str("id")
	before := eventCount(t, s)

	isProblem(t, s.Do("POST", "/v1/users", `{"external_id": "x",`), 400, "")
	isProblem(t, s.Do("POST", "/v1/users", `{"external_id": 7, "name": "x"}`), 422, "external_id")
	isProblem(t, s.Do("POST", "/v1/users", map[string]any{"external_id": "", "name": "x", "email": "nope"}), 422, "email")
	isProblem(t, s.Do("POST", "/v1/users", map[string]any{"external_id": "y", "name": "x", "colour": "red"}), 422, "colour")
	isProblem(t, s.Do("GET", "/v1/users/01JZZZZZZZZZZZZZZZZZZZZZZZ", nil), 404, "")
	isProblem(t, s.Do("GET", "/v1/nowhere", nil), 404, "")
	isProblem(t, s.Do("POST", "/v1/users", map[string]any{"external_id": "e", "name": "again"}), 409, "")
	isProblem(t, s.Do("PATCH", "/v1/users/"+uid, map[string]any{"name": "F"}, "If-Match", `"9"`), 412, "")
	isProblem(t, s.Do("POST", "/v1/users", map[string]any{"external_id": "big", "name": strings.Repeat("x", 4000)}), 413, "")
	isProblem(t, s.Do("GET", "/healthz", strings.Repeat("x", 4000)), 413, "")
	r := s.Do("POST", "/v1/users", `{"external_id":"z","name":"z"}`, "Content-Type", "text/plain")
	isProblem(t, r, 415, "")
	isProblem(t, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "dream", "content": ""}), 422, "type")
	isProblem(t, s.Do("GET", "/v1/users?limit=500", nil), 422, "limit")
	isProblem(t, s.Do("GET", "/v1/users?cursor=garbage", nil), 422, "")

	if after := eventCount(t, s); after != before {
		t.Fatalf("bad requests appended %d events", after-before)
	}
}

func TestIdempotencyKeyReplaysTheFirstAnswer(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	body := map[string]any{"external_id": "idem", "name": "I"}
	first := s.Must(201, s.Do("POST", "/v1/users", body, "Idempotency-Key", "k-1"))
	events := eventCount(t, s)
	again := s.Must(201, s.Do("POST", "/v1/users", body, "Idempotency-Key", "k-1"))
	if string(again.Body) != string(first.Body) || again.Header.Get("Idempotent-Replayed") != "true" || again.Header.Get("ETag") != first.Header.Get("ETag") {
		t.Fatalf("replay differs:\nfirst %s\nagain %s %v", first.Body, again.Body, again.Header)
	}
	if n := eventCount(t, s); n != events {
		t.Fatalf("the retry appended %d events", n-events)
	}
	isProblem(t, s.Do("POST", "/v1/users", map[string]any{"external_id": "other", "name": "O"}, "Idempotency-Key", "k-1"), 422, "")
	// A key Postgres cannot keep is refused before anything is done.
	isProblem(t, s.Do("POST", "/v1/users", map[string]any{"external_id": "other", "name": "O"}, "Idempotency-Key", "k\xff"), 400, "")
	if n := eventCount(t, s); n != events {
		t.Fatalf("a refused request appended %d events", n-events)
	}
	// Refused input keeps no answer: the key serves the corrected request,
	// whose retry may write its JSON keys in another order.
	isProblem(t, s.Do("POST", "/v1/users", `{"external_id":"later","name":""}`, "Idempotency-Key", "k-2"), 422, "name")
	fixed := s.Must(201, s.Do("POST", "/v1/users", `{"external_id":"later","name":"L"}`, "Idempotency-Key", "k-2"))
	reordered := s.Must(201, s.Do("POST", "/v1/users", `{ "name": "L", "external_id": "later" }`, "Idempotency-Key", "k-2"))
	if reordered.Header.Get("Idempotent-Replayed") != "true" || reordered.Str("id") != fixed.Str("id") {
		t.Fatalf("retry with the keys reordered: %s %v", reordered.Body, reordered.Header)
	}
	// Keys equal but for case are refused, in either order (field names
	// are case-sensitive), so neither is kept as the key's answer.
	sid := s.Must(201, s.Do("POST", "/v1/users/"+fixed.Str("id")+"/sessions", map[string]any{})).Str("id")
	isProblem(t, s.Do("POST", "/v1/sessions/"+sid+"/messages", `{"role":"user","content":"pay alice","Content":"pay mallory"}`, "Idempotency-Key", "k-3"), 422, "Content")
	isProblem(t, s.Do("POST", "/v1/sessions/"+sid+"/messages", `{"role":"user","Content":"pay mallory","content":"pay alice"}`, "Idempotency-Key", "k-3"), 422, "Content")
	if m := s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", `{"role":"user","content":"pay alice"}`, "Idempotency-Key", "k-3")); m.Str("content") != "pay alice" {
		t.Fatalf("the key after refused input: %s", m.Body)
	}
}

func TestReadYourWritesAndPositions(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	u := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "ryw", "name": "R"}))
	pos := u.Header.Get("X-Arq-Position")
	if _, err := eventstore.ParseCursor(pos); err != nil || pos == "" {
		t.Fatalf("X-Arq-Position %q: %v", pos, err)
	}
	// Each write is visible on the next read, many times over.
	for i := 0; i < 20; i++ {
		m := s.Must(201, s.Do("POST", "/v1/users/"+u.Str("id")+"/memories", map[string]any{"type": "semantic", "content": fmt.Sprintf("fact %d", i)}))
		s.Must(200, s.Do("GET", "/v1/memories/"+m.Str("id"), nil))
	}
	// Asynchronous: 202 at once, then a read that waits for the position.
	a := s.Must(202, s.Do("POST", "/v1/users", map[string]any{"external_id": "async", "name": "A"}, "Prefer", "respond-async"))
	if a.Header.Get("Preference-Applied") != "respond-async" || a.Str("id") == "" || a.Header.Get("X-Arq-Position") == "" {
		t.Fatalf("async answer: %v %s", a.Header, a.Body)
	}
	got := s.Must(200, s.Do("GET", "/v1/users/"+a.Str("id"), nil, "X-Arq-Min-Position", a.Header.Get("X-Arq-Position")))
	if got.Str("name") != "A" {
		t.Fatalf("read after min position: %s", got.Body)
	}
	// A position the projections will not reach in time: 503, Retry-After.
	// A server of its own waits 500 ms for it; the reads above wait as
	// long as the suite's servers do, so a busy machine does not fail them.
	quick := testserver.Start(t, map[string]string{"ARQ_MIN_POSITION_TIMEOUT": "500ms"})
	far := quick.Do("GET", "/v1/users", nil, "X-Arq-Min-Position", "999999999999.1")
	isProblem(t, far, 503, "")
	if far.Header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	isProblem(t, s.Do("GET", "/v1/users", nil, "X-Arq-Min-Position", "garbage"), 400, "")
}

func TestEventsRecordRequestAndCaller(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, map[string]string{"ARQ_ADMIN_KEY": "admin-secret"})
	s.Key = "admin-secret"
	k := s.Must(201, s.Do("POST", "/v1/admin/keys", map[string]any{"name": "backend", "scopes": []string{"read", "write"}}))
	s.Key = k.Str("key")
	// A client's X-Request-ID is recorded apart from the server's id,
	// which alone is the events' correlation id: no client chooses the
	// audit trail's request ids.
	r := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "trace", "name": "T"}, "X-Request-ID", "req-trace-1"))
	id := r.Header.Get("X-Request-ID")
	if len(id) != 26 || r.Header.Get("X-Client-Request-ID") != "req-trace-1" {
		t.Fatalf("request ids answered: %v", r.Header)
	}
	gen := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "trace2", "name": "T"}))
	if len(gen.Header.Get("X-Request-ID")) != 26 || gen.Header.Get("X-Client-Request-ID") != "" {
		t.Fatalf("no request id made: %v", gen.Header)
	}
	pool := testdb.Pool(t, s.URL)
	var corr, client, actor string
	if err := pool.QueryRow(context.Background(), `SELECT metadata->>'correlation_id', metadata->>'client_request_id', metadata->>'actor' FROM events
		WHERE stream_id = 'user-' || $1`, r.Str("id")).Scan(&corr, &client, &actor); err != nil {
		t.Fatal(err)
	}
	if corr != id || client != "req-trace-1" || actor != "key:"+k.Str("id") {
		t.Fatalf("event metadata: correlation %q client request %q actor %q", corr, client, actor)
	}
	// The audit and the history show both, the client's apart.
	audit := s.Must(200, s.Do("GET", "/v1/users/"+r.Str("id")+"/audit", nil)).Items()
	if len(audit) != 2 { // user.registered, user.external_id_claimed
		t.Fatalf("audit: %v", audit)
	}
	for _, e := range audit {
		if md, _ := e["metadata"].(map[string]any); md["correlation_id"] != id || md["client_request_id"] != "req-trace-1" {
			t.Fatalf("audit entry: %v", e)
		}
	}
	h := s.Must(200, s.Do("GET", "/v1/users/"+r.Str("id")+"/history", nil)).Items()
	if len(h) != 1 || h[0]["request_id"] != id || h[0]["client_request_id"] != "req-trace-1" {
		t.Fatalf("history: %v", h)
	}
	// A client sending the server's id of another request gets its own.
	forged := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "trace3", "name": "T"}, "X-Request-ID", id))
	if forged.Header.Get("X-Request-ID") == id {
		t.Fatalf("a client chose the request id: %v", forged.Header)
	}
	if err := pool.QueryRow(context.Background(), `SELECT metadata->>'correlation_id' FROM events
		WHERE stream_id = 'user-' || $1`, forged.Str("id")).Scan(&corr); err != nil {
		t.Fatal(err)
	}
	if corr != forged.Header.Get("X-Request-ID") {
		t.Fatalf("correlation id %q, want the server's %q", corr, forged.Header.Get("X-Request-ID"))
	}
}

func TestAuthKeysAndScopes(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, map[string]string{"ARQ_ADMIN_KEY": "admin-secret"})
	isProblem(t, s.Do("GET", "/v1/users", nil), 401, "")
	s.Key = "wrong"
	isProblem(t, s.Do("GET", "/v1/users", nil), 401, "")
	s.Key = ""
	s.Must(200, s.Do("GET", "/healthz", nil))
	s.Must(200, s.Do("GET", "/openapi.json", nil))
	for _, path := range []string{"/healthz", "/readyz"} { // as load balancers probe
		if r := s.Do("HEAD", path, nil); r.Status != 200 || len(r.Body) != 0 {
			t.Fatalf("HEAD %s: %d %q", path, r.Status, r.Body)
		}
	}

	s.Key = "admin-secret"
	ro := s.Must(201, s.Do("POST", "/v1/admin/keys", map[string]any{"name": "reader", "scopes": []string{"read"}}))
	rw := s.Must(201, s.Do("POST", "/v1/admin/keys", map[string]any{"name": "writer", "scopes": []string{"read", "write"}}))
	isProblem(t, s.Do("POST", "/v1/admin/keys", map[string]any{"name": "x", "scopes": []string{"root"}}), 422, "scopes")
	if l := s.Must(200, s.Do("GET", "/v1/admin/keys", nil)); len(l.Items()) != 2 || strings.Contains(string(l.Body), ro.Str("key")) {
		t.Fatalf("key list: %s", l.Body)
	}
	pool := testdb.Pool(t, s.URL)
	var leaked int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM api_keys WHERE key_hash = $1 OR name = $1`, ro.Str("key")).Scan(&leaked); err != nil || leaked != 0 {
		t.Fatalf("a key's secret is stored: %d %v", leaked, err)
	}

	s.Key = ro.Str("key")
	s.Must(200, s.Do("GET", "/v1/users", nil))
	for _, path := range []string{"/v1/users", "/metrics", "/openapi.json"} { // HEAD wherever GET (RFC 9110)
		if r := s.Do("HEAD", path, nil); r.Status != 200 || len(r.Body) != 0 || r.Header.Get("Content-Type") == "" {
			t.Fatalf("HEAD %s: %d %v %q", path, r.Status, r.Header, r.Body)
		}
	}
	isProblem(t, s.Do("POST", "/v1/users", map[string]any{"external_id": "a", "name": "A"}), 403, "")
	s.Key = rw.Str("key")
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "a", "name": "A"})).Str("id")
	started := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{}))
	isProblem(t, s.Do("GET", "/v1/admin/keys", nil), 403, "")
	// The reads that take a body by POST need only the read scope.
	s.Key = ro.Str("key")
	s.Must(200, s.Do("POST", "/v1/users/"+uid+"/memories/search", map[string]any{"query": "tea"}))
	s.Must(200, s.Do("POST", "/v1/sessions/"+started.Str("id")+"/context", map[string]any{}))
	s.Must(200, s.Do("POST", "/v1/sessions/validate", map[string]any{"token": started.Str("token")}))
	isProblem(t, s.Do("POST", "/v1/sessions/"+started.Str("id")+"/context/snapshots", map[string]any{}), 403, "")
	s.Key = rw.Str("key")

	s.Key = "admin-secret"
	s.Must(204, s.Do("DELETE", "/v1/admin/keys/"+rw.Str("id"), nil))
	s.Key = rw.Str("key")
	isProblem(t, s.Do("GET", "/v1/users", nil), 401, "")
}

func TestMiddlewareHeaders(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, map[string]string{"ARQ_CORS_ORIGINS": "https://app.example"})
	r := s.Do("GET", "/v1/users", nil, "Origin", "https://app.example")
	if r.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Fatalf("allowed origin: %v", r.Header)
	}
	// A browser client may read the headers the API answers with.
	for _, h := range []string{"ETag", "X-Arq-Position", "Retry-After", "Idempotent-Replayed", "Preference-Applied", "X-Arq-Cache", "X-Arq-Session-Token"} {
		if !strings.Contains(strings.ToLower(r.Header.Get("Access-Control-Expose-Headers")), strings.ToLower(h)) {
			t.Errorf("%s not exposed: %q", h, r.Header.Get("Access-Control-Expose-Headers"))
		}
	}
	if r := s.Do("GET", "/v1/users", nil, "Origin", "https://evil.example"); r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("denied origin got CORS headers: %v", r.Header)
	}
	if !strings.HasPrefix(r.Header.Get("Server-Timing"), "app;dur=") || r.Header.Get("X-Request-ID") == "" {
		t.Fatalf("timing/request id headers: %v", r.Header)
	}
}

// Clients appending to one session at once all succeed, with gapless
// sequence numbers.
func TestConcurrentAppendsToOneSession(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "c", "name": "C"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	const clients, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan string, clients*each)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				raw, _ := json.Marshal(map[string]any{"role": "user", "content": fmt.Sprintf("client %d message %d", c, i)})
				req, _ := http.NewRequest("POST", s.Base+"/v1/sessions/"+sid+"/messages", strings.NewReader(string(raw)))
				req.Header.Set("Content-Type", "application/json")
				resp, err := s.Client().Do(req)
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
		p := s.Must(200, s.Do("GET", "/v1/sessions/"+sid+"/messages?limit=100&cursor="+cursor, nil))
		for _, it := range p.Items() {
			seen++
			if int(it["seq"].(float64)) != seen {
				t.Fatalf("message %d has seq %v", seen, it["seq"])
			}
		}
		if cursor = p.Str("next_cursor"); cursor == "" {
			break
		}
	}
	if seen != clients*each {
		t.Fatalf("%d messages, want %d", seen, clients*each)
	}
	if got := s.Must(200, s.Do("GET", "/v1/sessions/"+sid, nil)); got.Num("message_count") != clients*each {
		t.Fatalf("session message_count: %s", got.Body)
	}
}

// Background expiry records each expiry once, also with two servers on one
// database.
func TestExpiryIsRecordedOnce(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, map[string]string{"ARQ_EXPIRY_INTERVAL": "50ms"})
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "x", "name": "X"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{"ttl_seconds": 1})).Str("id")
	mid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "working", "content": "soon gone", "ttl_seconds": 1})).Str("id")
	second := testserver.StartOn(t, s.URL, map[string]string{"ARQ_EXPIRY_INTERVAL": "50ms"})
	_ = second
	pool := testdb.Pool(t, s.URL)
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
	if got := s.Must(200, s.Do("GET", "/v1/sessions/"+sid, nil)); got.Str("status") != "expired" {
		t.Fatalf("session: %s", got.Body)
	}
	isProblem(t, s.Do("GET", "/v1/memories/"+mid, nil), 404, "")
	isProblem(t, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "late"}), 409, "")
}

// A server decides a message append from the session it folded for the
// previous one; changes another server makes to the session in between
// must still count: an extension lets the append through, a close refuses
// it.
func TestMessageAppendSeesSessionChangesOfAnotherServer(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	other := testserver.StartOn(t, s.URL, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "two", "name": "Two"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{"ttl_seconds": 3600})).Str("id")
	msg := func(content string) testserver.Response {
		return s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": content})
	}
	s.Must(201, msg("first"))
	other.Must(200, other.Do("POST", "/v1/sessions/"+sid+"/extend", map[string]any{"ttl_seconds": 7200}))
	if seq := s.Must(201, msg("after the extension")).Num("seq"); seq != 2 {
		t.Fatalf("message after the extension has seq %v, want 2", seq)
	}
	other.Must(200, other.Do("POST", "/v1/sessions/"+sid+"/close", nil))
	isProblem(t, msg("after the close"), 409, "")
	if n := s.Must(200, s.Do("GET", "/v1/sessions/"+sid, nil)).Num("message_count"); n != 2 {
		t.Fatalf("message_count %v, want 2", n)
	}
}

// An id Postgres cannot hold as text (not UTF-8, or with a NUL byte) names
// nothing: every route with one answers 404, reads and commands alike, and
// appends nothing.
func TestIDsPostgresCannotHoldAreNotFound(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	for _, id := range []string{"%FF", "a%00b"} {
		for _, path := range []string{"/v1/messages/", "/v1/memories/", "/v1/sessions/", "/v1/users/",
			"/v1/context-snapshots/", "/v1/messages/%s/context", "/v1/sessions/%s/context", "/v1/sessions/%s/messages",
			"/v1/sessions/%s/context/snapshots", "/v1/users/%s/memories", "/v1/users/%s/sessions"} {
			if !strings.Contains(path, "%s") {
				path += "%s"
			}
			isProblem(t, s.Do("GET", fmt.Sprintf(path, id), nil), 404, "")
		}
		isProblem(t, s.Do("POST", "/v1/users/"+id+"/memories", map[string]any{"type": "semantic", "content": "x"}), 404, "")
		isProblem(t, s.Do("POST", "/v1/sessions/"+id+"/messages", map[string]any{"role": "user", "content": "x"}), 404, "")
	}
	counts, _ := s.Must(200, s.Do("GET", "/v1/stats", nil)).JSON["counts"].(map[string]any)
	if n, ok := counts["events"]; !ok || n != 0.0 {
		t.Fatalf("events after requests with bad ids: %v", counts)
	}
}

// A text Postgres cannot hold (the NUL character, \u0000) anywhere in a
// body or a query parameter is a 422 naming the field, and appends
// nothing.
func TestNULInTextIsInvalid(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "n", "name": "N"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	before := s.Must(200, s.Do("GET", "/v1/stats", nil)).JSON["counts"].(map[string]any)["events"]
	isProblem(t, s.Do("POST", "/v1/users", map[string]any{"external_id": "a\x00", "name": "B"}), 422, "external_id")
	isProblem(t, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "a\x00b"}), 422, "content")
	isProblem(t, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"messages": []map[string]any{
		{"role": "user", "content": "fine"}, {"role": "user", "content": "x", "metadata": map[string]any{"k": []any{"ok", "\x00"}}}}}), 422, "messages[1].metadata.k[1]")
	isProblem(t, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "x", "metadata": map[string]any{"a\x00": 1}}), 422, "metadata.a\x00")
	isProblem(t, s.Do("GET", "/v1/users/"+uid+"/memories?q=a%00b", nil), 422, "q")
	isProblem(t, s.Do("GET", "/v1/sessions/"+sid+"/context?query=%FF", nil), 422, "query")
	// A backslash followed by "u0000" is text like any other.
	s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": `a\u0000b`}))
	after := s.Must(200, s.Do("GET", "/v1/stats", nil)).JSON["counts"].(map[string]any)["events"]
	if after != before.(float64)+1 {
		t.Fatalf("events %v -> %v, want one more (the last message alone)", before, after)
	}
}

// Once a user is deleted, its sessions, messages and memories take no
// more writes: every command on one answers 404 and appends nothing (the
// commands guard the user's stream, so a deletion racing them wins too).
func TestADeletedUsersThingsTakeNoWrites(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "gone", "name": "G"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{"ttl_seconds": 3600})).Str("id")
	mid := s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "hello"})).Str("id")
	mem := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "likes tea"})).Str("id")
	// Folded before the deletion: a message append remembers the session
	// and its user, which must not let the next append through.
	s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "again"}))
	s.Must(204, s.Do("DELETE", "/v1/users/"+uid, nil))

	pool := testdb.Pool(t, s.URL)
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
		r := s.Do(c.method, c.path, c.body)
		if r.Status != 404 {
			t.Errorf("%s %s after the user's deletion: %d %s, want 404", c.method, c.path, r.Status, r.Body)
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
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "ttl", "name": "T"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	mem := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "x"})).Str("id")
	for _, ttl := range []int64{18446744074, 9300000000, 3153600001} {
		isProblem(t, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{"ttl_seconds": ttl}), 422, "ttl_seconds")
		isProblem(t, s.Do("POST", "/v1/sessions/"+sid+"/extend", map[string]any{"ttl_seconds": ttl}), 422, "ttl_seconds")
		isProblem(t, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "x", "ttl_seconds": ttl}), 422, "ttl_seconds")
		isProblem(t, s.Do("PATCH", "/v1/memories/"+mem, map[string]any{"ttl_seconds": ttl}), 422, "ttl_seconds")
	}
	century := int64(100 * 365 * 24 * 60 * 60)
	long := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{"ttl_seconds": century}))
	expires, err := time.Parse(time.RFC3339Nano, long.Str("expires_at"))
	if err != nil || expires.Before(time.Now().Add(99*365*24*time.Hour)) {
		t.Fatalf("a session of 100 years expires at %q (%v)", long.Str("expires_at"), err)
	}
}

// A client that gives up while its command waits for the query tables
// retries with the same key: the command was appended, so the retry gets
// the first answer (202) and appends nothing.
func TestIdempotentRetryAfterTheClientGaveUp(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "gave-up", "name": "G"})).Str("id")
	ctx := context.Background()
	pool := testdb.Pool(t, s.URL)
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
	testwait.Eventually(t, 10*time.Second, "the first request appended", func() (bool, error) { return stored() == 1, nil })
	var replayed *http.Response
	testwait.Eventually(t, 10*time.Second, "the first request answered", func() (bool, error) {
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
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "unknown", "name": "U"})).Str("id")
	ctx := context.Background()
	pool := testdb.Pool(t, s.URL)
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
	testwait.Eventually(t, 40*time.Second, "the server gave up on the append's outcome (503)", func() (bool, error) {
		m := s.Do("GET", "/metrics", nil)
		return strings.Contains(string(m.Body), `arq_http_requests_total{code="503",method="POST",route="/v1/users/:id/memories"}`), nil
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
	testwait.Eventually(t, 30*time.Second, "the held append written", func() (bool, error) { return stored() == 1, nil })
	testwait.Eventually(t, 30*time.Second, "the claim kept after the unknown outcome", claimKept)
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
	s := testserver.Start(t, map[string]string{"ARQ_ADMIN_KEY": "admin-secret"})
	s.Key = "admin-secret"
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "sec", "name": "S"})).Str("id")
	first := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{}, "Idempotency-Key", "start-1"))
	key := s.Must(201, s.Do("POST", "/v1/admin/keys", map[string]any{"name": "k", "scopes": []string{"read"}}, "Idempotency-Key", "key-1"))
	token, secret := first.Str("token"), key.Str("key")
	if !strings.HasPrefix(token, "arqs_") || first.Header.Get("X-Arq-Session-Token") != token || !strings.HasPrefix(secret, "arqk_") {
		t.Fatalf("first answers: %s %v / %s", first.Body, first.Header, key.Body)
	}
	pool := testdb.Pool(t, s.URL)
	var kept int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM idempotency_keys
		WHERE position(convert_to($1::text, 'UTF8') IN body) > 0 OR position(convert_to($2::text, 'UTF8') IN body) > 0
			OR headers::text LIKE '%' || $1::text || '%'`,
		token, secret).Scan(&kept); err != nil || kept != 0 {
		t.Fatalf("%d kept answers hold a secret (%v)", kept, err)
	}
	again := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{}, "Idempotency-Key", "start-1"))
	if again.Header.Get("Idempotent-Replayed") != "true" || again.Str("id") != first.Str("id") ||
		again.JSON["token"] != nil || again.Header.Get("X-Arq-Session-Token") != "" {
		t.Fatalf("replayed start: %s %v", again.Body, again.Header)
	}
	if k := s.Must(201, s.Do("POST", "/v1/admin/keys", map[string]any{"name": "k", "scopes": []string{"read"}}, "Idempotency-Key", "key-1")); k.Str("id") != key.Str("id") || k.JSON["key"] != nil {
		t.Fatalf("replayed key: %s", k.Body)
	}
	// The token still opens the session: only the kept answer lost it.
	s.Must(200, s.Do("POST", "/v1/sessions/validate", map[string]any{"token": token}))

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
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "types", "name": "T"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
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
		r := s.Do("POST", c.path, c.body)
		isProblem(t, r, 422, c.field)
		if !strings.Contains(string(r.Body), c.says) || strings.Contains(string(r.Body), "interface") || strings.Contains(string(r.Body), "float64") {
			t.Errorf("%s: %s, want %q", c.body, r.Body, c.says)
		}
	}
	if n := s.Must(200, s.Do("GET", "/v1/sessions/"+sid+"/messages", nil)).Items(); len(n) != 0 {
		t.Fatalf("%d messages appended from bad bodies", len(n))
	}
	// NaN is no number from 0 to 1.
	isProblem(t, s.Do("GET", "/v1/users/"+uid+"/memories?min_importance=NaN", nil), 422, "min_importance")
}

// If-Match is read as RFC 9110 says: a list of ETags matches when any of
// them is the current version; a weak ETag never matches (the comparison
// is strong); "*" matches any; a header that is no list of ETags is 400.
func TestIfMatchComparesStrongETags(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "etag", "name": "E"})).Str("id")
	patch := func(ifMatch string) testserver.Response {
		return s.Do("PATCH", "/v1/users/"+uid, map[string]any{"name": "E" + ifMatch}, "If-Match", ifMatch)
	}
	s.Must(200, patch(`"7", "1"`)) // now at version 2
	isProblem(t, patch(`W/"2"`), 412, "")
	isProblem(t, patch(`"1", W/"2"`), 412, "")
	isProblem(t, patch(`2`), 400, "")
	isProblem(t, patch(`garbage`), 400, "")
	isProblem(t, patch(`"2`), 400, "")
	s.Must(200, patch(`"2"`))
	s.Must(200, patch(`*`))
	if v := s.Must(200, s.Do("GET", "/v1/users/"+uid, nil)).Num("version"); v != 4 {
		t.Fatalf("version %v after three matching PATCHes, want 4", v)
	}
}

// A command that changes nothing still names a position, the log's last
// event, and its answer is no older than the log it decided from (here,
// a change answered asynchronously just before).
func TestNoOpCommandAnswersFromTheLogItDecidedFrom(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "noop", "name": "A"})).Str("id")
	s.Must(202, s.Do("PATCH", "/v1/users/"+uid, map[string]any{"name": "B"}, "Prefer", "respond-async"))
	same := s.Must(200, s.Do("PATCH", "/v1/users/"+uid, map[string]any{"name": "B"}))
	if same.Header.Get("X-Arq-Position") == "" || same.Str("name") != "B" || same.Num("version") != 2 {
		t.Fatalf("no-op PATCH: %s %v", same.Body, same.Header)
	}
}

// A memory's source session and message must be the user's own and
// exist (found in the log, so an append answered asynchronously a moment
// ago counts); ids are kept in canonical form; nothing else is stored.
func TestMemorySourcesAreTheUsersOwn(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	ada := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "src-a", "name": "A"})).Str("id")
	bob := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "src-b", "name": "B"})).Str("id")
	adaSession := s.Must(201, s.Do("POST", "/v1/users/"+ada+"/sessions", map[string]any{})).Str("id")
	bobSession := s.Must(201, s.Do("POST", "/v1/users/"+bob+"/sessions", map[string]any{})).Str("id")
	adaMsg := s.Must(202, s.Do("POST", "/v1/sessions/"+adaSession+"/messages", map[string]any{"role": "user", "content": "hi"}, "Prefer", "respond-async")).Str("id")
	bobMsg := s.Must(201, s.Do("POST", "/v1/sessions/"+bobSession+"/messages", map[string]any{"role": "user", "content": "hi"})).Str("id")
	store := func(source map[string]any) testserver.Response {
		body := map[string]any{"type": "episodic", "content": "said hi"}
		for k, v := range source {
			body[k] = v
		}
		return s.Do("POST", "/v1/users/"+ada+"/memories", body)
	}
	events := eventCount(t, s)
	isProblem(t, store(map[string]any{"source_session_id": bobSession}), 422, "source_session_id")
	isProblem(t, store(map[string]any{"source_session_id": "01M89VB9XHPWV2SCAB0P286JT9"}), 422, "source_session_id")
	isProblem(t, store(map[string]any{"source_message_id": bobMsg}), 422, "source_message_id")
	isProblem(t, store(map[string]any{"source_session_id": adaSession, "source_message_id": bobMsg}), 422, "source_message_id")
	if n := eventCount(t, s); n != events {
		t.Fatalf("refused sources appended %d events", n-events)
	}
	m := s.Must(201, store(map[string]any{"source_session_id": strings.ToLower(adaSession), "source_message_id": adaMsg}))
	if m.Str("source_session_id") != adaSession || m.Str("source_message_id") != adaMsg {
		t.Fatalf("stored sources: %s", m.Body)
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
func storeOnce(s *testserver.Server, uid, key string, timeout time.Duration) (*http.Response, error) {
	req, err := http.NewRequest("POST", s.Base+"/v1/users/"+uid+"/memories", strings.NewReader(`{"type":"semantic","content":"stored once"}`))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	c := s.Client()
	c.Timeout = timeout
	return c.Do(req)
}
