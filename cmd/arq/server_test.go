package main

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/arq-memory/arq/app"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arq-memory/arq/internal/testdb"
)

// server is an arq serve process run in-process on a port of its own, over
// a database of its own, for the tests of commands that read what a
// server wrote. The HTTP end-to-end tests are in package e2e.
type server struct {
	t    testing.TB
	base string
	url  string // database
	// stop stops the server as a signal would, and waits until it has.
	stop func()
}

func startServer(t testing.TB, env map[string]string) *server {
	t.Helper()
	return startServerOn(t, testdb.New(t), env)
}

// startServerOn starts a server over an existing database.
func startServerOn(t testing.TB, url string, env map[string]string) *server {
	t.Helper()
	getenv := func(k string) string {
		switch k {
		case "ARQ_DATABASE_URL":
			return url
		case "ARQ_HTTP_ADDR":
			return "127.0.0.1:0"
		case "ARQ_LOG_LEVEL":
			return "warn"
		}
		if v, ok := env[k]; ok {
			return v
		}
		switch k {
		case "ARQ_DB_MAX_CONNS":
			// Many servers run at once in the suite, on one Postgres
			// (max_connections 100 by default): a test needs few.
			// Benchmarks keep the default.
			if _, bench := t.(*testing.B); !bench {
				return "8"
			}
		case "ARQ_READ_YOUR_WRITES_TIMEOUT", "ARQ_MIN_POSITION_TIMEOUT":
			// The whole suite runs at once, with -race, on as few as
			// two cores: a projection may fall seconds behind, which
			// the default bounds (2s) would answer as 202 or 503. A
			// test of those answers sets its own bound.
			return "20s"
		}
		return ""
	}
	ready := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var stderr bytes.Buffer
	logs := &syncWriter{w: &stderr}
	go func() {
		cfg, err := app.FromEnv(getenv)
		if err != nil {
			t.Error(err)
			done <- 2
			return
		}
		c := &cli{cfg: cfg, stdout: io.Discard, stderr: logs, ready: func(a string) { ready <- a }}
		if err := c.serve(ctx); err != nil {
			t.Errorf("serve: %v", err)
			done <- 1
			return
		}
		done <- 0
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Error("server did not stop")
			}
		})
	}
	t.Cleanup(func() {
		stop()
		// The live topic of this deployment goes with it (the machine's Redis
		// is shared and kept between runs).
		redisURL := getenv("ARQ_REDIS_URL")
		if redisURL == "" {
			redisURL = app.DefaultConfig().RedisURL
		}
		topic := liveTopicOf(url)
		opt, err := redis.ParseURL(redisURL)
		if topic != "" && err == nil {
			rdb := redis.NewClient(opt)
			_ = rdb.Del(context.Background(), topic).Err()
			_ = rdb.Close()
		}
		if t.Failed() {
			logs.mu.Lock()
			t.Logf("server log:\n%s", stderr.String())
			logs.mu.Unlock()
		}
	})
	select {
	case addr := <-ready:
		return &server{t: t, base: "http://" + addr, url: url, stop: stop}
	case <-done:
		t.Fatalf("server exited before listening")
	case <-time.After(30 * time.Second):
		t.Fatal("server did not start")
	}
	return nil
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
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
