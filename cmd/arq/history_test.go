package main

import (
	"github.com/arq-memory/arq/internal/testserver"
	"strings"
	"testing"
)

// `arq history` and `arq replay` print what the endpoints answer.
func TestHistoryAndReplayCommands(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "c", "name": "Cy"})).Str("id")
	mid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "alpha"})).Str("id")
	beta := s.Must(200, s.Do("PATCH", "/v1/memories/"+mid, map[string]any{"content": "beta"}, "X-Request-ID", "req-beta")).Header.Get("X-Request-ID")

	code, out, errOut := runCLI(t, s.URL, "history", "memory-"+mid)
	if code != 0 || !strings.Contains(out, "v2  ") || !strings.Contains(out, "request="+beta+" client_request=req-beta") || !strings.Contains(out, `content: "alpha" -> "beta"`) {
		t.Fatalf("arq history: %d\n%s%s", code, out, errOut)
	}
	code, out, _ = runCLI(t, s.URL, "history", "--json", "memory-"+mid)
	if code != 0 || strings.Count(out, "\n") != 2 || !strings.Contains(out, `"event_type":"memory.updated"`) {
		t.Fatalf("arq history --json: %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, s.URL, "replay", "memory-"+mid, "--version", "1")
	if code != 0 || !strings.Contains(out, `"content": "alpha"`) {
		t.Fatalf("arq replay --version 1: %d\n%s", code, out)
	}
	code, _, errOut = runCLI(t, s.URL, "replay", "memory-"+mid)
	if code != 2 || !strings.Contains(errOut, "--version N or --as-of TIME") {
		t.Fatalf("arq replay without a point: %d %s", code, errOut)
	}
	code, _, errOut = runCLI(t, s.URL, "replay", "memory-"+mid, "--version", "7")
	if code != 1 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Fatalf("arq replay of a missing version: %d %q", code, errOut)
	}
}
