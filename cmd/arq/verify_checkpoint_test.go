package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/arq-memory/arq/internal/logtamper"
	"github.com/arq-memory/arq/ledger"
)

// An intact log checks clean against its checkpoint, on one line; a
// checkpoint that does not verify with the key given, or no key, is an
// error.
func TestVerifyCheckpointOfAnIntactLog(t *testing.T) {
	t.Parallel()
	l := logtamper.New(t)
	code, out, errOut := runCLI(t, l.URL, "verify", "--quiet", "--checkpoint", l.File, "--log-key", l.VKey)
	want := fmt.Sprintf("%d events in %d streams checked, 0 broken links; the first %d,", l.Checkpoint.Size+2, logtamper.Streams+1, l.Checkpoint.Size)
	if code != 0 || strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, want) || !strings.Contains(out, "have the same root") {
		t.Fatalf("intact log: exit %d\n%s%s", code, out, errOut)
	}
	// --json: the audit, with no breaks as [], and the checkpoint it was
	// made against.
	code, out, errOut = runCLI(t, l.URL, "verify", "--quiet", "--json", "--checkpoint", l.File, "--log-key", l.VKey)
	var got struct {
		Breaks     []any `json:"breaks"`
		Checkpoint struct {
			Size int64  `json:"size"`
			Root string `json:"root"`
		} `json:"checkpoint"`
	}
	if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil || got.Breaks == nil ||
		got.Checkpoint.Size != l.Checkpoint.Size || got.Checkpoint.Root != l.Checkpoint.Root.String() {
		t.Fatalf("--json: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	_, other, err := ledger.NewSigningKey("arq-test")
	if err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI(t, l.URL, "verify", "--checkpoint", l.File, "--log-key", other); code != 1 || !strings.Contains(errOut, "signature") {
		t.Fatalf("another key: exit %d, %s", code, errOut)
	}
	env := map[string]string{"ARQ_DATABASE_URL": l.URL, "ARQ_LOG_SIGNING_KEY_FILE": t.TempDir() + "/none"}
	if code, _, errOut := runCLIWith(t, env, "verify", "--checkpoint", l.File); code != 1 || !strings.Contains(errOut, "--log-key") {
		t.Fatalf("no key: exit %d, %s", code, errOut)
	}
	// Without --log-key, the configured signing key's verifier key.
	env["ARQ_LOG_SIGNING_KEY"] = l.SKey
	if code, out, errOut := runCLIWith(t, env, "verify", "--quiet", "--checkpoint", l.File); code != 0 || !strings.HasPrefix(out, want) {
		t.Fatalf("the configured key: exit %d\n%s%s", code, out, errOut)
	}
}

// Each way of tampering makes `arq verify --checkpoint` exit 1 and name,
// first, the event changed, missing or moved.
func TestVerifyCheckpointNamesTheTamperedEvent(t *testing.T) {
	t.Parallel()
	for _, c := range logtamper.Cases {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			l := logtamper.New(t)
			want := c.Tamper(t, l)
			code, out, errOut := runCLI(t, l.URL, "verify", "--quiet", "--checkpoint", l.File, "--log-key", l.VKey)
			first := ""
			for _, line := range strings.Split(out, "\n") {
				if s, ok := strings.CutPrefix(line, "first problem: "); ok {
					first = s
				}
			}
			named := fmt.Sprintf("position %d", want.Position)
			if want.EventID != "" {
				named = "(event " + want.EventID + ","
			}
			if code != 1 || !strings.HasPrefix(first, strings.ToUpper(want.Kind)+" event ") || !strings.Contains(first, named) ||
				!strings.Contains(out, "do NOT have the checkpoint's root") {
				t.Fatalf("want %s naming %q first: exit %d\n%s%s", strings.ToUpper(want.Kind), named, code, out, errOut)
			}
		})
	}
}
