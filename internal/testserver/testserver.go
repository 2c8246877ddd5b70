// Package testserver runs the real arq server in-process for tests: app.Migrate,
// app.Open and App.Serve on 127.0.0.1:0 over a database of the test's own,
// configured by ARQ_* variables as the binary is, with helpers to send
// requests and read the server's log. The end-to-end tests (e2e) and the
// command line's tests (cmd/arq) share it.
package testserver

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
	"github.com/arq-memory/arq/internal/testwait"
)

// Server is an arq server run in-process, as `arq serve` runs it
// (app.Migrate, app.Open, App.Serve), on a port of its own over a database
// of its own.
type Server struct {
	t testing.TB
	// Base is the API's address, http://host:port.
	Base string
	// URL is the database's.
	URL string
	// Key is the bearer key sent with every request, if any.
	Key string
	// Stop stops the server as a signal would, and waits until it has.
	Stop func()
	// Logs is what the server logged.
	Logs *SyncBuffer
	// check holds every answer to the OpenAPI document.
	check *Validator
}

// serverFor is the Server at base, its answers checked against the
// OpenAPI document.
func serverFor(t testing.TB, base, url string, stop func(), logs *SyncBuffer) *Server {
	t.Helper()
	v, err := sharedValidator()
	if err != nil {
		t.Fatal(err)
	}
	return &Server{t: t, Base: base, URL: url, Stop: stop, Logs: logs, check: v}
}

// Client is an HTTP client whose answers are checked against the OpenAPI
// document as Do's are: a stray fails the test. The generated client
// (package client) takes it.
func (s *Server) Client() *http.Client {
	return &http.Client{Transport: checking{next: http.DefaultTransport, v: s.check, report: func(err error) {
		s.t.Errorf("%v", err)
	}}}
}

// Start starts a server over a fresh database, configured by env
// (ARQ_* variables) over the test defaults, logging warnings and errors.
func Start(t testing.TB, env map[string]string) *Server {
	t.Helper()
	return StartOn(t, testdb.New(t), env)
}

// StartOn starts a server over an existing database.
func StartOn(t testing.TB, url string, env map[string]string) *Server {
	t.Helper()
	return start(t, url, env, "warn", nil)
}

// StartLogged starts a server that logs at level info, access log
// included, for tests that read its log (Lines, Where). The database is
// env's ARQ_DATABASE_URL, else a fresh one; patch, if not nil, may change
// the options the app is opened with.
func StartLogged(t *testing.T, env map[string]string, patch func(*app.Options)) *Server {
	t.Helper()
	url := env["ARQ_DATABASE_URL"]
	if url == "" {
		url = testdb.New(t)
	}
	return start(t, url, env, "info", patch)
}

// MasterKey is the master key of the servers and commands tests start,
// unless a test gives its own (testdb.MasterKey).
const MasterKey = testdb.MasterKey

// start runs the server over the database at url; env, then the test
// defaults, configure it.
func start(t testing.TB, url string, env map[string]string, level string, patch func(*app.Options)) *Server {
	t.Helper()
	defaults := map[string]string{
		"ARQ_HTTP_ADDR": "127.0.0.1:0",
		"ARQ_LOG_LEVEL": level,
		// The whole suite runs at once, with -race, on as few as two
		// cores: a projection may fall seconds behind, which the default
		// bounds (2s) would answer as 202 or 503. A test of those answers
		// sets its own bound.
		"ARQ_READ_YOUR_WRITES_TIMEOUT": "20s",
		// Tests never make or read a key file of the user running them.
		"ARQ_MASTER_KEY":           MasterKey,
		"ARQ_LOG_SIGNING_KEY":      testdb.LogSigningKey,
		"ARQ_LOG_CHECKPOINT_EVERY": "500ms",
		"ARQ_MIN_POSITION_TIMEOUT": "20s",
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
	logs := &SyncBuffer{}
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
		return serverFor(t, "http://"+addr, url, stop, logs)
	case err := <-done:
		t.Fatalf("server exited before listening: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("server did not start")
	}
	return nil
}

// Attach is a Server for an arq already listening at base (a process the
// test started) over the database at url; its Stop does nothing.
func Attach(t testing.TB, base, url string) *Server {
	return serverFor(t, base, url, func() {}, &SyncBuffer{})
}

// T is the test or benchmark the server runs for.
func (s *Server) T() testing.TB { return s.t }

// Lines are the server's log lines, decoded; the server logs JSON.
func (s *Server) Lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s.Logs.String()))
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

// Where returns the log lines whose fields have the given values.
func (s *Server) Where(t *testing.T, fields map[string]any) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range s.Lines(t) {
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

// Response is an HTTP answer with its body decoded as JSON when it is.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
	JSON   map[string]any
}

// Str is a string field of the JSON body; "" when absent.
func (r Response) Str(key string) string {
	v, _ := r.JSON[key].(string)
	return v
}

// Num is a number field of the JSON body; 0 when absent.
func (r Response) Num(key string) float64 {
	v, _ := r.JSON[key].(float64)
	return v
}

// Items are the items of a listing's JSON body.
func (r Response) Items() []map[string]any {
	raw, _ := r.JSON["items"].([]any)
	out := make([]map[string]any, len(raw))
	for i, x := range raw {
		out[i], _ = x.(map[string]any)
	}
	return out
}

// Do sends a request; body is marshalled as JSON unless it is a string
// (sent as is) or nil. Extra headers come in pairs.
func (s *Server) Do(method, path string, body any, headers ...string) Response {
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
	req, err := http.NewRequest(method, s.Base+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if s.Key != "" {
		req.Header.Set("Authorization", "Bearer "+s.Key)
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
	if err := s.check.Check(req, resp.StatusCode, resp.Header, raw); err != nil {
		s.t.Errorf("%v", err)
	}
	r := Response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
	_ = json.Unmarshal(raw, &r.JSON)
	return r
}

// Must fails the test unless the answer has the status.
func (s *Server) Must(status int, r Response) Response {
	s.t.Helper()
	if r.Status != status {
		s.t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	return r
}

// MustGo is Must for a goroutine the test started, where FailNow may not
// be called: it fails the test and ends only the calling goroutine (its
// deferred calls, such as a WaitGroup's Done, still run).
func (s *Server) MustGo(status int, r Response) Response {
	s.t.Helper()
	if r.Status != status {
		s.t.Errorf("status %d, want %d: %s", r.Status, status, r.Body)
		runtime.Goexit()
	}
	return r
}

// ServingAddr waits, up to 30 s, until the log of an arq process (its
// stderr, JSON) has its "arq serving" line, and returns the address there.
func ServingAddr(t testing.TB, log *SyncBuffer) string {
	t.Helper()
	var addr string
	testwait.Eventually(t, 30*time.Second, "server listening", func() (bool, error) {
		sc := bufio.NewScanner(strings.NewReader(log.String()))
		for sc.Scan() {
			var line struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "arq serving" {
				addr = line.Addr
				return true, nil
			}
		}
		return false, nil
	})
	return addr
}

// SyncBuffer is a buffer that goroutines may write to at once.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String is what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
