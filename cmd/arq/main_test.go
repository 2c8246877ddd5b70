package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/arq-memory/arq/app"
	"github.com/arq-memory/arq/internal/testserver"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/internal/testwait"
)

// binary is the arq command built once for the tests that run it as a
// separate process.
var binary string

func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode)
	redis.SetLogger(quietRedis{})
	dir, err := os.MkdirTemp("", "arq-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "arq")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build arq: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running arq process.
type proc struct {
	cmd    *exec.Cmd
	stderr *testserver.SyncBuffer
	exited chan error
}

func startArq(t *testing.T, dbURL string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary, args...)
	// The tests' master key, as the servers they start in-process have
	// it; never a key file of the user running them.
	cmd.Env = append(os.Environ(), append([]string{"ARQ_DATABASE_URL=" + dbURL, "ARQ_MASTER_KEY=" + testserver.MasterKey, "ARQ_LOG_SIGNING_KEY=" + testdb.LogSigningKey}, env...)...)
	p := &proc{cmd: cmd, stderr: &testserver.SyncBuffer{}, exited: make(chan error, 1)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("arq %s stderr:\n%s", strings.Join(args, " "), p.stderr.String())
		}
	})
	return p
}

func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited
	p.exited <- nil // for the cleanup
}

// catalogMatchesLog compares the stream catalog with what the log says of
// each stream: a missed or doubled event shows as a difference.
func catalogMatchesLog(ctx context.Context, pool *pgxpool.Pool) (bool, error) {
	var diff, events int
	err := pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM (
			(SELECT stream_id, max(version), count(*)::int, min(position), max(position) FROM events GROUP BY 1
			 EXCEPT SELECT stream_id, version, event_count, first_position, last_position FROM streams)
			UNION ALL
			(SELECT stream_id, version, event_count, first_position, last_position FROM streams
			 EXCEPT SELECT stream_id, max(version), count(*)::int, min(position), max(position) FROM events GROUP BY 1)
		) d),
		(SELECT count(*) FROM events)`).Scan(&diff, &events)
	return diff == 0 && events > 0, err
}

// appendLoad appends n events over streams from several goroutines.
func appendLoad(t *testing.T, store *eventstore.Store, writers, perWriter, streams int) {
	t.Helper()
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				s := eventstore.Stream{ID: fmt.Sprintf("s-%d", (w*perWriter+i)%streams), Type: "test"}
				if _, err := store.Append(context.Background(), s, eventstore.Any(), eventstore.Event{Type: "tick"}); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
}

func checkpointPosition(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	var pos int64
	err := pool.QueryRow(ctx, `SELECT coalesce(max(offset_acked), 0) FROM projection_checkpoints WHERE consumer_group = 'streams'`).Scan(&pos)
	return pos, err
}

// A projection process killed mid-run leaves, after restart, the read model
// of an uninterrupted run.
func TestProjectProcessKilledMidRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.New(t)
	pool := testdb.Pool(t, url)
	store := eventstore.New(pool)
	// A backlog the projectors need a while for (they apply the stream
	// catalog at over 100,000 events a second), so that the kill below
	// falls in the middle of it.
	appendLoad(t, store, 8, 2500, 40)

	p := startArq(t, url, nil, "project")
	testwait.Eventually(t, 30*time.Second, "projector under way", func() (bool, error) {
		pos, err := checkpointPosition(ctx, pool)
		return pos > 0, err
	})
	p.kill(t)
	if ok, err := catalogMatchesLog(ctx, pool); err != nil || ok {
		t.Fatalf("the kill came too late to test anything (caught up: %v, %v)", ok, err)
	}
	appendLoad(t, store, 2, 200, 40)

	again := startArq(t, url, nil, "project")
	testwait.Eventually(t, 60*time.Second, "catalog matches the log after restart", func() (bool, error) {
		return catalogMatchesLog(ctx, pool)
	})
	again.term(t)
}

// Two projection processes on one database apply every event exactly once.
func TestTwoProjectProcessesApplyEachEventOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.New(t)
	pool := testdb.Pool(t, url)
	store := eventstore.New(pool)
	a := startArq(t, url, nil, "project")
	b := startArq(t, url, nil, "project")
	appendLoad(t, store, 8, 300, 25)
	testwait.Eventually(t, 60*time.Second, "catalog matches the log", func() (bool, error) {
		return catalogMatchesLog(ctx, pool)
	})
	for _, p := range []*proc{a, b} {
		select {
		case err := <-p.exited:
			t.Fatalf("a projector exited: %v\n%s", err, p.stderr.String())
		default:
		}
	}
}

// `arq serve` on a database that does not exist creates and migrates it,
// answers its health checks, runs the projections and stops cleanly.
func TestServeCreatesDatabaseAndServes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	name := "arq_serve_" + strings.ToLower(fmt.Sprint(time.Now().UnixNano()))
	url := testdb.URLFor(name)
	t.Cleanup(func() {
		admin, err := pgxpool.New(ctx, testdb.AdminURL())
		if err == nil {
			admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			admin.Close()
		}
	})
	p := startArq(t, url, []string{"ARQ_HTTP_ADDR=127.0.0.1:0"}, "serve")
	addr := p.servingAddr(t)
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s = %d %s", path, resp.StatusCode, body)
		}
	}

	pool := testdb.Pool(t, url)
	appendLoad(t, eventstore.New(pool), 2, 50, 5)
	testwait.Eventually(t, 30*time.Second, "projections run inside serve", func() (bool, error) {
		return catalogMatchesLog(ctx, pool)
	})

	p.term(t)
}

// term stops the process as a service manager does, and checks that it
// stops, and that it says it stopped cleanly (exit status 0).
func (p *proc) term(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		p.exited <- err
		if err != nil {
			t.Fatalf("arq %s exited on SIGTERM with %v", strings.Join(p.cmd.Args[1:], " "), err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("arq %s did not stop on SIGTERM", strings.Join(p.cmd.Args[1:], " "))
	}
}

// runCLI runs one command line in-process against url, with the tests'
// master key, as the servers they start have it.
func runCLI(t *testing.T, url string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runCLIWith(t, map[string]string{"ARQ_DATABASE_URL": url, "ARQ_MASTER_KEY": testserver.MasterKey, "ARQ_LOG_SIGNING_KEY": testdb.LogSigningKey}, args...)
}

// runCLIWith runs one command line in-process with env as its only ARQ_*
// variables.
func runCLIWith(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb testserver.SyncBuffer
	getenv := func(k string) string { return env[k] }
	// A command's logger and its progress write to stderr from different
	// goroutines, as they may to a terminal; a Buffer needs them in turn.
	code = run(context.Background(), args, getenv, &out, &errb)
	return code, out.String(), errb.String()
}

func TestEventsPrintsTheLogAsNDJSON(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.New(t)
	store := eventstore.New(testdb.Pool(t, url))
	store.Append(ctx, eventstore.Stream{ID: "u1", Type: "user"}, eventstore.Any(), eventstore.Event{Type: "user.registered", Data: []byte(`{"name":"Ada"}`)})
	store.Append(ctx, eventstore.Stream{ID: "m1", Type: "memory"}, eventstore.Any(),
		eventstore.Event{Type: "memory.stored"}, eventstore.Event{Type: "memory.updated"})

	var lines []eventLine
	testwait.Eventually(t, 10*time.Second, "three events printed", func() (bool, error) {
		code, out, errOut := runCLI(t, url, "events")
		if code != 0 {
			return false, fmt.Errorf("exit %d: %s", code, errOut)
		}
		lines = nil
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if l == "" {
				continue
			}
			var e eventLine
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				return false, fmt.Errorf("line %q: %w", l, err)
			}
			lines = append(lines, e)
		}
		return len(lines) == 3, nil
	})
	if lines[0].StreamID != "u1" || string(lines[0].Data) != `{"name":"Ada"}` || lines[0].Cursor == "" {
		t.Fatalf("first line = %+v", lines[0])
	}
	code, out, _ := runCLI(t, url, "events", "--stream-type", "memory", "--type", "memory.updated")
	if code != 0 || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"memory.updated"`) {
		t.Fatalf("filtered: exit %d, %q", code, out)
	}
	code, out, _ = runCLI(t, url, "events", "--after", lines[1].Cursor)
	if code != 0 || strings.Count(out, "\n") != 1 || !strings.Contains(out, lines[2].EventID) {
		t.Fatalf("after cursor: exit %d, %q", code, out)
	}
}

func TestEventsFollowTailsNewEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.New(t)
	store := eventstore.New(testdb.Pool(t, url))
	cmd := exec.Command(binary, "events", "--follow", "--limit", "2")
	cmd.Env = append(os.Environ(), "ARQ_DATABASE_URL="+url, "ARQ_MASTER_KEY="+testserver.MasterKey, "ARQ_LOG_SIGNING_KEY="+testdb.LogSigningKey)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; i < 2; i++ {
		if _, err := store.Append(ctx, eventstore.Stream{ID: "f", Type: "test"}, eventstore.Any(), eventstore.Event{Type: "tick"}); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan []byte, 1)
	go func() { b, _ := io.ReadAll(stdout); done <- b }()
	select {
	case b := <-done:
		if n := bytes.Count(b, []byte("\n")); n != 2 {
			t.Fatalf("followed %d events, want 2: %s", n, b)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("events --follow did not print the new events")
	}
}

func TestRebuildCommandReplaysTheLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.New(t)
	pool := testdb.Pool(t, url)
	store := eventstore.New(pool)
	appendLoad(t, store, 4, 100, 10)
	testwait.Eventually(t, 10*time.Second, "all events visible", func() (bool, error) {
		got, err := store.ReadAll(ctx, eventstore.Start, 1000, eventstore.Filter{})
		return len(got) == 400, err
	})
	// A stale row the rebuild must clear.
	if _, err := pool.Exec(ctx, `INSERT INTO streams VALUES ('ghost', 'test', 9, 9, 1, 1, now(), now())`); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI(t, url, "projections", "rebuild", "streams")
	if code != 0 {
		t.Fatalf("rebuild: exit %d: %s", code, errOut)
	}
	if !strings.Contains(errOut, "rebuild streams: done, 400 events") {
		t.Fatalf("rebuild output: %q", errOut)
	}
	if ok, err := catalogMatchesLog(ctx, pool); !ok || err != nil {
		t.Fatalf("rebuilt catalog differs from the log (%v)", err)
	}
	code, out, _ := runCLI(t, url, "projections", "status", "--json")
	var st []struct {
		Name, State string
		Behind      int64
	}
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || len(st) != len(app.Projections()) {
		t.Fatalf("status after rebuild: exit %d, %s", code, out)
	}
	if st[0].Name != "streams" || st[0].State != "running" || st[0].Behind != 0 {
		t.Fatalf("streams after rebuild: %+v", st[0])
	}
}

func TestCommandLineMistakesExitTwoWithOneLine(t *testing.T) {
	t.Parallel()
	url := testdb.URLFor("unused")
	cases := [][]string{
		{},
		{"bogus"},
		{"projections"},
		{"projections", "rebuild"},
		{"projections", "rebuild", "nope"},
		{"events", "--after", "12"},
		{"events", "--limit", "-1"},
		{"projections", "verify", "users", "--limit", "-1"},
		{"serve", "--log-format", "xml"},
		{"events", "--limit", "abc"},
		{"events", "--no-such-flag"},
	}
	for _, args := range cases {
		code, _, errOut := runCLI(t, url, args...)
		if code != 2 || !strings.HasPrefix(errOut, "arq: ") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("arq %s: exit %d, stderr %q; want one line", strings.Join(args, " "), code, errOut)
		}
	}
	// Asked for, the usage is printed, on stdout.
	if code, out, _ := runCLI(t, url, "events", "-h"); code != 0 || !strings.Contains(out, "-limit") {
		t.Errorf("arq events -h: exit %d, stdout %q", code, out)
	}
}

func TestUnreachableDatabaseIsOneLineError(t *testing.T) {
	t.Parallel()
	code, _, errOut := runCLI(t, "postgres://postgres@127.0.0.1:1/arq?sslmode=disable&connect_timeout=2", "projections", "status")
	if code != 1 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.HasPrefix(errOut, "arq: ") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

// servingAddr waits until an arq serve process listens, and returns where.
func (p *proc) servingAddr(t *testing.T) string {
	t.Helper()
	return testserver.ServingAddr(t, p.stderr)
}

// A server killed after a command appended but before it answered leaves
// the Idempotency-Key claimed and unanswered. Once the claim is old, a
// retry finds the command's events in the log: it answers for them (202,
// the entity and position) instead of running the command again.
func TestIdempotentRetryAfterACrash(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.New(t)
	pool := testdb.Pool(t, url)
	// Without projections a command appends, then waits for them.
	p := startArq(t, url, []string{"ARQ_HTTP_ADDR=127.0.0.1:0", "ARQ_READ_YOUR_WRITES_TIMEOUT=60s"}, "serve", "--no-projections")
	base := "http://" + p.servingAddr(t)
	post := func(base, path, body string, headers ...string) (*http.Response, map[string]any) {
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, nil
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp, out
	}
	resp, user := post(base, "/v1/users", `{"external_id":"crash","name":"C"}`, "Prefer", "respond-async")
	if resp == nil || resp.StatusCode != 202 {
		t.Fatalf("register: %v", resp)
	}
	_, sess := post(base, "/v1/users/"+user["id"].(string)+"/sessions", `{}`, "Prefer", "respond-async")
	memories := "/v1/users/" + user["id"].(string) + "/memories"
	body := `{"type":"semantic","content":"stored once"}`
	batch := `{"messages":[{"role":"user","content":"one"},{"role":"assistant","content":"two"}]}`
	// Each answers only when the projections have it: never.
	go post(base, memories, body, "Idempotency-Key", "crash-1")
	go post(base, "/v1/sessions/"+sess["id"].(string)+"/messages", batch, "Idempotency-Key", "crash-2")
	count := func(eventType string) (n int) {
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE event_type = $1`, eventType).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	stored := func() int { return count("memory.stored") }
	testwait.Eventually(t, 30*time.Second, "the memory and the messages appended", func() (bool, error) {
		return stored() == 1 && count("message.appended") == 2, nil
	})
	p.kill(t)
	// As if the claim's minute had passed.
	if _, err := pool.Exec(ctx, `UPDATE idempotency_keys SET created_at = now() - interval '2 minutes'`); err != nil {
		t.Fatal(err)
	}
	s := testserver.StartOn(t, url, nil)
	again, ans := post(s.Base, memories, body, "Idempotency-Key", "crash-1")
	if again == nil || again.StatusCode != 202 || again.Header.Get("Idempotent-Replayed") != "true" || again.Header.Get("X-Arq-Position") == "" {
		t.Fatalf("retry after the crash: %v %v", again, ans)
	}
	var mid string
	if err := pool.QueryRow(ctx, `SELECT stream_id FROM events WHERE event_type = 'memory.stored'`).Scan(&mid); err != nil {
		t.Fatal(err)
	}
	if n := stored(); n != 1 || "memory-"+ans["id"].(string) != mid {
		t.Fatalf("%d memories stored; the retry answered %v for %s", n, ans, mid)
	}
	// The answer is kept: the next retry replays it.
	if third, _ := post(s.Base, memories, body, "Idempotency-Key", "crash-1"); third == nil || third.StatusCode != 202 || stored() != 1 {
		t.Fatalf("second retry: %v", third)
	}
	// A batch of messages: the answer names each message with its seq.
	resp, msgs := post(s.Base, "/v1/sessions/"+sess["id"].(string)+"/messages", batch, "Idempotency-Key", "crash-2")
	listed, _ := msgs["messages"].([]any)
	if resp == nil || resp.StatusCode != 202 || len(listed) != 2 || count("message.appended") != 2 {
		t.Fatalf("batch retry after the crash: %v %v", resp, msgs)
	}
	for i, m := range listed {
		var id string
		if err := pool.QueryRow(ctx, `SELECT data->>'message_id' FROM events WHERE event_type = 'message.appended' AND version = $1`, i+1).Scan(&id); err != nil {
			t.Fatal(err)
		}
		if got := m.(map[string]any); got["id"] != id || got["seq"] != float64(i+1) {
			t.Fatalf("message %d: %v, want %s", i+1, got, id)
		}
	}
}
