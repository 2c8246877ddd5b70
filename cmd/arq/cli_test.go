package main

import (
	"strings"
	"testing"
)

// `arq audit user ID` answers as GET /v1/users/{id}/audit does: a user
// whose events a --type filter leaves out has an empty audit (nothing
// printed, exit 0), a user who never had an event is an error.
func TestAuditCommandWithNoMatchingEvent(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	uid := s.must(201, s.do("POST", "/v1/users", map[string]any{"external_id": "au", "name": "Au"})).str("id")
	if items := s.must(200, s.do("GET", "/v1/users/"+uid+"/audit?type=session.closed", nil)).items(); len(items) != 0 {
		t.Fatalf("HTTP audit with a type of no event: %v", items)
	}
	for _, args := range [][]string{
		{"audit", "user", uid, "--type", "session.closed"},
		{"audit", "user", uid, "--type", "session.closed", "--json"},
		{"audit", "user", uid, "--type", "no.such.type"},
	} {
		code, out, errOut := runCLI(t, s.url, args...)
		if code != 0 || out != "" || errOut != "" {
			t.Errorf("arq %s: exit %d, stdout %q, stderr %q; want exit 0 and nothing printed", strings.Join(args, " "), code, out, errOut)
		}
	}
	// The filter still lets the user's own events through.
	code, out, errOut := runCLI(t, s.url, "audit", "user", uid, "--type", "user.registered", "--json")
	if code != 0 || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"user.registered"`) {
		t.Errorf("arq audit user --type user.registered: exit %d\n%s%s", code, out, errOut)
	}
	// No such user: one line, exit 1, with or without a filter.
	for _, args := range [][]string{
		{"audit", "user", "01M89VB9XHPWV2SCAB0P286JT9"},
		{"audit", "user", "01M89VB9XHPWV2SCAB0P286JT9", "--type", "session.closed"},
	} {
		code, out, errOut := runCLI(t, s.url, args...)
		if code != 1 || out != "" || errOut != "arq: no such user 01M89VB9XHPWV2SCAB0P286JT9\n" {
			t.Errorf("arq %s: exit %d, stdout %q, stderr %q", strings.Join(args, " "), code, out, errOut)
		}
	}
}
