package mcpserver

import (
	"strings"
	"testing"
)

// The provenance tool's text names each decision, its model and reason,
// and the messages as the model read them.
func TestProvenanceText(t *testing.T) {
	body := `{"memory_id":"m2","derivations":[{"version":1,"action":"supersede","model":"gpt-4o-mini","reason":"moved",
		"messages":[{"role":"user","content":"My city is Lisbon now."}]}]}`
	want := "1 decisions:\n- version 1: supersede by gpt-4o-mini (moved), from 1 messages\n    user: My city is Lisbon now."
	if got := provenanceText([]byte(body)); got != want {
		t.Fatalf("provenance text:\n%s\nwant:\n%s", got, want)
	}
	if got := provenanceText([]byte(`{"memory_id":"m1","derivations":[]}`)); !strings.HasPrefix(got, "A client stored") {
		t.Fatalf("a client's memory: %q", got)
	}
}
