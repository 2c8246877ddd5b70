package e2e

import (
	"testing"

	"github.com/arq-memory/arq/internal/testserver"
)

// Every string of a body, keys and values at any depth, must be text:
// bytes that are no UTF-8 and escapes of lone UTF-16 surrogates are a 422
// naming the field, and an embedding holds JSON numbers only. Before,
// encoding/json stored both kinds of bad text as U+FFFD and took ["1","2"]
// as [1,2], with a 201. Nothing refused is appended.
func TestInvalidTextAndNumbersAreRefused(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "u", "name": "U"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{"title": "t"})).Str("id")
	mid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "m"})).Str("id")
	const (
		notUTF8 = "must be valid UTF-8"
		lone    = "lone UTF-16 surrogate"
		numbers = "must be an array of numbers"
	)
	for _, c := range []struct {
		name, method, path, body string
		want                     map[string]string
	}{
		{"message not UTF-8", "POST", "/v1/sessions/" + sid + "/messages",
			"{\"role\":\"user\",\"content\":\"caf\xe9\"}", map[string]string{"content": notUTF8}},
		{"batch, nested metadata key not UTF-8", "POST", "/v1/sessions/" + sid + "/messages",
			"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":\"b\",\"metadata\":{\"a\":{\"\xff\":1}}}]}",
			map[string]string{"messages[1].metadata.a.\ufffd": notUTF8}},
		{"message lone high surrogate", "POST", "/v1/sessions/" + sid + "/messages",
			`{"role":"user","content":"a\ud800b"}`, map[string]string{"content": lone}},
		{"user lone low surrogate", "POST", "/v1/users",
			`{"external_id":"x","name":"\uDC00"}`, map[string]string{"name": lone}},
		{"memory metadata list", "PATCH", "/v1/memories/" + mid,
			`{"metadata":{"tags":["ok","\ud83d"]}}`, map[string]string{"metadata.tags[1]": lone}},
		{"message embedding of strings", "POST", "/v1/sessions/" + sid + "/messages",
			`{"role":"user","content":"a","embedding":["1","2"]}`, map[string]string{"embedding": numbers}},
		{"memory embedding of strings", "POST", "/v1/users/" + uid + "/memories",
			`{"type":"semantic","content":"a","embedding":[1,"2"]}`, map[string]string{"embedding": numbers}},
		{"embedding with null", "PATCH", "/v1/memories/" + mid,
			`{"embedding":[1,null]}`, map[string]string{"embedding": numbers}},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := eventCount(t, s)
			wantFields(t, s.Do(c.method, c.path, c.body), c.want)
			if n := eventCount(t, s); n != before {
				t.Fatalf("the log grew from %d to %d events", before, n)
			}
		})
	}
	// Text that only looks alike is kept: a surrogate pair is one
	// character, and an escaped backslash before "ud800" is no escape.
	m := s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages",
		`{"role":"user","content":"\ud83d\ude00 \\ud800 é","embedding":[1, -2.5e0]}`))
	if got := m.Str("content"); got != "😀 \\ud800 é" {
		t.Fatalf("content %q", got)
	}
}
