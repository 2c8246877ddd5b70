package main

import (
	"testing"
)

// A query parameter the OpenAPI document does not list for the route is a
// 422 naming it, as an unknown body field is: a misspelt filter no longer
// answers as if no filter were given. The parameters the document lists
// still work, HEAD is checked as its GET, and the routes outside /v1
// (probes, metrics) take any query.
func TestUnknownQueryParameterIsRefused(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	uid := s.must(201, s.do("POST", "/v1/users", map[string]any{"external_id": "ada", "name": "Ada"})).str("id")
	s.must(201, s.do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "Ada prefers short answers", "tags": []string{"style"}, "metadata": map[string]any{"k": "v"}}))
	s.must(201, s.do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "Ada keeps bees"}))
	sid := s.must(201, s.do("POST", "/v1/users/"+uid+"/sessions", map[string]any{"title": "t"})).str("id")
	mid := s.must(201, s.do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "hello"})).str("id")

	for _, c := range []struct{ path, field string }{
		{"/v1/users/" + uid + "/memories?tags=style", "tags"},
		{"/v1/users/" + uid + "/memories?tag=style&Tag=style", "Tag"},
		{"/v1/sessions/" + sid + "/messages?q=x", "q"},
		{"/v1/users/" + uid + "?verison=1", "verison"},
		{"/v1/users?externalid=ada", "externalid"},
		{"/v1/sessions/" + sid + "/context?max_token=10", "max_token"},
		{"/v1/events?limit=1&after=&typ=user.registered", "typ"},
	} {
		r := s.do("GET", c.path, nil)
		isProblem(t, r, 422, c.field)
		errs := r.json["errors"].([]any)
		if len(errs) != 1 || errs[0].(map[string]any)["message"] != "unknown query parameter" {
			t.Errorf("GET %s: %s", c.path, r.body)
		}
	}
	if r := s.do("HEAD", "/v1/users/"+uid+"?verison=1", nil); r.status != 422 {
		t.Errorf("HEAD with an unknown query parameter: %d, want 422", r.status)
	}

	// What the document lists is accepted, the filters still filter.
	if n := len(s.must(200, s.do("GET", "/v1/users/"+uid+"/memories?tag=style", nil)).items()); n != 1 {
		t.Errorf("tag=style: %d memories, want 1", n)
	}
	if n := len(s.must(200, s.do("GET", "/v1/users/"+uid+"/memories?metadata=k=v&type=semantic&limit=5", nil)).items()); n != 1 {
		t.Errorf("metadata=k=v: %d memories, want 1", n)
	}
	s.must(200, s.do("GET", "/v1/users/"+uid+"?version=1", nil))
	s.must(200, s.do("HEAD", "/v1/users/"+uid+"?version=1", nil))
	s.must(200, s.do("GET", "/v1/sessions/"+sid+"/messages?limit=1&cursor=", nil))
	s.must(200, s.do("GET", "/v1/sessions/"+sid+"/context?max_tokens=100&query=x", nil))
	s.must(204, s.do("DELETE", "/v1/messages/"+mid+"?reason=typo", nil))

	// Outside /v1, and where no route answers, the query is not looked at.
	s.must(200, s.do("GET", "/healthz?probe=1", nil))
	s.must(200, s.do("GET", "/metrics?x=1", nil))
	s.must(200, s.do("GET", "/openapi.json?v=2", nil))
	isProblem(t, s.do("GET", "/v1/nothing?x=1", nil), 404, "")
}
