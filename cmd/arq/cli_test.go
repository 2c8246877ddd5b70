package main

import (
	"github.com/arq-memory/arq/internal/testserver"
	"strings"
	"testing"
	"time"
)

// `arq audit user ID` answers as GET /v1/users/{id}/audit does: a user
// whose events a --type filter leaves out has an empty audit (nothing
// printed, exit 0), a user who never had an event is an error.
func TestAuditCommandWithNoMatchingEvent(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "au", "name": "Au"})).Str("id")
	if items := s.Must(200, s.Do("GET", "/v1/users/"+uid+"/audit?type=session.closed", nil)).Items(); len(items) != 0 {
		t.Fatalf("HTTP audit with a type of no event: %v", items)
	}
	for _, args := range [][]string{
		{"audit", "user", uid, "--type", "session.closed"},
		{"audit", "user", uid, "--type", "session.closed", "--json"},
		{"audit", "user", uid, "--type", "no.such.type"},
	} {
		code, out, errOut := runCLI(t, s.URL, args...)
		if code != 0 || out != "" || errOut != "" {
			t.Errorf("arq %s: exit %d, stdout %q, stderr %q; want exit 0 and nothing printed", strings.Join(args, " "), code, out, errOut)
		}
	}
	// The filter still lets the user's own events through.
	code, out, errOut := runCLI(t, s.URL, "audit", "user", uid, "--type", "user.registered", "--json")
	if code != 0 || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"user.registered"`) {
		t.Errorf("arq audit user --type user.registered: exit %d\n%s%s", code, out, errOut)
	}
	// No such user: one line, exit 1, with or without a filter.
	for _, args := range [][]string{
		{"audit", "user", "01M89VB9XHPWV2SCAB0P286JT9"},
		{"audit", "user", "01M89VB9XHPWV2SCAB0P286JT9", "--type", "session.closed"},
	} {
		code, out, errOut := runCLI(t, s.URL, args...)
		if code != 1 || out != "" || errOut != "arq: no such user 01M89VB9XHPWV2SCAB0P286JT9\n" {
			t.Errorf("arq %s: exit %d, stdout %q, stderr %q", strings.Join(args, " "), code, out, errOut)
		}
	}
}

// `arq replay` names the mistake in its flags precisely.
func TestReplayFlagMistakes(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "rp", "name": "Rp"})).Str("id")
	mid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "alpha"})).Str("id")
	now := time.Now().UTC().Format(time.RFC3339Nano)
	stream := "memory-" + mid
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{stream, "--version", "1", "--as-of", now}, "arq: --version and --as-of exclude each other\n"},
		{[]string{"--as-of", now, stream, "--version", "0"}, "arq: --version and --as-of exclude each other\n"},
		{[]string{stream, "--version", "0"}, "arq: --version must be 1 or more\n"},
		{[]string{stream, "--version", "-3"}, "arq: --version must be 1 or more\n"},
		{[]string{stream}, "arq: replay needs one of --version N or --as-of TIME\n"},
		{[]string{stream, "--as-of", "yesterday"}, "arq: --as-of \"yesterday\" is not an RFC 3339 time\n"},
		{[]string{stream, "--as-of", ""}, "arq: --as-of \"\" is not an RFC 3339 time\n"},
	} {
		code, out, errOut := runCLI(t, s.URL, append([]string{"replay"}, c.args...)...)
		if code != 2 || out != "" || errOut != c.want {
			t.Errorf("arq replay %s: exit %d, stderr %q; want exit 2, %q", strings.Join(c.args, " "), code, errOut, c.want)
		}
	}
	if code, _, errOut := runCLI(t, s.URL, "replay", stream, "--version", "x"); code != 2 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "-version") {
		t.Errorf("arq replay --version x: exit %d, stderr %q", code, errOut)
	}
	// Each alone works.
	for _, args := range [][]string{{stream, "--version", "1"}, {stream, "--as-of", now}} {
		if code, out, errOut := runCLI(t, s.URL, append([]string{"replay"}, args...)...); code != 0 || !strings.Contains(out, `"content": "alpha"`) {
			t.Errorf("arq replay %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
	}
}
