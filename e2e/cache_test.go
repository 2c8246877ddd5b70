package e2e

import (
	"encoding/json"
	"fmt"
	"github.com/arq-memory/arq/internal/testserver"
	"github.com/arq-memory/arq/internal/testwait"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Writers append and store, then read their context at once, over and
// over, at the same time: every read holds the writer's latest message and
// memory, although windows are cached in Redis between writes.
func TestContextCacheNeverStale(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "k", "name": "K"})).Str("id")
	const writers, rounds = 6, 15
	var wg sync.WaitGroup
	errs := make(chan string, writers*rounds)
	hits := make(chan int, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			sid := s.MustGo(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
			h := 0
			for i := 0; i < rounds; i++ {
				content := fmt.Sprintf("writer %d round %d", w, i)
				s.MustGo(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": content}))
				mem := fmt.Sprintf("writer%d fact%d", w, i)
				s.MustGo(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": mem, "importance": 1}))
				for read := 0; read < 2; read++ {
					r := s.MustGo(200, s.Do("GET", "/v1/sessions/"+sid+"/context?max_tokens=4000&query="+fmt.Sprintf("writer%d+fact%d", w, i), nil))
					if r.Header.Get("X-Arq-Cache") == "hit" {
						h++
					}
					var win window
					if err := json.Unmarshal(r.Body, &win); err != nil {
						errs <- err.Error()
						return
					}
					if n := len(win.Messages); n == 0 || win.Messages[n-1].Content != content {
						errs <- fmt.Sprintf("writer %d round %d: stale messages in window", w, i)
					}
					found := false
					for _, m := range win.Memories {
						found = found || m.Content == mem
					}
					if !found {
						errs <- fmt.Sprintf("writer %d round %d: memory %q missing", w, i, mem)
					}
				}
			}
			hits <- h
		}(w)
	}
	wg.Wait()
	reportCacheLoop(t, errs, hits)
}

// Two processes serve one database, each keeping windows in its own
// memory: a window read through one after a write through the other
// always holds the write, also where the reader had the window before it
// in memory.
func TestContextCacheNeverStaleAcrossProcesses(t *testing.T) {
	t.Parallel()
	a := testserver.Start(t, nil)
	b := testserver.StartOn(t, a.URL, nil)
	uid := a.Must(201, a.Do("POST", "/v1/users", map[string]any{"external_id": "x", "name": "X"})).Str("id")
	sid := a.Must(201, a.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	hits := 0
	for i := 0; i < 20; i++ {
		writer, reader := a, b
		if i%2 == 1 {
			writer, reader = b, a
		}
		content := fmt.Sprintf("round %d", i)
		writer.Must(201, writer.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": content}))
		for read := 0; read < 2; read++ {
			r := reader.Must(200, reader.Do("GET", "/v1/sessions/"+sid+"/context?query=round", nil))
			if r.Header.Get("X-Arq-Cache") == "hit" {
				hits++
			}
			var win window
			if err := json.Unmarshal(r.Body, &win); err != nil {
				t.Fatal(err)
			}
			if n := len(win.Messages); n == 0 || win.Messages[n-1].Content != content {
				t.Fatalf("round %d, read %d: window ends with %v, want %q", i, read, win.Messages, content)
			}
		}
	}
	if hits == 0 {
		t.Fatal("no read was served from the cache")
	}
}

// reportCacheLoop reports what the goroutines of a write-then-read loop
// found, once they are done: every stale read, and a failure when no read
// at all came from the cache (the loop then proved nothing about it).
func reportCacheLoop(t *testing.T, errs chan string, hits chan int) {
	t.Helper()
	close(errs)
	close(hits)
	for e := range errs {
		t.Error(e)
	}
	total := 0
	for h := range hits {
		total += h
	}
	if total == 0 {
		t.Fatal("no read was served from the cache")
	}
}

// redisOn runs a Redis of the test's own on port; stop kills it.
func redisOn(t *testing.T, port int) (stop func()) {
	t.Helper()
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server (the tests need it on PATH): %v", err)
	}
	var once sync.Once
	stop = func() { once.Do(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }) }
	t.Cleanup(stop)
	testwait.Eventually(t, 10*time.Second, "redis answers", func() (bool, error) {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
		}
		return err == nil, nil
	})
	return stop
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// With Redis stopped every endpoint keeps working from Postgres, /readyz
// says so, and when Redis is back caching resumes without a restart. The
// process keeps no entries in memory here, so every hit is Redis's.
func TestRedisDownAndBack(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	stop := redisOn(t, port)
	s := testserver.Start(t, map[string]string{"ARQ_REDIS_URL": fmt.Sprintf("redis://127.0.0.1:%d/0", port), "ARQ_CACHE_MEMORY_BYTES": "0"})
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "d", "name": "D"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "hello"}))
	cacheOf := func() string {
		return s.Must(200, s.Do("GET", "/v1/sessions/"+sid+"/context", nil)).Header.Get("X-Arq-Cache")
	}
	cacheOf()
	if got := cacheOf(); got != "hit" {
		t.Fatalf("second read with Redis up: %q, want hit", got)
	}

	stop()
	if got := cacheOf(); got != "miss" {
		t.Fatalf("read with Redis down: %q, want miss", got)
	}
	s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "still here"}))
	s.Must(200, s.Do("GET", "/v1/sessions/"+sid+"/messages", nil))
	ready := s.Must(200, s.Do("GET", "/readyz", nil))
	if checks, _ := ready.JSON["checks"].(map[string]any); checks["redis"] == "ok" || checks["redis"] == nil {
		t.Fatalf("/readyz with Redis down: %s", ready.Body)
	}

	redisOn(t, port)
	testwait.Eventually(t, 10*time.Second, "caching resumes", func() (bool, error) {
		cacheOf()
		return cacheOf() == "hit", nil
	})
	if checks, _ := s.Must(200, s.Do("GET", "/readyz", nil)).JSON["checks"].(map[string]any); checks["redis"] != "ok" {
		t.Fatalf("/readyz after Redis came back: %v", checks)
	}
}

// The same outage with the default configuration (entries kept in memory
// too): reads go on, a window read from memory before the outage is
// served from it, every write shows in the next read all the same, and
// /readyz says Redis is away.
func TestRedisDownWithTheMemoryCache(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	stop := redisOn(t, port)
	s := testserver.Start(t, map[string]string{"ARQ_REDIS_URL": fmt.Sprintf("redis://127.0.0.1:%d/0", port)})
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "m", "name": "M"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "before"}))
	last := func() (string, string) {
		r := s.Must(200, s.Do("GET", "/v1/sessions/"+sid+"/context", nil))
		var win window
		if err := json.Unmarshal(r.Body, &win); err != nil {
			t.Fatal(err)
		}
		if len(win.Messages) == 0 {
			t.Fatalf("window without messages: %s", r.Body)
		}
		return win.Messages[len(win.Messages)-1].Content, r.Header.Get("X-Arq-Cache")
	}
	last()

	stop()
	if content, cache := last(); content != "before" || cache != "hit" {
		t.Fatalf("read with Redis down: %q (%s), want the window from memory", content, cache)
	}
	for i := 0; i < 3; i++ {
		content := fmt.Sprintf("during %d", i)
		s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": content}))
		if got, _ := last(); got != content {
			t.Fatalf("read after a write with Redis down: %q, want %q", got, content)
		}
	}
	ready := s.Must(200, s.Do("GET", "/readyz", nil))
	if checks, _ := ready.JSON["checks"].(map[string]any); checks["redis"] == "ok" || checks["redis"] == nil {
		t.Fatalf("/readyz with Redis down: %s", ready.Body)
	}

	redisOn(t, port)
	s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "after"}))
	if got, _ := last(); got != "after" {
		t.Fatalf("read after Redis came back: %q", got)
	}
	testwait.Eventually(t, 10*time.Second, "/readyz sees Redis again", func() (bool, error) {
		checks, _ := s.Must(200, s.Do("GET", "/readyz", nil)).JSON["checks"].(map[string]any)
		return checks["redis"] == "ok", nil
	})
}
