package e2e

import (
	"github.com/arq-memory/arq/internal/testserver"
	"net/url"
	"testing"
	"time"
)

// History lists every change of an entity with actor and request id, also
// after it was deleted; ?version= and ?as_of= return each past state.
func TestHistoryAndTimeTravel(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "h", "name": "Hedy"}, "X-Request-ID", "req-register")).Str("id")
	s.Must(200, s.Do("PATCH", "/v1/users/"+uid, map[string]any{"name": "Hedy L."}, "X-Request-ID", "req-rename"))

	mid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "one"})).Str("id")
	s.Must(200, s.Do("PATCH", "/v1/memories/"+mid, map[string]any{"content": "two"}, "X-Request-ID", "req-two"))
	between := time.Now().UTC()
	s.Must(200, s.Do("PATCH", "/v1/memories/"+mid, map[string]any{"content": "three", "importance": 0.9}))
	s.Must(204, s.Do("DELETE", "/v1/memories/"+mid, nil, "X-Request-ID", "req-delete"))
	s.Must(404, s.Do("GET", "/v1/memories/"+mid, nil))

	h := s.Must(200, s.Do("GET", "/v1/memories/"+mid+"/history", nil)).Items()
	if len(h) != 4 || h[0]["event_type"] != "memory.stored" || h[3]["event_type"] != "memory.deleted" {
		t.Fatalf("memory history: %v", h)
	}
	ch, _ := h[1]["changes"].(map[string]any)
	content, _ := ch["content"].(map[string]any)
	if content["before"] != "one" || content["after"] != "two" || h[1]["client_request_id"] != "req-two" || len(h[1]["request_id"].(string)) != 26 || h[1]["actor"] != "anonymous" {
		t.Fatalf("second event of the memory: %v", h[1])
	}
	if _, ok := ch["importance"]; ok {
		t.Fatalf("a change that did not happen: %v", ch)
	}
	if h[3]["client_request_id"] != "req-delete" || h[2]["client_request_id"] != nil {
		t.Fatalf("delete event: %v", h[3])
	}

	for v, want := range map[string]string{"1": "one", "2": "two", "3": "three"} {
		r := s.Must(200, s.Do("GET", "/v1/memories/"+mid+"?version="+v, nil))
		if r.Str("content") != want || r.Header.Get("ETag") != `"`+v+`"` {
			t.Fatalf("version %s: %s", v, r.Body)
		}
		if src, ok := r.JSON["source_message_id"]; !ok || src != nil { // null, as live reads answer
			t.Fatalf("version %s: source_message_id %v", v, src)
		}
	}
	if r := s.Must(200, s.Do("GET", "/v1/memories/"+mid+"?as_of="+url.QueryEscape(between.Format(time.RFC3339Nano)), nil)); r.Str("content") != "two" {
		t.Fatalf("as of %s: %s", between, r.Body)
	}
	s.Must(404, s.Do("GET", "/v1/memories/"+mid+"?version=9", nil))
	s.Must(404, s.Do("GET", "/v1/memories/"+mid+"?as_of=2000-01-01T00:00:00Z", nil))
	isProblem(t, s.Do("GET", "/v1/memories/"+mid+"?version=zero", nil), 422, "version")
	isProblem(t, s.Do("GET", "/v1/memories/"+mid+"?as_of=yesterday", nil), 422, "as_of")

	if r := s.Must(200, s.Do("GET", "/v1/users/"+uid+"?version=1", nil)); r.Str("name") != "Hedy" {
		t.Fatalf("user at version 1: %s", r.Body)
	}
	uh := s.Must(200, s.Do("GET", "/v1/users/"+uid+"/history", nil)).Items()
	if len(uh) != 2 || uh[0]["client_request_id"] != "req-register" || uh[1]["client_request_id"] != "req-rename" {
		t.Fatalf("user history: %v", uh)
	}

	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{"title": "t"})).Str("id")
	s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "zero"}))
	msg := s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "first words"})).Str("id")
	s.Must(200, s.Do("PATCH", "/v1/messages/"+msg, map[string]any{"content": "second words"}))
	s.Must(204, s.Do("DELETE", "/v1/messages/"+msg, nil))
	mh := s.Must(200, s.Do("GET", "/v1/messages/"+msg+"/history", nil)).Items()
	if len(mh) != 3 || mh[0]["event_type"] != "message.appended" || mh[2]["event_type"] != "message.redacted" {
		t.Fatalf("message history: %v", mh)
	}
	if r := s.Must(200, s.Do("GET", "/v1/messages/"+msg+"?version=1", nil)); r.Str("content") != "first words" || r.Num("seq") != 2 {
		t.Fatalf("message at version 1: %s", r.Body)
	}
	if r := s.Must(200, s.Do("GET", "/v1/sessions/"+sid+"/history", nil)).Items(); len(r) != 1 || r[0]["event_type"] != "session.started" {
		t.Fatalf("session history: %v", r)
	}
	s.Must(404, s.Do("GET", "/v1/memories/01M89VB9XHPWV2SCAB0P286JT9/history", nil))
	isProblem(t, s.Do("GET", "/v1/memories/"+mid+"?version=1&as_of="+url.QueryEscape(time.Now().Format(time.RFC3339Nano)), nil), 422, "as_of")
}

// A user's deletion ends their sessions, messages and memories without an
// event of their own: as of a time after it, each reads as gone; as of a
// time before it, as it was; by version, as it was.
func TestTimeTravelAcrossAUsersDeletion(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "bob", "name": "Bob"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	msg := s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "tea please"})).Str("id")
	mem := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "Bob likes tea"})).Str("id")
	before := time.Now()
	s.Must(204, s.Do("DELETE", "/v1/users/"+uid, nil))
	after := url.QueryEscape(time.Now().Format(time.RFC3339Nano))
	for _, path := range []string{"/v1/sessions/" + sid, "/v1/messages/" + msg, "/v1/memories/" + mem} {
		r := s.Must(200, s.Do("GET", path+"?as_of="+after, nil))
		if r.JSON["deleted_with_user"] != true {
			t.Fatalf("%s as of after the deletion: %s", path, r.Body)
		}
		then := s.Must(200, s.Do("GET", path+"?as_of="+url.QueryEscape(before.Format(time.RFC3339Nano)), nil))
		if then.JSON["deleted_with_user"] != false {
			t.Fatalf("%s as of before the deletion: %s", path, then.Body)
		}
		if v := s.Must(200, s.Do("GET", path+"?version=1", nil)); v.JSON["deleted_with_user"] != nil || v.Str("id") == "" {
			t.Fatalf("%s at version 1: %s", path, v.Body)
		}
	}
	if r := s.Must(200, s.Do("GET", "/v1/sessions/"+sid+"?as_of="+after, nil)); r.Str("status") != "deleted" {
		t.Fatalf("session as of after the deletion: %s", r.Body)
	}
	if r := s.Must(200, s.Do("GET", "/v1/memories/"+mem+"?as_of="+after, nil)); r.JSON["deleted"] != true {
		t.Fatalf("memory as of after the deletion: %s", r.Body)
	}
}
