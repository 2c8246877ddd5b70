package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/arq-memory/arq/internal/testserver"
)

// `arq erase user|message|memory ID` erases as the API does, beside a
// running server (whose projections it waits for), in one line; again,
// it says so; an unknown id and a mistake exit as the other commands do.
func TestEraseCommand(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "er", "name": "Er"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	mid := s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "hello"})).Str("id")
	yid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "tea"})).Str("id")
	for _, c := range []struct{ kind, id string }{{"memory", yid}, {"message", mid}, {"user", uid}} {
		code, out, errOut := runCLI(t, s.URL, "erase", c.kind, c.id)
		if code != 0 || !strings.HasPrefix(out, fmt.Sprintf("erased %s %s (position ", c.kind, c.id)) || strings.Count(out, "\n") != 1 || errOut != "" {
			t.Fatalf("arq erase %s: exit %d, stdout %q, stderr %q", c.kind, code, out, errOut)
		}
		code, out, errOut = runCLI(t, s.URL, "erase", c.kind, c.id)
		if want := fmt.Sprintf("%s %s was erased already\n", c.kind, c.id); code != 0 || out != want || errOut != "" {
			t.Fatalf("arq erase %s again: exit %d, stdout %q, stderr %q; want %q", c.kind, code, out, errOut, want)
		}
	}
	// The server refuses the erased user's things as erased.
	if r := s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "x"}); r.Status != 410 {
		t.Fatalf("memory of the user erased on the command line: %d %s", r.Status, r.Body)
	}
	const nobody = "01M89VB9XHPWV2SCAB0P286JT9"
	if code, out, errOut := runCLI(t, s.URL, "erase", "user", nobody); code != 1 || out != "" || errOut != "arq: not found: user "+nobody+"\n" {
		t.Fatalf("arq erase user of no one: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	for _, args := range [][]string{{"erase", "user"}, {"erase", "user", uid, "--wait", "0s"}, {"erase", "session", uid}} {
		if code, _, errOut := runCLI(t, s.URL, args...); code != 2 || strings.Count(errOut, "\n") != 1 {
			t.Errorf("arq %s: exit %d, stderr %q; want exit 2 and one line", strings.Join(args, " "), code, errOut)
		}
	}
}
