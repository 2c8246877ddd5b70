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
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"
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
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// syncBuffer is a buffer that goroutines may write to at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// eventually waits until cond holds, failing the test if it does not
// within the time given. (It is to give way to internal/testwait's
// Eventually, of the same shape.)
func eventually(t testing.TB, within time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %s", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
