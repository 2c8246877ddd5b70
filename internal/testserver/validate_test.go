package testserver

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The check that every end-to-end answer meets the document has teeth: an
// answer that breaks the document fails it, one that meets it passes.
func TestValidatorFailsAnAnswerThatBreaksTheDocument(t *testing.T) {
	v, err := NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	memory := `{"id":"01JDQ0000000000000000000MM","user_id":"01JDQ0000000000000000000UU","type":"semantic","content":"likes tea",
		"importance":0.5,"tags":[],"metadata":{},"source_session_id":null,"source_message_id":null,"tokens":3,"expires_at":null,
		"embedding_dim":0,"version":1,"created_at":"2026-12-07T10:00:00Z","updated_at":"2026-12-07T10:00:00Z"}`
	json := http.Header{"Content-Type": {"application/json; charset=utf-8"}}
	problem := http.Header{"Content-Type": {"application/problem+json"}}
	get := httptest.NewRequest("GET", "http://127.0.0.1:8080/v1/memories/01JDQ0000000000000000000MM", nil)

	for _, c := range []struct {
		name   string
		status int
		header http.Header
		body   string
		want   string // "" when the answer meets the document
	}{
		{"a memory", 200, json, memory, ""},
		{"importance as text", 200, json, strings.Replace(memory, `"importance":0.5`, `"importance":"high"`, 1), "importance"},
		{"no content", 200, json, strings.Replace(memory, `"content":"likes tea",`, "", 1), "content"},
		{"an unknown memory type", 200, json, strings.Replace(memory, `"semantic"`, `"gossip"`, 1), "type"},
		{"a problem", 404, problem, `{"type":"https://arq.dev/problems/not-found","title":"Not found","status":404}`, ""},
		{"a problem without a status", 404, problem, `{"type":"https://arq.dev/problems/not-found","title":"Not found"}`, "status"},
		{"a memory as a problem", 404, json, memory, "Content-Type"},
	} {
		err := v.Check(get, c.status, c.header, []byte(c.body))
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && err == nil:
			t.Errorf("%s: passed, want a failure naming %q", c.name, c.want)
		case c.want != "":
			// What it says, without the body it quotes.
			if said, _, _ := strings.Cut(err.Error(), "\nbody:"); !strings.Contains(said, c.want) {
				t.Errorf("%s: %v, want it to name %q", c.name, err, c.want)
			}
		}
	}
}
