package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/internal/testserver"
	"github.com/arq-memory/arq/internal/testwait"
	"github.com/arq-memory/arq/logproof"
)

// arq log keygen makes a key file once and prints its verifier key, which
// arq log key prints again from the file.
func TestLogKeygen(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "log.key")
	env := map[string]string{"ARQ_LOG_SIGNING_KEY_FILE": file}
	code, out, errs := runCLIWith(t, env, "log", "keygen", "--name", "arq-test-key")
	if code != 0 || !strings.HasPrefix(out, "arq-test-key+") {
		t.Fatalf("keygen: exit %d, %q %q", code, out, errs)
	}
	code, again, errs := runCLIWith(t, env, "log", "key")
	if code != 0 || again != out {
		t.Fatalf("log key: exit %d, %q %q, want %q", code, again, errs, out)
	}
	if code, _, errs := runCLIWith(t, env, "log", "keygen"); code != 2 || !strings.Contains(errs, "exists") {
		t.Fatalf("a second keygen: exit %d, %q", code, errs)
	}
}

// arq log checkpoint prints the latest checkpoint as signed, and arq log
// prove an event's proof in it, both checked with the verifier key alone.
func TestLogCheckpointAndProve(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	u := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "ada", "name": "Ada"})).Str("id")
	var event string
	testwait.Eventually(t, 30*time.Second, "a checkpoint of the user's event", func() (bool, error) {
		code, out, _ := runCLI(t, s.URL, "log", "checkpoint")
		if code != 0 {
			return false, nil
		}
		c, err := logproof.OpenCheckpoint([]byte(out), testdb.LogVerifierKey)
		if err != nil {
			t.Fatalf("checkpoint %q: %v", out, err)
		}
		return c.Size >= 1, nil
	})
	_, out, _ := runCLI(t, s.URL, "events", "--stream", "user-"+u)
	var e struct {
		EventID string `json:"event_id"`
	}
	if err := json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &e); err != nil || e.EventID == "" {
		t.Fatalf("events: %q %v", out, err)
	}
	event = e.EventID
	code, out, errs := runCLI(t, s.URL, "log", "prove", event)
	if code != 0 {
		t.Fatalf("prove: exit %d %s", code, errs)
	}
	var p struct {
		logproof.Inclusion
		Checkpoint string `json:"checkpoint"`
	}
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatal(err)
	}
	c, err := logproof.OpenCheckpoint([]byte(p.Checkpoint), testdb.LogVerifierKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := logproof.VerifyInclusion(c, p.Inclusion); err != nil {
		t.Fatalf("the proof %s: %v", out, err)
	}
	if code, _, errs := runCLI(t, s.URL, "log", "prove", "01ARZ3NDEKTSV4RRFFQ69G5FAV"); code != 1 || !strings.Contains(errs, "no such event") {
		t.Fatalf("an unknown event: exit %d %q", code, errs)
	}
}
