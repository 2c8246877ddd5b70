package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"

	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/internal/testserver"
)

// binary is the arq command, built once, which the tests run as a user
// does for the commands besides serve (export, import, rebuild...).
var binary string

func TestMain(m *testing.M) {
	// As the binary's main does for the servers run in-process.
	gin.SetMode(gin.ReleaseMode)
	redis.SetLogger(quietRedis{})
	dir, err := os.MkdirTemp("", "arq-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "arq")
	if out, err := exec.Command("go", "build", "-o", binary, "../cmd/arq").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build arq: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// quietRedis drops go-redis's own log lines (a failed dial each time
// Redis is down), as the binary does.
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

// runCLI runs one arq command line against the database at url and
// returns its exit status and output.
func runCLI(t *testing.T, url string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runCLIWith(t, map[string]string{"ARQ_DATABASE_URL": url}, args...)
}

// runCLIWith runs one arq command line with env as its only ARQ_*
// variables.
func runCLIWith(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = arqEnv(env)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("arq %s: %v", strings.Join(args, " "), err)
	}
	return code, out.String(), errb.String()
}

// arqEnv is this process's environment without its ARQ_* variables, and
// with env's: a command sees only the settings a test gives it.
func arqEnv(env map[string]string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ARQ_") {
			out = append(out, kv)
		}
	}
	if _, ok := env["ARQ_LOG_SIGNING_KEY"]; !ok {
		out = append(out, "ARQ_LOG_SIGNING_KEY="+testdb.LogSigningKey)
	}
	if _, ok := env["ARQ_MASTER_KEY"]; !ok {
		out = append(out, "ARQ_MASTER_KEY="+testserver.MasterKey)
	}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}
