package e2e

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"
)

// entityRead is what a GET of one entity by id answered.
type entityRead struct {
	response
}

// getEntity reads path, requiring 200 and an ETag that matches the body's version.
func (s *server) getEntity(t *testing.T, path string, must ...func(int, response) response) entityRead {
	t.Helper()
	check := s.must
	if len(must) > 0 {
		check = must[0] // mustGo, off the test's goroutine
	}
	r := check(200, s.do("GET", path, nil))
	if want := `"` + strconv.Itoa(int(r.num("version"))) + `"`; r.header.Get("ETag") != want {
		t.Errorf("GET %s: ETag %q, body version %s", path, r.header.Get("ETag"), want)
	}
	return entityRead{r}
}

func (r entityRead) hit() bool { return r.header.Get("X-Arq-Cache") == "hit" }

// Writers change their own user, session, message and memory, and read
// each back at once, twice, from the server they wrote to and from a
// second server on the same database: every read holds the write before
// it, although the entities are cached in Redis between writes.
func TestEntityCacheNeverStale(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	other := startServerOn(t, s.url, nil)
	const writers, rounds = 6, 12
	var wg sync.WaitGroup
	errs := make(chan string, writers*rounds*20) // 20 reads a round
	hits := make(chan int, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			uid := s.mustGo(201, s.do("POST", "/v1/users", map[string]any{"external_id": fmt.Sprintf("w%d", w), "name": "W"})).str("id")
			sid := s.mustGo(201, s.do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).str("id")
			msg := s.mustGo(201, s.do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "first"})).str("id")
			mem := s.mustGo(201, s.do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "first"})).str("id")
			h := 0
			check := func(path, field string, want any) {
				for _, srv := range []*server{s, s, other, other} {
					r := srv.getEntity(t, path, srv.mustGo)
					if r.hit() {
						h++
					}
					if got := r.json[field]; got != want {
						errs <- fmt.Sprintf("writer %d: GET %s: %s = %v, want %v", w, path, field, got, want)
					}
				}
			}
			for i := 0; i < rounds; i++ {
				text := fmt.Sprintf("writer %d round %d", w, i)
				m := s.mustGo(200, s.do("PATCH", "/v1/memories/"+mem, map[string]any{"content": text}))
				check("/v1/memories/"+mem, "content", text)
				check("/v1/memories/"+mem, "version", m.num("version"))
				s.mustGo(200, s.do("PATCH", "/v1/users/"+uid, map[string]any{"name": text}))
				check("/v1/users/"+uid, "name", text)
				s.mustGo(200, s.do("PATCH", "/v1/messages/"+msg, map[string]any{"content": text}))
				check("/v1/messages/"+msg, "content", text)
				s.mustGo(201, s.do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": text}))
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
	s := startServer(t, nil)
	other := startServerOn(t, s.url, nil)
	uid := s.must(201, s.do("POST", "/v1/users", map[string]any{"external_id": "del", "name": "Del"})).str("id")
	sid := s.must(201, s.do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).str("id")
	msg := s.must(201, s.do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "hello"})).str("id")
	mem := s.must(201, s.do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "kept"})).str("id")
	mem2 := s.must(201, s.do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "gone with the user"})).str("id")
	warm := func(path string) {
		t.Helper()
		for _, srv := range []*server{s, other} {
			srv.getEntity(t, path)
			if !srv.getEntity(t, path).hit() {
				t.Fatalf("GET %s a second time: not from the cache", path)
			}
		}
	}
	gone := func(path string) {
		t.Helper()
		for _, srv := range []*server{s, other} {
			isProblem(t, srv.do("GET", path, nil), 404, "")
		}
	}
	for _, p := range []string{"/v1/memories/" + mem, "/v1/memories/" + mem2, "/v1/messages/" + msg, "/v1/sessions/" + sid, "/v1/users/" + uid} {
		warm(p)
	}
	s.must(204, s.do("DELETE", "/v1/memories/"+mem, nil))
	gone("/v1/memories/" + mem)
	s.must(204, s.do("DELETE", "/v1/messages/"+msg, nil))
	gone("/v1/messages/" + msg)
	s.must(204, s.do("DELETE", "/v1/users/"+uid, nil))
	for _, p := range []string{"/v1/users/" + uid, "/v1/sessions/" + sid, "/v1/memories/" + mem2} {
		gone(p)
	}
}

// A cached memory is gone at its expiry time, and a cached session is
// expired at its expiry time, before the expiry worker records either.
func TestEntityCacheExpiry(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"ARQ_EXPIRY_INTERVAL": "1h"})
	uid := s.must(201, s.do("POST", "/v1/users", map[string]any{"external_id": "exp", "name": "Exp"})).str("id")
	at := time.Now().Add(1500 * time.Millisecond)
	mem := s.must(201, s.do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "working", "content": "soon gone",
		"expires_at": at.Format(time.RFC3339Nano)})).str("id")
	sid := s.must(201, s.do("POST", "/v1/users/"+uid+"/sessions", map[string]any{"ttl_seconds": 2})).str("id")
	sessionEnds, err := time.Parse(time.RFC3339Nano, s.getEntity(t, "/v1/sessions/"+sid).str("expires_at"))
	if err != nil {
		t.Fatal(err)
	}
	s.getEntity(t, "/v1/memories/"+mem)
	for _, p := range []string{"/v1/memories/" + mem, "/v1/sessions/" + sid} {
		if !s.getEntity(t, p).hit() {
			t.Fatalf("GET %s a second time: not from the cache", p)
		}
	}
	if time.Now().After(at) {
		t.Fatal("the memory expired before the test could read it from the cache; the machine is too slow for this test")
	}

	time.Sleep(time.Until(at)) // the condition is the time itself
	isProblem(t, s.do("GET", "/v1/memories/"+mem, nil), 404, "")
	time.Sleep(time.Until(sessionEnds))
	if got := s.getEntity(t, "/v1/sessions/"+sid); got.str("status") != "expired" {
		t.Fatalf("session at its expiry time: %s", got.body)
	}
}

// With Redis stopped the entity reads answer from Postgres, also after a
// write; when Redis is back they are cached again without a restart. The
// process keeps no entries in memory here, so every hit is Redis's.
func TestEntityCacheRedisDownAndBack(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	stop := redisOn(t, port)
	s := startServer(t, map[string]string{"ARQ_REDIS_URL": fmt.Sprintf("redis://127.0.0.1:%d/0", port), "ARQ_CACHE_MEMORY_BYTES": "0"})
	uid := s.must(201, s.do("POST", "/v1/users", map[string]any{"external_id": "r", "name": "R"})).str("id")
	sid := s.must(201, s.do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).str("id")
	msg := s.must(201, s.do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "hello"})).str("id")
	mem := s.must(201, s.do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "before"})).str("id")
	paths := []string{"/v1/users/" + uid, "/v1/sessions/" + sid, "/v1/messages/" + msg, "/v1/memories/" + mem}
	for _, p := range paths {
		s.getEntity(t, p)
		if !s.getEntity(t, p).hit() {
			t.Fatalf("GET %s a second time with Redis up: not from the cache", p)
		}
	}

	stop()
	for _, p := range paths {
		if r := s.getEntity(t, p); r.header.Get("X-Arq-Cache") != "miss" {
			t.Fatalf("GET %s with Redis down: X-Arq-Cache %q, want miss", p, r.header.Get("X-Arq-Cache"))
		}
	}
	s.must(200, s.do("PATCH", "/v1/memories/"+mem, map[string]any{"content": "during"}))
	if got := s.getEntity(t, "/v1/memories/"+mem); got.str("content") != "during" {
		t.Fatalf("memory read with Redis down after a write: %s", got.body)
	}
	ready := s.must(200, s.do("GET", "/readyz", nil))
	if checks, _ := ready.json["checks"].(map[string]any); checks["redis"] == "ok" || checks["redis"] == nil {
		t.Fatalf("/readyz with Redis down: %s", ready.body)
	}

	redisOn(t, port)
	for _, p := range paths {
		eventually(t, 10*time.Second, "caching of "+p+" resumes", func() (bool, error) {
			s.getEntity(t, p)
			return s.getEntity(t, p).hit(), nil
		})
	}
	if got := s.getEntity(t, "/v1/memories/"+mem); got.str("content") != "during" {
		t.Fatalf("memory read after Redis came back: %s", got.body)
	}
}

// A write through a server that cannot reach Redis (so cannot touch the
// cache) is seen at once through a server that has the old state cached.
func TestEntityCacheWriteWithoutRedis(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	blind := startServerOn(t, s.url, map[string]string{"ARQ_REDIS_URL": fmt.Sprintf("redis://127.0.0.1:%d/0", freePort(t))})
	uid := s.must(201, s.do("POST", "/v1/users", map[string]any{"external_id": "b", "name": "B"})).str("id")
	mem := s.must(201, s.do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "old"})).str("id")
	s.getEntity(t, "/v1/memories/"+mem)
	if !s.getEntity(t, "/v1/memories/"+mem).hit() {
		t.Fatal("second read: not from the cache")
	}
	blind.must(200, blind.do("PATCH", "/v1/memories/"+mem, map[string]any{"content": "new"}))
	got := s.getEntity(t, "/v1/memories/"+mem)
	if got.str("content") != "new" || got.hit() {
		t.Fatalf("read after a write elsewhere: %s (X-Arq-Cache %s)", got.body, got.header.Get("X-Arq-Cache"))
	}
	blind.must(204, blind.do("DELETE", "/v1/memories/"+mem, nil))
	isProblem(t, s.do("GET", "/v1/memories/"+mem, nil), 404, "")
}
