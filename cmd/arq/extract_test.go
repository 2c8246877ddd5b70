package main

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/arq-memory/arq/internal/fakellm"
	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/internal/testserver"
	"github.com/arq-memory/arq/internal/testwait"
)

// arq memories extract runs the extractor again over a session or all of
// a user's: each run's decisions are new events beside the old ones (a
// run with a model that now knows the facts decides "none"); a session
// or user it cannot find is a one-line error.
func TestMemoriesExtractRunsAgainByHand(t *testing.T) {
	t.Parallel()
	llm := fakellm.New(t)
	url := testdb.New(t)
	// A server that extracts nothing by itself: its lookback is too short
	// for any session to be due.
	s := testserver.StartOn(t, url, map[string]string{"ARQ_EXTRACTOR": "chat", "ARQ_EXTRACTOR_URL": llm.URL, "ARQ_EXTRACT_LOOKBACK": "1ns"})
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "cli", "name": "Cli"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "My tea is green."}))
	other := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	s.Must(201, s.Do("POST", "/v1/sessions/"+other+"/messages", map[string]any{"role": "user", "content": "My bike is old."}))
	testwait.Eventually(t, 20*time.Second, "the messages projected", func() (bool, error) {
		return len(s.Must(200, s.Do("GET", "/v1/sessions/"+other+"/messages", nil)).Items()) == 1, nil
	})
	if llm.Calls(fakellm.StepCandidates) != 0 {
		t.Fatal("the server extracted by itself: the test checks nothing")
	}
	env := map[string]string{"ARQ_DATABASE_URL": url, "ARQ_MASTER_KEY": testserver.MasterKey, "ARQ_LOG_SIGNING_KEY": testdb.LogSigningKey,
		"ARQ_EXTRACTOR": "chat", "ARQ_EXTRACTOR_URL": llm.URL, "ARQ_EXTRACTOR_MODEL": "fake-2"}
	line := regexp.MustCompile(`^session \w+: run \w+: (\d+) added, (\d+) updated, (\d+) superseded, (\d+) unchanged \(position [\d.]+\)$`)
	code, out, errOut := runCLIWith(t, env, "memories", "extract", "--session", sid)
	if m := line.FindStringSubmatch(strings.TrimSpace(out)); code != 0 || m == nil || m[1] != "1" {
		t.Fatalf("memories extract --session: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, errOut = runCLIWith(t, env, "memories", "extract", "--user", uid, "--since", "1h")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 2 {
		t.Fatalf("memories extract --user: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	var got []string
	for _, l := range lines {
		m := line.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("memories extract --user printed %q", l)
		}
		got = append(got, m[1]+"+"+m[4])
	}
	slices.Sort(got)
	// The tea is known by now (none); the bike is new.
	if !slices.Equal(got, []string{"0+1", "1+0"}) {
		t.Fatalf("the runs over the user's sessions: %q", out)
	}
	testwait.Eventually(t, 20*time.Second, "two memories", func() (bool, error) {
		return len(s.Must(200, s.Do("GET", "/v1/users/"+uid+"/memories", nil)).Items()) == 2, nil
	})
	n := 0
	for _, e := range s.Must(200, s.Do("GET", "/v1/events?type=session.extracted&stream=extraction-"+uid, nil)).Items() {
		if e["data"].(map[string]any)["session_id"] == sid {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("%d runs of the session; want both, the second beside the first", n)
	}
	for _, c := range []struct{ args, want string }{
		{"memories extract --session 01J00000000000000000000000", "arq: session 01J00000000000000000000000: not found: session 01J00000000000000000000000\n"},
		{"memories extract --user 01J00000000000000000000000", "arq: not found: user 01J00000000000000000000000 has no sessions\n"},
	} {
		code, out, errOut := runCLIWith(t, env, strings.Fields(c.args)...)
		if code != 1 || out != "" || errOut != c.want {
			t.Errorf("arq %s: exit %d, stdout %q, stderr %q; want exit 1 and %q", c.args, code, out, errOut, c.want)
		}
	}
}
