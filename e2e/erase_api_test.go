package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/arq-memory/arq/app"
	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/internal/testserver"
	"github.com/arq-memory/arq/internal/testwait"
)

// redisOf is the machine's Redis, which the test servers use, and the
// prefix of every key of the server's deployment.
func redisOf(t *testing.T, s *testserver.Server) (*redis.Client, string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	id, err := app.DeploymentID(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb, "arq:" + app.RedisNamespace(conn.Config().Database, id) + ":"
}

// cachedKeys are the deployment's cache keys (not its live topic) that
// begin with prefix+rest, and those of them whose value holds text.
func cachedKeys(t *testing.T, rdb *redis.Client, prefix, rest, text string) (keys, holding []string) {
	t.Helper()
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, prefix+rest+"*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		if k == prefix+"events" {
			continue // the live topic: not the cache's
		}
		keys = append(keys, k)
		if v, err := rdb.Get(ctx, k).Result(); err == nil && strings.Contains(v, text) {
			holding = append(holding, k)
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return keys, holding
}

// gone requires an entity read to answer 404 or 410: erased entities are
// gone from the query tables (404) or known erased (410).
func gone(t *testing.T, s *testserver.Server, path string) {
	t.Helper()
	if r := s.Do("GET", path, nil); r.Status != 404 && r.Status != 410 {
		t.Errorf("GET %s after the erasure: %d %s, want 404 or 410", path, r.Status, r.Body)
	}
}

// The user's erasure over HTTP: 200 {id, erased}, the same again; the
// cache keeps nothing of theirs; a replay of the key that registered them
// is 410 and registers no one; they take no more sessions; the kept
// answers hold nothing of theirs.
func TestEraseUserOverHTTP(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	const marker = "quokka-erase-api-5521"
	body := map[string]any{"external_id": marker + "-ext", "name": marker, "metadata": map[string]any{"k": marker}}
	uid := s.Must(201, s.Do("POST", "/v1/users", body, "Idempotency-Key", "reg-1")).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{"title": marker})).Str("id")
	mid := s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "hello " + marker}, "Idempotency-Key", "msg-1")).Str("id")
	yid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": marker})).Str("id")
	paths := []string{"/v1/users/" + uid, "/v1/sessions/" + sid, "/v1/messages/" + mid, "/v1/memories/" + yid}
	for _, p := range paths {
		s.Must(200, s.Do("GET", p, nil))
		s.Must(200, s.Do("GET", p, nil)) // cached by now
	}
	s.Must(200, s.Do("GET", "/v1/sessions/"+sid+"/context?query="+marker, nil))
	rdb, prefix := redisOf(t, s)
	if keys, _ := cachedKeys(t, rdb, prefix, "", ""); len(keys) == 0 {
		t.Fatal("nothing cached before the erasure: the test shows nothing")
	}

	r := s.Must(200, s.Do("POST", "/v1/users/"+uid+"/erase", nil))
	if r.Str("id") != uid || r.JSON["erased"] != true || r.Header.Get("X-Arq-Position") == "" {
		t.Fatalf("erasure answered %s (position %q)", r.Body, r.Header.Get("X-Arq-Position"))
	}
	if again := s.Must(200, s.Do("POST", "/v1/users/"+uid+"/erase", nil)); again.Str("id") != uid || again.JSON["erased"] != true {
		t.Fatalf("second erasure answered %s", again.Body)
	}
	for _, p := range paths {
		gone(t, s, p)
	}
	if keys, holding := cachedKeys(t, rdb, prefix, "", marker); len(holding) > 0 {
		t.Errorf("cache keys holding the marker after the erasure: %v (of %v)", holding, keys)
	}
	for _, rest := range []string{"ent:v1:user:" + uid, "ent:v1:session:" + sid, "ent:v1:message:" + mid, "ent:v1:memory:" + yid, "ctx:v2:" + sid + ":"} {
		if keys, _ := cachedKeys(t, rdb, prefix, rest, ""); len(keys) > 0 {
			t.Errorf("cache keys left after the erasure: %v", keys)
		}
	}

	replay := s.Do("POST", "/v1/users", body, "Idempotency-Key", "reg-1")
	if replay.Status != 410 || replay.Str("type") != "https://arq.dev/problems/erased" ||
		!strings.HasPrefix(replay.Header.Get("Content-Type"), "application/problem+json") || strings.Contains(string(replay.Body), marker) {
		t.Fatalf("replay of the registration after the erasure: %d %s", replay.Status, replay.Body)
	}
	if replay := s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "hello " + marker}, "Idempotency-Key", "msg-1"); replay.Status != 410 {
		t.Fatalf("replay of a message append after the erasure: %d %s", replay.Status, replay.Body)
	}
	if users := s.Must(200, s.Do("GET", "/v1/users?external_id="+marker+"-ext", nil)).Items(); len(users) != 0 {
		t.Fatalf("a replay registered the erased user again: %v", users)
	}
	if r := s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{}); r.Status != 410 {
		t.Fatalf("session of an erased user: %d %s, want 410", r.Status, r.Body)
	}
	if r := s.Do("POST", "/v1/users/01M89VB9XHPWV2SCAB0P286JT9/erase", nil); r.Status != 404 {
		t.Fatalf("erasure of no user: %d %s, want 404", r.Status, r.Body)
	}
	var kept int
	if err := testdb.Pool(t, s.URL).QueryRow(context.Background(),
		`SELECT count(*) FROM idempotency_keys WHERE position($1::bytea IN coalesce(body, ''::bytea)) > 0`, []byte(marker)).Scan(&kept); err != nil {
		t.Fatal(err)
	}
	if kept != 0 {
		t.Fatalf("%d kept answers hold the marker after the erasure", kept)
	}
}

// A message's and a memory's erasure over HTTP: 204 as DELETE, the same
// again; the session's other messages stay; the cache keeps neither nor
// the session's windows; the erased ones refuse changes; erase= takes
// true or false, and no If-Match.
func TestEraseMessageAndMemoryOverHTTP(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	const marker = "wombat-erase-api-8810"
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "wm", "name": "Wm"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	var msgs []string
	for _, content := range []string{"first", "second " + marker, "third"} {
		msgs = append(msgs, s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": content})).Str("id"))
	}
	yid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": marker})).Str("id")
	for _, p := range []string{"/v1/messages/" + msgs[1], "/v1/memories/" + yid, "/v1/messages/" + msgs[0]} {
		s.Must(200, s.Do("GET", p, nil))
	}
	s.Must(200, s.Do("GET", "/v1/sessions/"+sid+"/context?query="+marker, nil))
	rdb, prefix := redisOf(t, s)

	if r := s.Do("DELETE", "/v1/messages/"+msgs[1]+"?erase=maybe", nil); r.Status != 422 {
		t.Fatalf("erase=maybe: %d %s, want 422", r.Status, r.Body)
	}
	if r := s.Do("DELETE", "/v1/messages/"+msgs[1]+"?erase=true", nil, "If-Match", `"1"`); r.Status != 400 {
		t.Fatalf("erasure with If-Match: %d %s, want 400", r.Status, r.Body)
	}
	for i := 0; i < 2; i++ {
		if r := s.Do("DELETE", "/v1/messages/"+msgs[1]+"?erase=true", nil); r.Status != 204 {
			t.Fatalf("erasure %d of the message: %d %s, want 204", i+1, r.Status, r.Body)
		}
		if r := s.Do("DELETE", "/v1/memories/"+yid+"?erase=true", nil); r.Status != 204 {
			t.Fatalf("erasure %d of the memory: %d %s, want 204", i+1, r.Status, r.Body)
		}
	}
	s.Must(200, s.Do("GET", "/v1/messages/"+msgs[0], nil))
	if r := s.Do("PATCH", "/v1/memories/"+yid, map[string]any{"content": "again"}); r.Status != 410 {
		t.Fatalf("update of an erased memory: %d %s, want 410", r.Status, r.Body)
	}
	if r := s.Do("PATCH", "/v1/messages/"+msgs[1], map[string]any{"content": "again"}); r.Status != 404 && r.Status != 410 {
		t.Fatalf("edit of an erased message: %d %s, want 404 or 410", r.Status, r.Body)
	}
	for _, rest := range []string{"ent:v1:message:" + msgs[1], "ent:v1:memory:" + yid, "ctx:v2:" + sid + ":"} {
		if keys, _ := cachedKeys(t, rdb, prefix, rest, ""); len(keys) > 0 {
			t.Errorf("cache keys left after the erasures: %v", keys)
		}
	}
	if keys, holding := cachedKeys(t, rdb, prefix, "", marker); len(holding) > 0 {
		t.Errorf("cache keys holding the marker after the erasures: %v (of %v)", holding, keys)
	}
	// A plain DELETE still redacts and deletes.
	s.Must(204, s.Do("DELETE", "/v1/messages/"+msgs[2]+"?erase=false", nil))
	gone(t, s, "/v1/messages/"+msgs[2])
}

// An erased message and memory leave the query tables: reads answer 404
// or 410, and the session lists its other messages. The projections
// apply message.erased and memory.erased for this (their part of issue
// 17, merged apart from the erasure commands).
func TestErasedMessageAndMemoryLeaveTheQueryTables(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "lq", "name": "Lq"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	var msgs []string
	for _, content := range []string{"first", "second", "third"} {
		msgs = append(msgs, s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": content})).Str("id"))
	}
	yid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "tea"})).Str("id")
	s.Must(204, s.Do("DELETE", "/v1/messages/"+msgs[1]+"?erase=true", nil))
	s.Must(204, s.Do("DELETE", "/v1/memories/"+yid+"?erase=true", nil))
	gone(t, s, "/v1/messages/"+msgs[1])
	gone(t, s, "/v1/memories/"+yid)
	if items := s.Must(200, s.Do("GET", "/v1/sessions/"+sid+"/messages", nil)).Items(); len(items) != 2 || items[0]["id"] != msgs[0] || items[1]["id"] != msgs[2] {
		t.Fatalf("the session's messages after erasing the second: %v", items)
	}
}

// A server with ARQ_RETENTION erases the messages older than it, each as
// an erasure would, by the actor system:retention; a newer message is
// left, and a server without it erases nothing.
func TestRetentionErasesOldMessages(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, map[string]string{"ARQ_RETENTION": "3s", "ARQ_BACKGROUND_INTERVAL": "50ms"})
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "ret", "name": "Ret"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	oldMsg := s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "old"}))
	old := oldMsg.Str("id")
	created, err := time.Parse(time.RFC3339Nano, oldMsg.Str("created_at"))
	if err != nil {
		t.Fatal(err)
	}
	pool := testdb.Pool(t, s.URL)
	var at time.Time
	erased := func(id string) (bool, error) {
		var n int
		err := pool.QueryRow(context.Background(), `SELECT count(*), coalesce(min(recorded_at), now()) FROM events WHERE stream_id = $1 AND event_type = 'message.erased'
			AND metadata->>'actor' = 'system:retention' AND data->>'reason' = 'retention'`, "message-"+id).Scan(&n, &at)
		return n > 0, err
	}
	testwait.Eventually(t, 30*time.Second, "the old message erased for retention", func() (bool, error) { return erased(old) })
	if after := at.Sub(created); after < 3*time.Second {
		t.Fatalf("erased %s after it was created, before the retention period", after)
	}
	fresh := s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "new"})).Str("id")
	if ok, err := erased(fresh); err != nil || ok {
		t.Fatalf("a new message erased at once (%v)", err)
	}
}
