package e2e

import (
	"github.com/arq-memory/arq/internal/testserver"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// problemFields maps each field a 422 names to its message.
func problemFields(t *testing.T, r testserver.Response) map[string]string {
	t.Helper()
	isProblem(t, r, 422, "")
	out := map[string]string{}
	errs, _ := r.JSON["errors"].([]any)
	for _, e := range errs {
		f, _ := e.(map[string]any)
		field, _ := f["field"].(string)
		msg, _ := f["message"].(string)
		out[field] = msg
	}
	return out
}

// wantFields fails unless the 422 r names exactly the fields of want, each
// with a message holding want's text.
func wantFields(t *testing.T, r testserver.Response, want map[string]string) {
	t.Helper()
	got := problemFields(t, r)
	if len(got) != len(want) {
		t.Fatalf("fields %v, want %v: %s", got, want, r.Body)
	}
	for f, msg := range want {
		if m, ok := got[f]; !ok || !strings.Contains(m, msg) {
			t.Fatalf("field %q: %q, want a message with %q: %s", f, m, msg, r.Body)
		}
	}
}

// A body's field names match exactly: a key that differs from a field only
// by case is an unknown field, named in the 422 with the others, at any
// depth where the body maps to a request's fields.
func TestFieldNamesAreCaseSensitive(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "ada", "name": "Ada"})).Str("id")

	// Before: 201, storing content "b" (CONTENT and content both matched
	// the field, the last won) with type and importance from Type and
	// Importance.
	r := s.Do("POST", "/v1/users/"+uid+"/memories", `{"Type":"semantic","CONTENT":"a","content":"b","Importance":0.9}`)
	wantFields(t, r, map[string]string{
		"Type":       "is not a field of this request",
		"CONTENT":    "is not a field of this request",
		"Importance": "is not a field of this request",
	})

	// Unknown fields that match nothing are named with them.
	r = s.Do("POST", "/v1/users", `{"external_id":"bob","Name":"Bob","nick":"b"}`)
	wantFields(t, r, map[string]string{"Name": "not a field", "nick": "not a field"})

	// Each message of a batch maps to a message's fields.
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{"title": "chat"})).Str("id")
	r = s.Do("POST", "/v1/sessions/"+sid+"/messages", `{"messages":[{"role":"user","content":"a"},{"Role":"user","content":"b"}]}`)
	wantFields(t, r, map[string]string{"messages[1].Role": "not a field"})

	// Metadata is the client's: its keys are data, and keys differing by
	// case are distinct and kept.
	m := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", `{"type":"semantic","content":"c","metadata":{"k":1,"K":2,"Content":{"x":1,"X":2}}}`))
	md, _ := m.JSON["metadata"].(map[string]any)
	inner, _ := md["Content"].(map[string]any)
	if md["k"] != float64(1) || md["K"] != float64(2) || inner["x"] != float64(1) || inner["X"] != float64(2) {
		t.Fatalf("metadata %v, want k, K, Content.x and Content.X kept apart: %s", md, m.Body)
	}

	// What is not JSON is still a 400, unknown fields or not.
	isProblem(t, s.Do("POST", "/v1/users/"+uid+"/memories", `{"Type":"semantic","content":`), 400, "")
}

// A key given twice in one object is a 422 naming it, where encoding/json
// would keep the last value: in a request's fields, in each message of a
// batch, and in metadata (keys there are data, but which value a client
// meant is unknown).
func TestDuplicateKeysAreRefused(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "ada", "name": "Ada"})).Str("id")
	mem := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "a", "importance": 0.1}))
	mid := mem.Str("id")

	// Before: 200, importance 0.6.
	r := s.Do("PATCH", "/v1/memories/"+mid, `{"importance":0.5,"importance":0.6}`, "If-Match", `"1"`)
	wantFields(t, r, map[string]string{"importance": "is given twice"})
	got := s.Must(200, s.Do("GET", "/v1/memories/"+mid, nil))
	if got.Num("importance") != 0.1 || got.Num("version") != 1 {
		t.Fatalf("a refused PATCH changed the memory: %s", got.Body)
	}

	// Given three times, it is named once.
	r = s.Do("POST", "/v1/users/"+uid+"/memories", `{"type":"semantic","content":"a","content":"b","content":"c"}`)
	wantFields(t, r, map[string]string{"content": "is given twice"})

	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{"title": "chat"})).Str("id")
	r = s.Do("POST", "/v1/sessions/"+sid+"/messages", `{"messages":[{"role":"user","content":"a","content":"b"}]}`)
	wantFields(t, r, map[string]string{"messages[0].content": "is given twice"})

	r = s.Do("POST", "/v1/users/"+uid+"/memories", `{"type":"semantic","content":"a","metadata":{"k":1,"k":2,"n":{"x":1,"x":2}}}`)
	wantFields(t, r, map[string]string{"metadata.k": "is given twice", "metadata.n.x": "is given twice"})
	r = s.Do("PATCH", "/v1/users/"+uid, `{"metadata":{"plan":"pro","plan":"free"}}`, "If-Match", `"1"`)
	wantFields(t, r, map[string]string{"metadata.plan": "is given twice"})
}

// declaredFields maps the properties the OpenAPI document declares for the
// 200 of GET path (a template, "/v1/users/{id}") to their schemas,
// through $ref and allOf.
func declaredFields(t *testing.T, s *testserver.Server, path string) map[string]map[string]any {
	t.Helper()
	doc := s.Must(200, s.Do("GET", "/openapi.json", nil))
	components, _ := doc.JSON["components"].(map[string]any)
	schemas, _ := components["schemas"].(map[string]any)
	op := openAPIOperation(t, s, "get", path)
	responses, _ := op["responses"].(map[string]any)
	ok, _ := responses["200"].(map[string]any)
	content, _ := ok["content"].(map[string]any)
	media, _ := content["application/json"].(map[string]any)
	out := map[string]map[string]any{}
	var walk func(schema any)
	walk = func(schema any) {
		m, _ := schema.(map[string]any)
		if ref, isRef := m["$ref"].(string); isRef {
			m, _ = schemas[strings.TrimPrefix(ref, "#/components/schemas/")].(map[string]any)
		}
		all, _ := m["allOf"].([]any)
		for _, part := range all {
			walk(part)
		}
		props, _ := m["properties"].(map[string]any)
		for k, p := range props {
			out[k], _ = p.(map[string]any)
		}
	}
	walk(media["schema"])
	if len(out) == 0 {
		t.Fatalf("GET %s declares no fields: %v", path, media)
	}
	return out
}

// A read of an entity, live or of its past (?version=, ?as_of=), answers
// only fields its OpenAPI schema declares, with values its enums allow;
// the fields only the past has (deleted, redacted, deleted_with_user) are
// described there.
func TestTimeTravelAnswersAreDeclared(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "ada", "name": "Ada"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{"title": "chat"})).Str("id")
	msg := s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "tea please"})).Str("id")
	gone := s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "my card number"})).Str("id")
	s.Must(204, s.Do("DELETE", "/v1/messages/"+gone, nil, "If-Match", `"1"`))
	mem := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "Ada likes tea"})).Str("id")

	type read struct {
		template, path string
		want           map[string]any // values the read must have
	}
	check := func(reads []read) {
		t.Helper()
		for _, r := range reads {
			declared := declaredFields(t, s, r.template)
			got := s.Must(200, s.Do("GET", r.path, nil))
			for k, v := range got.JSON {
				schema, ok := declared[k]
				if !ok {
					t.Errorf("GET %s answers %q, which the schema of GET %s does not declare: %s", r.path, k, r.template, got.Body)
					continue
				}
				if enum, isEnum := schema["enum"].([]any); isEnum && !slices.Contains(enum, v) {
					t.Errorf("GET %s answers %s %v, not one of %v", r.path, k, v, enum)
				}
				if _, past := r.want[k]; past {
					if d, _ := schema["description"].(string); d == "" {
						t.Errorf("%s of GET %s has no description of when it appears", k, r.template)
					}
				}
			}
			for k, want := range r.want {
				if got.JSON[k] != want {
					t.Errorf("GET %s: %s is %v, want %v: %s", r.path, k, got.JSON[k], want, got.Body)
				}
			}
		}
	}
	user, session, message, memory := "/v1/users/{id}", "/v1/sessions/{id}", "/v1/messages/{id}", "/v1/memories/{id}"
	check([]read{
		{user, "/v1/users/" + uid, nil},
		{session, "/v1/sessions/" + sid, nil},
		{message, "/v1/messages/" + msg, nil},
		{memory, "/v1/memories/" + mem, nil},
		{message, "/v1/messages/" + gone + "?version=2", map[string]any{"redacted": true}},
	})

	s.Must(204, s.Do("DELETE", "/v1/users/"+uid, nil))
	after := url.QueryEscape(time.Now().UTC().Format(time.RFC3339Nano))
	check([]read{
		{user, "/v1/users/" + uid + "?version=1", map[string]any{"deleted": false}},
		{user, "/v1/users/" + uid + "?as_of=" + after, map[string]any{"deleted": true}},
		{session, "/v1/sessions/" + sid + "?version=1", nil},
		{session, "/v1/sessions/" + sid + "?as_of=" + after, map[string]any{"deleted_with_user": true, "status": "deleted"}},
		{message, "/v1/messages/" + msg + "?version=1", map[string]any{"redacted": false}},
		{message, "/v1/messages/" + msg + "?as_of=" + after, map[string]any{"deleted_with_user": true, "redacted": false}},
		{memory, "/v1/memories/" + mem + "?version=1", map[string]any{"deleted": false}},
		{memory, "/v1/memories/" + mem + "?as_of=" + after, map[string]any{"deleted_with_user": true, "deleted": true}},
	})
}
