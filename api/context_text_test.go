package api

import "testing"

// A window as text holds its summary, its memories one a line, then the
// conversation in order; parts the window lacks are left out.
func TestContextTextRendersSummaryMemoriesThenConversation(t *testing.T) {
	window := []byte(`{"session_id":"s","max_tokens":100,"total_tokens":40,
		"summary":{"version":1,"content":"They planned a trip.\n","cost":5},
		"memories":[{"id":"m1","type":"semantic","content":"prefers\n window seats","score":0.9,"cost":7}],
		"messages":[{"id":"a","role":"user","content":"Book it.","seq":1,"cost":4},
		            {"id":"b","role":"assistant","name":"planner","content":"Done.","seq":2,"cost":4}]}`)
	got, err := ContextText(window)
	if err != nil {
		t.Fatal(err)
	}
	want := "## Summary of the conversation so far\n\nThey planned a trip.\n" +
		"\n## What you remember about the user\n\n- (semantic) prefers window seats\n" +
		"\n## Conversation\n\nuser: Book it.\nassistant (planner): Done.\n"
	if got != want {
		t.Errorf("text:\n%s\nwant:\n%s", got, want)
	}
	empty, err := ContextText([]byte(`{"session_id":"s","messages":[],"memories":[]}`))
	if err != nil || empty != "" {
		t.Errorf("an empty window: %q, %v", empty, err)
	}
}
