package e2e

import (
	"fmt"
	"github.com/arq-memory/arq/internal/testserver"
	"slices"
	"strings"
	"testing"
	"time"
)

// The reads sent by POST (session validation, memory search, context)
// ignore an Idempotency-Key: a second read with the same key is answered
// afresh, never replayed from the first.
func TestReadPostsIgnoreIdempotencyKey(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "idem-reads", "name": "R"})).Str("id")
	sess := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{"title": "t"}))
	sid, token := sess.Str("id"), sess.Str("token")

	s.Must(200, s.Do("POST", "/v1/sessions/validate", map[string]any{"token": token}, "Idempotency-Key", "v-1"))
	s.Must(200, s.Do("POST", "/v1/sessions/"+sid+"/close", nil))
	again := s.Do("POST", "/v1/sessions/validate", map[string]any{"token": token}, "Idempotency-Key", "v-1")
	if again.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("validation replayed: %v %s", again.Header, again.Body)
	}
	isProblem(t, again, 401, "")

	search := map[string]any{"query": "violets"}
	if hits := s.Must(200, s.Do("POST", "/v1/users/"+uid+"/memories/search", search, "Idempotency-Key", "s-1")); len(hits.Items()) != 0 {
		t.Fatalf("search before any memory: %s", hits.Body)
	}
	s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "R grows violets"}))
	hits := s.Must(200, s.Do("POST", "/v1/users/"+uid+"/memories/search", search, "Idempotency-Key", "s-1"))
	if hits.Header.Get("Idempotent-Replayed") != "" || len(hits.Items()) != 1 {
		t.Fatalf("search after a memory was stored: %v %s", hits.Header, hits.Body)
	}

	window := map[string]any{"max_tokens": 500}
	s.Must(200, s.Do("POST", "/v1/sessions/"+sid+"/context", window, "Idempotency-Key", "c-1"))
	w := s.Must(200, s.Do("POST", "/v1/sessions/"+sid+"/context", window, "Idempotency-Key", "c-1"))
	if w.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("context window replayed: %v", w.Header)
	}

	for _, path := range []string{"/v1/sessions/validate", "/v1/users/{id}/memories/search", "/v1/sessions/{id}/context"} {
		if hasParameter(openAPIOperation(t, s, "post", path), "Idempotency-Key") {
			t.Errorf("the OpenAPI document offers Idempotency-Key on POST %s", path)
		}
	}
	if !hasParameter(openAPIOperation(t, s, "post", "/v1/users"), "Idempotency-Key") {
		t.Error("the OpenAPI document lost Idempotency-Key on POST /v1/users")
	}
}

// openAPIOperation is the operation the document served at /openapi.json
// has for method and path.
func openAPIOperation(t *testing.T, s *testserver.Server, method, path string) map[string]any {
	t.Helper()
	doc := s.Must(200, s.Do("GET", "/openapi.json", nil))
	paths, _ := doc.JSON["paths"].(map[string]any)
	item, _ := paths[path].(map[string]any)
	op, _ := item[method].(map[string]any)
	if op == nil {
		t.Fatalf("no %s %s in the OpenAPI document", method, path)
	}
	return op
}

// hasParameter tells whether the operation takes the parameter.
func hasParameter(op map[string]any, name string) bool {
	params, _ := op["parameters"].([]any)
	for _, p := range params {
		if m, _ := p.(map[string]any); m["name"] == name {
			return true
		}
	}
	return false
}

// Session validation, a read sent by POST, honours X-Arq-Min-Position as
// the other reads do: it waits for the position, and answers 503 with
// Retry-After when the projections do not reach it in time.
func TestValidateHonoursMinPosition(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, map[string]string{"ARQ_MIN_POSITION_TIMEOUT": "300ms"})
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "minpos", "name": "M"})).Str("id")
	token := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{"title": "t"})).Str("token")

	far := s.Do("POST", "/v1/sessions/validate", map[string]any{"token": token}, "X-Arq-Min-Position", "999999999999.1")
	isProblem(t, far, 503, "")
	if far.Header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	isProblem(t, s.Do("POST", "/v1/sessions/validate", map[string]any{"token": token}, "X-Arq-Min-Position", "garbage"), 400, "")

	// Closed without waiting: a validation that waits for the close sees
	// it (on a server whose bound the suite's load does not outrun).
	s2 := testserver.Start(t, nil)
	uid2 := s2.Must(201, s2.Do("POST", "/v1/users", map[string]any{"external_id": "minpos", "name": "M"})).Str("id")
	sess := s2.Must(201, s2.Do("POST", "/v1/users/"+uid2+"/sessions", map[string]any{"title": "u"}))
	closed := s2.Must(202, s2.Do("POST", "/v1/sessions/"+sess.Str("id")+"/close", nil, "Prefer", "respond-async"))
	isProblem(t, s2.Do("POST", "/v1/sessions/validate", map[string]any{"token": sess.Str("token")}, "X-Arq-Min-Position", closed.Header.Get("X-Arq-Position")), 401, "")

	for _, path := range []string{"/v1/sessions/validate", "/v1/users/{id}/memories/search", "/v1/sessions/{id}/context"} {
		if !hasParameter(openAPIOperation(t, s, "post", path), "X-Arq-Min-Position") {
			t.Errorf("the OpenAPI document does not offer X-Arq-Min-Position on POST %s", path)
		}
	}
}

// If-Match is an RFC 9110 list: entity tags separated by commas, with
// optional whitespace and empty elements; tags side by side without a
// comma, text after a tag, characters an entity tag cannot hold, or "*"
// within a list are no list of ETags, a 400 that changes nothing.
func TestIfMatchNeedsCommas(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "commas", "name": "C"})).Str("id")
	patch := func(ifMatch, name string) testserver.Response {
		return s.Do("PATCH", "/v1/users/"+uid, map[string]any{"name": name}, "If-Match", ifMatch)
	}
	for i, h := range []string{`"9""1"`, `"1" "2"`, `"1"x`, `"1";`, `* , "1"`, `"1", *`, `"a b"`, `W/ "1"`, `w/"1"`, ``, ` , `} {
		isProblem(t, patch(h, fmt.Sprintf("bad %d", i)), 400, "")
	}
	s.Must(200, patch(` ,"7" ,	"1",`, "two"))         // empty elements and whitespace: version 2
	s.Must(200, patch(`W/"1", "x!#~", "2"`, "three")) // version 3
	if u := s.Must(200, s.Do("GET", "/v1/users/"+uid, nil)); u.Num("version") != 3 || u.Str("name") != "three" {
		t.Fatalf("after two matching PATCHes: %s", u.Body)
	}
	// Entity tags compare character by character: "03" is not "3".
	isProblem(t, patch(`"03", "+3"`, "four"), 412, "")
}

// The authentication scheme is case-insensitive (RFC 9110 §11.1), and one
// or more spaces may separate it from the key.
func TestBearerSchemeIsCaseInsensitive(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, map[string]string{"ARQ_ADMIN_KEY": "admin-secret"})
	for _, h := range []string{"Bearer admin-secret", "bearer admin-secret", "BEARER admin-secret", "bEaReR  admin-secret"} {
		s.Must(200, s.Do("GET", "/v1/users", nil, "Authorization", h))
	}
	for _, h := range []string{"Basic admin-secret", "Bearer", "Bearer ", "Bearerx admin-secret", "admin-secret", "bearer other-secret"} {
		isProblem(t, s.Do("GET", "/v1/users", nil, "Authorization", h), 401, "")
	}
}

// A body must be a JSON object: null is refused as [] and "str" are, a
// 400 that changes nothing, on every route that takes a body.
func TestNullBodyIsNoObject(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "null", "name": "N"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	mid := s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "hi"})).Str("id")
	memid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "N"})).Str("id")
	for _, r := range []struct{ method, path string }{
		{"PATCH", "/v1/users/" + uid}, {"PATCH", "/v1/messages/" + mid}, {"PATCH", "/v1/memories/" + memid},
		{"POST", "/v1/users"}, {"POST", "/v1/sessions/" + sid + "/messages"}, {"POST", "/v1/sessions/validate"},
	} {
		for _, body := range []string{`null`, " null\n", `[]`, `"str"`} {
			p := s.Do(r.method, r.path, body)
			isProblem(t, p, 400, "")
			if p.Str("type") != "https://arq.dev/problems/bad-json" {
				t.Errorf("%s %s with %q: %s", r.method, r.path, body, p.Body)
			}
		}
	}
	for _, path := range []string{"/v1/users/" + uid, "/v1/messages/" + mid, "/v1/memories/" + memid} {
		if v := s.Must(200, s.Do("GET", path, nil)).Num("version"); v != 1 {
			t.Errorf("%s at version %v after refused PATCHes, want 1", path, v)
		}
	}
}

// GET /v1/events negotiates its format as RFC 9110 §12.5.1 says: media
// types compare without regard to case, the highest q-value wins, a more
// specific range outranks a wider one, q=0 refuses; without a preference,
// or with none ARQ serves, the answer is a JSON page.
func TestEventsNegotiateWithQValues(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "accept", "name": "A"}))
	for accept, want := range map[string]string{
		"":                            "application/json",
		"application/x-ndjson":        "application/x-ndjson",
		"APPLICATION/X-NDJSON":        "application/x-ndjson",
		"Application/X-Ndjson; Q=0.7": "application/x-ndjson",
		"application/json, application/x-ndjson;q=0.5":       "application/json",
		"application/x-ndjson;q=0.9, application/json;q=0.1": "application/x-ndjson",
		"application/x-ndjson, application/json":             "application/x-ndjson",
		"application/x-ndjson, */*;q=0.1":                    "application/x-ndjson",
		"*/*":                                                "application/json",
		"application/*":                                      "application/json",
		"application/x-ndjson;q=0":                           "application/json",
		"*/*, application/json;q=0":                          "application/x-ndjson",
		"application/*;q=0.2, application/x-ndjson;q=0.3":    "application/x-ndjson",
		"text/html":                                          "application/json",
	} {
		r := s.Must(200, s.Do("GET", "/v1/events?limit=5", nil, "Accept", accept))
		if got, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); got != want {
			t.Errorf("Accept %q: %s, want %s", accept, got, want)
		}
	}
}

// A message append answered 202 names each message's id and seq, as the
// answer found after a crash does: a single message by its own id too,
// a batch with the session's id and every message.
func TestAsyncAppendNamesEveryMessage(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "async-batch", "name": "A"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	appended := func(r testserver.Response) []map[string]any {
		raw, _ := r.JSON["messages"].([]any)
		out := make([]map[string]any, len(raw))
		for i, m := range raw {
			out[i], _ = m.(map[string]any)
		}
		return out
	}

	one := s.Must(202, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "one"}, "Prefer", "respond-async"))
	if m := appended(one); one.Str("id") == "" || len(m) != 1 || m[0]["id"] != one.Str("id") || m[0]["seq"] != 1.0 {
		t.Fatalf("async single append: %s", one.Body)
	}
	batch := s.Must(202, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"messages": []map[string]any{
		{"role": "assistant", "content": "two"}, {"role": "user", "content": "three"},
	}}, "Prefer", "respond-async"))
	m := appended(batch)
	if batch.Str("id") != sid || len(m) != 2 || m[0]["seq"] != 2.0 || m[1]["seq"] != 3.0 {
		t.Fatalf("async batch append: %s", batch.Body)
	}
	for i, want := range []string{"two", "three"} {
		id, _ := m[i]["id"].(string)
		got := s.Must(200, s.Do("GET", "/v1/messages/"+id, nil, "X-Arq-Min-Position", batch.Header.Get("X-Arq-Position")))
		if got.Str("content") != want || got.Num("seq") != float64(i+2) {
			t.Fatalf("message %s: %s", id, got.Body)
		}
	}
}

// The OpenAPI document describes what the API answers: a batch append's
// 201 is {"messages": [...]}, a single one a Message; a session read as of
// a time after its user's deletion has the status "deleted".
func TestOpenAPIDescribesBatchAppendsAndDeletedSessions(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	doc := s.Must(200, s.Do("GET", "/openapi.json", nil))
	components, _ := doc.JSON["components"].(map[string]any)
	schemas, _ := components["schemas"].(map[string]any)
	resolve := func(schema any) map[string]any {
		m, _ := schema.(map[string]any)
		if ref, ok := m["$ref"].(string); ok {
			m, _ = schemas[strings.TrimPrefix(ref, "#/components/schemas/")].(map[string]any)
		}
		return m
	}

	op := openAPIOperation(t, s, "post", "/v1/sessions/{id}/messages")
	responses, _ := op["responses"].(map[string]any)
	created, _ := responses["201"].(map[string]any)
	content, _ := created["content"].(map[string]any)
	media, _ := content["application/json"].(map[string]any)
	alternatives, _ := resolve(media["schema"])["oneOf"].([]any)
	var single, batch bool
	for _, a := range alternatives {
		ref, _ := a.(map[string]any)
		alt := resolve(a)
		props, _ := alt["properties"].(map[string]any)
		messages, _ := props["messages"].(map[string]any)
		items, _ := messages["items"].(map[string]any)
		single = single || ref["$ref"] == "#/components/schemas/Message"
		batch = batch || items["$ref"] == "#/components/schemas/Message" && fmt.Sprint(alt["required"]) == "[messages]"
	}
	if !single || !batch {
		t.Fatalf("201 of a message append: %v (single %v, batch %v)", media["schema"], single, batch)
	}

	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "gone", "name": "G"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	s.Must(204, s.Do("DELETE", "/v1/users/"+uid, nil))
	after := time.Now().UTC().Format(time.RFC3339Nano)
	status := s.Must(200, s.Do("GET", "/v1/sessions/"+sid+"?as_of="+after, nil)).Str("status")
	props, _ := resolve(map[string]any{"$ref": "#/components/schemas/Session"})["properties"].(map[string]any)
	enum, _ := props["status"].(map[string]any)["enum"].([]any)
	if status != "deleted" || !slices.Contains(enum, any(status)) {
		t.Fatalf("status %q read as of %s; the document's statuses: %v", status, after, enum)
	}
}

// Context snapshots and API keys have the fields of every resource: id,
// version, created_at and updated_at. Neither changes once made (a
// snapshot is a record; a revoked key leaves every answer), so each is at
// version 1, updated when it was created.
func TestSnapshotsAndKeysAreResources(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, map[string]string{"ARQ_ADMIN_KEY": "admin-secret"})
	s.Key = "admin-secret"
	isResource := func(what string, m map[string]any) {
		t.Helper()
		id, _ := m["id"].(string)
		created, _ := m["created_at"].(string)
		if len(id) != 26 || m["version"] != 1.0 || created == "" || m["updated_at"] != created {
			t.Errorf("%s: id %v, version %v, created_at %v, updated_at %v", what, m["id"], m["version"], m["created_at"], m["updated_at"])
		}
	}

	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "snap", "name": "S"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "hello"}))
	snap := s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/context/snapshots", map[string]any{"max_tokens": 100}))
	isResource("snapshot taken", snap.JSON)
	isResource("snapshot read", s.Must(200, s.Do("GET", "/v1/context-snapshots/"+snap.Str("id"), nil)).JSON)
	for _, it := range s.Must(200, s.Do("GET", "/v1/sessions/"+sid+"/context/snapshots", nil)).Items() {
		isResource("snapshot listed", it)
	}

	key := s.Must(201, s.Do("POST", "/v1/admin/keys", map[string]any{"name": "reader", "scopes": []string{"read"}}))
	isResource("key created", key.JSON)
	keys := s.Must(200, s.Do("GET", "/v1/admin/keys", nil)).Items()
	if len(keys) != 1 {
		t.Fatalf("%d keys listed, want 1", len(keys))
	}
	isResource("key listed", keys[0])
}
