package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arq-memory/arq/app"
	"github.com/arq-memory/arq/internal/testdb"
)

// server is an arq server run in-process, as `arq serve` runs it
// (app.Migrate, app.Open, App.Serve), on a port of its own over a database
// of its own.
type server struct {
	t    testing.TB
	base string
	url  string // database
	key  string // bearer key sent with every request, if any
	// stop stops the server as a signal would, and waits until it has.
	stop func()
	// logs is what the server logged.
	logs *syncBuffer
}

// startServer starts a server over a fresh database, configured by env
// (ARQ_* variables) over the test defaults, logging warnings and errors.
func startServer(t testing.TB, env map[string]string) *server {
	t.Helper()
	return startServerOn(t, testdb.New(t), env)
}

// startServerOn starts a server over an existing database.
func startServerOn(t testing.TB, url string, env map[string]string) *server {
	t.Helper()
	return start(t, url, env, "warn", nil)
}

// startLoggedServer starts a server that logs at level info, access log
// included, for tests that read its log (lines, where). The database is
// env's ARQ_DATABASE_URL, else a fresh one; patch, if not nil, may change
// the options the app is opened with.
func startLoggedServer(t *testing.T, env map[string]string, patch func(*app.Options)) *server {
	t.Helper()
	url := env["ARQ_DATABASE_URL"]
	if url == "" {
		url = testdb.New(t)
	}
	return start(t, url, env, "info", patch)
}

// start runs the server over the database at url; env, then the test
// defaults, configure it.
func start(t testing.TB, url string, env map[string]string, level string, patch func(*app.Options)) *server {
	t.Helper()
	defaults := map[string]string{
		"ARQ_HTTP_ADDR": "127.0.0.1:0",
		"ARQ_LOG_LEVEL": level,
		// The whole suite runs at once, with -race, on as few as two
		// cores: a projection may fall seconds behind, which the default
		// bounds (2s) would answer as 202 or 503. A test of those answers
		// sets its own bound.
		"ARQ_READ_YOUR_WRITES_TIMEOUT": "20s",
		"ARQ_MIN_POSITION_TIMEOUT":     "20s",
	}
	// Many servers run at once in the suite, on one Postgres
	// (max_connections 100 by default): a test needs few. Benchmarks keep
	// the default.
	if _, bench := t.(*testing.B); !bench {
		defaults["ARQ_DB_MAX_CONNS"] = "8"
	}
	cfg, err := app.FromEnv(func(k string) string {
		if k == "ARQ_DATABASE_URL" {
			return url
		}
		if v, ok := env[k]; ok {
			return v
		}
		return defaults[k]
	})
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := cfg.Logger(logs)
	ctx, cancel := context.WithCancel(context.Background())
	if err := app.Migrate(ctx, cfg, log); err != nil {
		cancel()
		t.Fatal(err)
	}
	opt := app.Options{Parts: app.PartServer}
	if patch != nil {
		patch(&opt)
	}
	a, err := app.Open(ctx, cfg, log, opt)
	if err != nil {
		cancel()
		t.Fatalf("open: %v\n%s", err, logs.String())
	}
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, func(addr string) { ready <- addr }) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("serve: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("server did not stop")
			}
			a.Close()
		})
	}
	t.Cleanup(func() {
		stop()
		// The live topic of this deployment goes with it (the machine's
		// Redis is shared and kept between runs).
		if opt, err := redis.ParseURL(cfg.RedisURL); err == nil {
			rdb := redis.NewClient(opt)
			_ = rdb.Del(context.Background(), app.LiveTopic(a.Namespace())).Err()
			_ = rdb.Close()
		}
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	select {
	case addr := <-ready:
		return &server{t: t, base: "http://" + addr, url: url, stop: stop, logs: logs}
	case err := <-done:
		t.Fatalf("server exited before listening: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("server did not start")
	}
	return nil
}

// lines are the server's log lines, decoded; the server logs JSON.
func (s *server) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s.logs.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l map[string]any
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("a log line that is no JSON: %q", sc.Text())
		}
		out = append(out, l)
	}
	return out
}

// where returns the log lines whose fields have the given values.
func (s *server) where(t *testing.T, fields map[string]any) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range s.lines(t) {
		match := true
		for k, v := range fields {
			if l[k] != v {
				match = false
			}
		}
		if match {
			out = append(out, l)
		}
	}
	return out
}

// response is an HTTP answer with its body decoded as JSON when it is.
type response struct {
	status int
	header http.Header
	body   []byte
	json   map[string]any
}

func (r response) str(key string) string {
	v, _ := r.json[key].(string)
	return v
}

func (r response) num(key string) float64 {
	v, _ := r.json[key].(float64)
	return v
}

func (r response) items() []map[string]any {
	raw, _ := r.json["items"].([]any)
	out := make([]map[string]any, len(raw))
	for i, x := range raw {
		out[i], _ = x.(map[string]any)
	}
	return out
}

// do sends a request; body is marshalled as JSON unless it is a string
// (sent as is) or nil. Extra headers come in pairs.
func (s *server) do(method, path string, body any, headers ...string) response {
	s.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if s.key != "" {
		req.Header.Set("Authorization", "Bearer "+s.key)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	r := response{status: resp.StatusCode, header: resp.Header, body: raw}
	_ = json.Unmarshal(raw, &r.json)
	return r
}

// must fails the test unless the answer has the status.
func (s *server) must(status int, r response) response {
	s.t.Helper()
	if r.status != status {
		s.t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	return r
}

// mustGo is must for a goroutine the test started, where FailNow may not
// be called: it fails the test and ends only the calling goroutine (its
// deferred calls, such as a WaitGroup's Done, still run).
func (s *server) mustGo(status int, r response) response {
	s.t.Helper()
	if r.status != status {
		s.t.Errorf("status %d, want %d: %s", r.status, status, r.body)
		runtime.Goexit()
	}
	return r
}
