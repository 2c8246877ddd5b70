package e2e

import (
	"fmt"
	"github.com/arq-memory/arq/internal/testserver"
	"github.com/arq-memory/arq/internal/testwait"
	"strconv"
	"sync"
	"testing"
	"time"
)

// entityRead is what a GET of one entity by id answered.
type entityRead struct {
	testserver.Response
}

// getEntity reads path, requiring 200 and an ETag that matches the body's version.
func getEntity(s *testserver.Server, t *testing.T, path string, must ...func(int, testserver.Response) testserver.Response) entityRead {
	t.Helper()
	check := s.Must
	if len(must) > 0 {
		check = must[0] // mustGo, off the test's goroutine
	}
	r := check(200, s.Do("GET", path, nil))
	if want := `"` + strconv.Itoa(int(r.Num("version"))) + `"`; r.Header.Get("ETag") != want {
		t.Errorf("GET %s: ETag %q, body version %s", path, r.Header.Get("ETag"), want)
	}
	return entityRead{r}
}

func (r entityRead) hit() bool { return r.Header.Get("X-Arq-Cache") == "hit" }

// Writers change their own user, session, message and memory, and read
// each back at once, twice, from the server they wrote to and from a
// second server on the same database: every read holds the write before
// it, although the entities are cached in Redis between writes.
func TestEntityCacheNeverStale(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	other := testserver.StartOn(t, s.URL, nil)
	const writers, rounds = 6, 12
	var wg sync.WaitGroup
	errs := make(chan string, writers*rounds*20) // 20 reads a round
	hits := make(chan int, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			uid := s.MustGo(201, s.Do("POST", "/v1/users", map[string]any{"external_id": fmt.Sprintf("w%d", w), "name": "W"})).Str("id")
			sid := s.MustGo(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
			msg := s.MustGo(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "first"})).Str("id")
			mem := s.MustGo(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "first"})).Str("id")
			h := 0
			check := func(path, field string, want any) {
				for _, srv := range []*testserver.Server{s, s, other, other} {
					r := getEntity(srv, t, path, srv.MustGo)
					if r.hit() {
						h++
					}
					if got := r.JSON[field]; got != want {
						errs <- fmt.Sprintf("writer %d: GET %s: %s = %v, want %v", w, path, field, got, want)
					}
				}
			}
			for i := 0; i < rounds; i++ {
				text := fmt.Sprintf("writer %d round %d", w, i)
				m := s.MustGo(200, s.Do("PATCH", "/v1/memories/"+mem, map[string]any{"content": text}))
				check("/v1/memories/"+mem, "content", text)
				check("/v1/memories/"+mem, "version", m.Num("version"))
				s.MustGo(200, s.Do("PATCH", "/v1/users/"+uid, map[string]any{"name": text}))
				check("/v1/users/"+uid, "name", text)
				s.MustGo(200, s.Do("PATCH", "/v1/messages/"+msg, map[string]any{"content": text}))
				check("/v1/messages/"+msg, "content", text)
				s.MustGo(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": text}))
				check("/v1/sessions/"+sid, "message_count", float64(i+2))
			}
			hits <- h
		}(w)
	}
	wg.Wait()
	reportCacheLoop(t, errs, hits)
}

// A deleted entity is gone from the next read, also when it was cached,
// on every server.
func TestEntityCacheDelete(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	other := testserver.StartOn(t, s.URL, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "del", "name": "Del"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	msg := s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "hello"})).Str("id")
	mem := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "kept"})).Str("id")
	mem2 := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "gone with the user"})).Str("id")
	warm := func(path string) {
		t.Helper()
		for _, srv := range []*testserver.Server{s, other} {
			getEntity(srv, t, path)
			if !getEntity(srv, t, path).hit() {
				t.Fatalf("GET %s a second time: not from the cache", path)
			}
		}
	}
	gone := func(path string) {
		t.Helper()
		for _, srv := range []*testserver.Server{s, other} {
			isProblem(t, srv.Do("GET", path, nil), 404, "")
		}
	}
	for _, p := range []string{"/v1/memories/" + mem, "/v1/memories/" + mem2, "/v1/messages/" + msg, "/v1/sessions/" + sid, "/v1/users/" + uid} {
		warm(p)
	}
	s.Must(204, s.Do("DELETE", "/v1/memories/"+mem, nil))
	gone("/v1/memories/" + mem)
	s.Must(204, s.Do("DELETE", "/v1/messages/"+msg, nil))
	gone("/v1/messages/" + msg)
	s.Must(204, s.Do("DELETE", "/v1/users/"+uid, nil))
	for _, p := range []string{"/v1/users/" + uid, "/v1/sessions/" + sid, "/v1/memories/" + mem2} {
		gone(p)
	}
}

// A cached memory is gone at its expiry time, and a cached session is
// expired at its expiry time, before the expiry worker records either.
func TestEntityCacheExpiry(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, map[string]string{"ARQ_EXPIRY_INTERVAL": "1h"})
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "exp", "name": "Exp"})).Str("id")
	at := time.Now().Add(1500 * time.Millisecond)
	mem := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "working", "content": "soon gone",
		"expires_at": at.Format(time.RFC3339Nano)})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{"ttl_seconds": 2})).Str("id")
	sessionEnds, err := time.Parse(time.RFC3339Nano, getEntity(s, t, "/v1/sessions/"+sid).Str("expires_at"))
	if err != nil {
		t.Fatal(err)
	}
	getEntity(s, t, "/v1/memories/"+mem)
	for _, p := range []string{"/v1/memories/" + mem, "/v1/sessions/" + sid} {
		if !getEntity(s, t, p).hit() {
			t.Fatalf("GET %s a second time: not from the cache", p)
		}
	}
	if time.Now().After(at) {
		t.Fatal("the memory expired before the test could read it from the cache; the machine is too slow for this test")
	}

	time.Sleep(time.Until(at)) // the condition is the time itself
	isProblem(t, s.Do("GET", "/v1/memories/"+mem, nil), 404, "")
	time.Sleep(time.Until(sessionEnds))
	if got := getEntity(s, t, "/v1/sessions/"+sid); got.Str("status") != "expired" {
		t.Fatalf("session at its expiry time: %s", got.Body)
	}
}

// With Redis stopped the entity reads answer from Postgres, also after a
// write; when Redis is back they are cached again without a restart. The
// process keeps no entries in memory here, so every hit is Redis's.
func TestEntityCacheRedisDownAndBack(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	stop := redisOn(t, port)
	s := testserver.Start(t, map[string]string{"ARQ_REDIS_URL": fmt.Sprintf("redis://127.0.0.1:%d/0", port), "ARQ_CACHE_MEMORY_BYTES": "0"})
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "r", "name": "R"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	msg := s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "hello"})).Str("id")
	mem := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "before"})).Str("id")
	paths := []string{"/v1/users/" + uid, "/v1/sessions/" + sid, "/v1/messages/" + msg, "/v1/memories/" + mem}
	for _, p := range paths {
		getEntity(s, t, p)
		if !getEntity(s, t, p).hit() {
			t.Fatalf("GET %s a second time with Redis up: not from the cache", p)
		}
	}

	stop()
	for _, p := range paths {
		if r := getEntity(s, t, p); r.Header.Get("X-Arq-Cache") != "miss" {
			t.Fatalf("GET %s with Redis down: X-Arq-Cache %q, want miss", p, r.Header.Get("X-Arq-Cache"))
		}
	}
	s.Must(200, s.Do("PATCH", "/v1/memories/"+mem, map[string]any{"content": "during"}))
	if got := getEntity(s, t, "/v1/memories/"+mem); got.Str("content") != "during" {
		t.Fatalf("memory read with Redis down after a write: %s", got.Body)
	}
	ready := s.Must(200, s.Do("GET", "/readyz", nil))
	if checks, _ := ready.JSON["checks"].(map[string]any); checks["redis"] == "ok" || checks["redis"] == nil {
		t.Fatalf("/readyz with Redis down: %s", ready.Body)
	}

	redisOn(t, port)
	for _, p := range paths {
		testwait.Eventually(t, 10*time.Second, "caching of "+p+" resumes", func() (bool, error) {
			getEntity(s, t, p)
			return getEntity(s, t, p).hit(), nil
		})
	}
	if got := getEntity(s, t, "/v1/memories/"+mem); got.Str("content") != "during" {
		t.Fatalf("memory read after Redis came back: %s", got.Body)
	}
}

// A write through a server that cannot reach Redis (so cannot touch the
// cache) is seen at once through a server that has the old state cached.
func TestEntityCacheWriteWithoutRedis(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	blind := testserver.StartOn(t, s.URL, map[string]string{"ARQ_REDIS_URL": fmt.Sprintf("redis://127.0.0.1:%d/0", freePort(t))})
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "b", "name": "B"})).Str("id")
	mem := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "old"})).Str("id")
	getEntity(s, t, "/v1/memories/"+mem)
	if !getEntity(s, t, "/v1/memories/"+mem).hit() {
		t.Fatal("second read: not from the cache")
	}
	blind.Must(200, blind.Do("PATCH", "/v1/memories/"+mem, map[string]any{"content": "new"}))
	got := getEntity(s, t, "/v1/memories/"+mem)
	if got.Str("content") != "new" || got.hit() {
		t.Fatalf("read after a write elsewhere: %s (X-Arq-Cache %s)", got.Body, got.Header.Get("X-Arq-Cache"))
	}
	blind.Must(204, blind.Do("DELETE", "/v1/memories/"+mem, nil))
	isProblem(t, s.Do("GET", "/v1/memories/"+mem, nil), 404, "")
}
