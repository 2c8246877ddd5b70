package e2e

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/arq-memory/arq/internal/testserver"
	"github.com/arq-memory/arq/version"
)

// The server and the binary name the same release: /healthz says the
// build (version.Build), and so does `arq version`.
func TestHealthzAndArqVersionNameTheRelease(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	if got := s.Must(200, s.Do("GET", "/healthz", nil)).Str("version"); got != version.Build() || !strings.HasPrefix(got, version.Release) {
		t.Errorf("/healthz version %q, want %q (release %s)", got, version.Build(), version.Release)
	}
	out, err := exec.Command(binary, "version").Output()
	if got := strings.TrimSpace(string(out)); err != nil || !strings.HasPrefix(got, version.Release) {
		t.Errorf("arq version: %q, %v; want release %s", got, err, version.Release)
	}
}
