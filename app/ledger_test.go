package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/arq-memory/arq/ledger"
)

// The log's signing key file is made once, readable by its owner alone,
// with a key whose verifier key is the one returned; a second call reads
// it and makes none.
func TestMakeLogKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "arq", "log-signing.key")
	skey, vkey, err := MakeLogKeyFile(path, "")
	if err != nil || vkey == "" {
		t.Fatalf("made: %v, verifier key %q", err, vkey)
	}
	if got, err := ledger.VerifierKey(string(skey)); err != nil || got != vkey || !strings.HasPrefix(vkey, "arq") {
		t.Fatalf("the file's key verifies as %q (%v), want %q", got, err, vkey)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("the key file: %v, %v", st, err)
	}
	again, v2, err := MakeLogKeyFile(path, "other")
	if err != nil || v2 != "" || string(again) != string(skey) {
		t.Fatalf("a second call: %q %q %v; want the first key, none made", again, v2, err)
	}
}
