package e2e

import (
	"github.com/arq-memory/arq/internal/testserver"
	"os/exec"
	"testing"

	"github.com/arq-memory/arq/internal/testdb"
)

// An SSE client receives a message appended by another arq process: a
// real `arq serve` started as a separate program, over the same database
// and Redis, both ways.
func TestSessionStreamAcrossArqProcesses(t *testing.T) {
	t.Parallel()
	url := testdb.New(t)
	inTest := testserver.StartOn(t, url, nil)
	other, p := serveBinary(t, url, map[string]string{"ARQ_HTTP_ADDR": "127.0.0.1:0", "ARQ_DB_MAX_CONNS": "8"})

	uid := inTest.Must(201, inTest.Do("POST", "/v1/users", map[string]any{"external_id": "pp", "name": "PP"})).Str("id")
	sid := inTest.Must(201, inTest.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")

	// A client of the in-test server, a message through the subprocess.
	here := subscribe(inTest, t, "/v1/sessions/"+sid+"/stream")
	mid := other.Must(201, other.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "from the arq subprocess"})).Str("id")
	ev := await(t, here, "message appended through the subprocess", func(ev sseEvent) bool { return dataField(ev, "message_id") == mid })
	if ev.event != "message.appended" || dataField(ev, "content") != "from the arq subprocess" || ev.id == "" {
		t.Fatalf("event on the in-test server: %+v", ev)
	}

	// And the other way: a client of the subprocess, a message through
	// the in-test server.
	there := subscribe(other, t, "/v1/sessions/"+sid+"/stream")
	back := inTest.Must(201, inTest.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "assistant", "content": "from the test process"})).Str("id")
	ev = await(t, there, "message appended through the in-test server", func(ev sseEvent) bool { return dataField(ev, "message_id") == back })
	if ev.event != "message.appended" || dataField(ev, "content") != "from the test process" || ev.id == "" {
		t.Fatalf("event on the subprocess: %+v", ev)
	}
	select {
	case <-p.exited:
		t.Fatalf("arq serve exited: %v\n%s", p.err, p.stderr.String())
	default:
	}
}

// serveProc is an `arq serve` run as a program of its own.
type serveProc struct {
	stderr *testserver.SyncBuffer
	// exited is closed when the program has exited, with err.
	exited chan struct{}
	err    error
}

// serveBinary runs `arq serve` over the database at url, with env as its
// ARQ_* variables, until the test ends, and returns it once it listens.
func serveBinary(t *testing.T, url string, env map[string]string) (*testserver.Server, *serveProc) {
	t.Helper()
	cmd := exec.Command(binary, "serve")
	env["ARQ_DATABASE_URL"] = url
	cmd.Env = arqEnv(env)
	p := &serveProc{stderr: &testserver.SyncBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("arq serve stderr:\n%s", p.stderr.String())
		}
	})
	addr := testserver.ServingAddr(t, p.stderr)
	return testserver.Attach(t, "http://"+addr, url), p
}
