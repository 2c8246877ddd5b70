package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/arq-memory/arq/internal/testserver"
	"github.com/arq-memory/arq/vault"
)

// `arq keys new` prints a master key, one line.
func TestKeysNew(t *testing.T) {
	t.Parallel()
	code, out, errOut := runWith(nil, "keys", "new")
	if code != 0 || errOut != "" || strings.Count(out, "\n") != 1 {
		t.Fatalf("arq keys new: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if _, err := vault.ParseMaster(strings.TrimSpace(out)); err != nil {
		t.Fatalf("arq keys new printed %q, no master key: %v", out, err)
	}
	if _, again, _ := runWith(nil, "keys", "new"); again == out {
		t.Fatal("arq keys new printed the same key twice")
	}
}

// A log written under master key A is read under B alone once B is the
// current key, A a previous one, and `arq keys rotate` has run; before
// that, B alone cannot read it.
func TestKeysRotate(t *testing.T) {
	t.Parallel()
	a, b := vault.NewMasterKey(), vault.NewMasterKey()
	s := testserver.Start(t, map[string]string{"ARQ_MASTER_KEY": a})
	const marker = "pangolin-rotate-3091"
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "rot", "name": marker})).Str("id")
	s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": marker}))
	s.Stop()
	env := func(current string, previous ...string) map[string]string {
		return map[string]string{"ARQ_DATABASE_URL": s.URL, "ARQ_MASTER_KEY": current, "ARQ_PREVIOUS_MASTER_KEYS": strings.Join(previous, ",")}
	}
	history := []string{"history", "user-" + uid, "--json"}
	if code, out, _ := runCLIWith(t, env(b), history...); code == 0 || strings.Contains(out, marker) {
		t.Fatalf("B alone read the log before the rotation: exit %d, %s", code, out)
	}
	code, out, errOut := runCLIWith(t, env(b, a), "keys", "rotate", "--quiet")
	var n int
	if _, err := fmt.Sscanf(out, "rewrapped %d data keys", &n); code != 0 || err != nil || n < 2 || errOut != "" {
		t.Fatalf("arq keys rotate: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, out, errOut := runCLIWith(t, env(b, a), "keys", "rotate", "--quiet"); code != 0 || !strings.HasPrefix(out, "rewrapped 0 data keys") {
		t.Fatalf("arq keys rotate again: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, out, errOut := runCLIWith(t, env(b), history...); code != 0 || !strings.Contains(out, marker) {
		t.Fatalf("B alone after the rotation: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, _, errOut := runCLIWith(t, env(a), history...); code != 1 || strings.Count(errOut, "\n") != 1 {
		t.Fatalf("A alone after the rotation: exit %d, stderr %q; want exit 1 and one line", code, errOut)
	}
}
