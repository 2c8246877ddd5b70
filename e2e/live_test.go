package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"github.com/arq-memory/arq/internal/testserver"
	"github.com/arq-memory/arq/internal/testwait"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/arq-memory/arq/internal/testdb"
)

// sseEvent is one Server-Sent Event.
type sseEvent struct {
	id, event string
	data      map[string]any
}

// subscribe opens an event stream and returns its events as they come;
// the stream closes when the test ends.
func subscribe(s *testserver.Server, t *testing.T, path string, headers ...string) <-chan sseEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, "GET", s.Base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	out := make(chan sseEvent, 100)
	go func() {
		defer resp.Body.Close()
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				ev.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				ev.event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				_ = json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev.data)
			case line == "" && ev.event != "":
				out <- ev
				ev = sseEvent{}
			}
		}
	}()
	return out
}

// await reads events until one satisfies match, or fails after a deadline.
func await(t *testing.T, events <-chan sseEvent, what string, match func(sseEvent) bool) sseEvent {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("%s: the stream ended", what)
			}
			if match(ev) {
				return ev
			}
		case <-deadline:
			t.Fatalf("%s: not within 20s", what)
		}
	}
}

func dataField(ev sseEvent, key string) string {
	d, _ := ev.data["data"].(map[string]any)
	v, _ := d[key].(string)
	return v
}

// An SSE client of one arq process receives a message appended through
// another, over Redis Streams.
func TestSessionStreamAcrossProcesses(t *testing.T) {
	t.Parallel()
	url := testdb.New(t)
	a := testserver.StartOn(t, url, nil)
	b := testserver.StartOn(t, url, nil)
	uid := a.Must(201, a.Do("POST", "/v1/users", map[string]any{"external_id": "l", "name": "L"})).Str("id")
	sid := a.Must(201, a.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	events := subscribe(a, t, "/v1/sessions/"+sid+"/stream")
	mid := b.Must(201, b.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "through the other process"})).Str("id")
	ev := await(t, events, "message appended through B", func(ev sseEvent) bool { return dataField(ev, "message_id") == mid })
	if ev.event != "message.appended" || dataField(ev, "content") != "through the other process" || ev.id == "" {
		t.Fatalf("event: %+v", ev)
	}
	// Another session's messages do not reach this stream.
	other := a.Must(201, a.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	b.Must(201, b.Do("POST", "/v1/sessions/"+other+"/messages", map[string]any{"role": "user", "content": "elsewhere"}))
	last := b.Must(201, b.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "here again"})).Str("id")
	await(t, events, "second message", func(ev sseEvent) bool {
		if dataField(ev, "content") == "elsewhere" {
			t.Fatal("another session's message reached the stream")
		}
		return dataField(ev, "message_id") == last
	})
}

// The log's event stream catches up from a cursor, then goes on live, each
// event once and in order; without Redis a single instance still serves
// it.
func TestEventStreamResumesWithoutRedis(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, map[string]string{"ARQ_REDIS_URL": fmt.Sprintf("redis://127.0.0.1:%d/0", freePort(t))})
	first := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "e1", "name": "E1"}))
	after := first.Header.Get("X-Arq-Position")
	second := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "e2", "name": "E2"})).Str("id")
	events := subscribe(s, t, "/v1/events/stream?after="+after+"&type=user.registered")
	ev := await(t, events, "catch-up", func(sseEvent) bool { return true })
	if dataField(ev, "user_id") != second {
		t.Fatalf("first event after the cursor: %+v", ev)
	}
	third := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "e3", "name": "E3"})).Str("id")
	ev = await(t, events, "live event", func(sseEvent) bool { return true })
	if dataField(ev, "user_id") != third || ev.event != "user.registered" {
		t.Fatalf("live event: %+v", ev)
	}
	// Reconnecting with Last-Event-ID resumes after that event.
	again := subscribe(s, t, "/v1/events/stream?type=user.registered", "Last-Event-ID", ev.id)
	fourth := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "e4", "name": "E4"})).Str("id")
	if ev := await(t, again, "after reconnecting", func(sseEvent) bool { return true }); dataField(ev, "user_id") != fourth {
		t.Fatalf("resumed with %+v, want user %s", ev, fourth)
	}
}

// A session's stream resumes as the log's does: from after (an
// X-Arq-Position) or the Last-Event-ID a reconnecting client sends, it
// catches up with what it missed, then goes on live; a cursor that is not
// one is 422.
func TestSessionStreamResumes(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "r", "name": "R"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	other := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	appendTo := func(session, content string) testserver.Response {
		return s.Must(201, s.Do("POST", "/v1/sessions/"+session+"/messages", map[string]any{"role": "user", "content": content}))
	}
	after := appendTo(sid, "one").Header.Get("X-Arq-Position")
	appendTo(other, "elsewhere")
	two := appendTo(sid, "two").Str("id")
	events := subscribe(s, t, "/v1/sessions/"+sid+"/stream?after="+after)
	if ev := await(t, events, "catch-up", func(sseEvent) bool { return true }); dataField(ev, "message_id") != two {
		t.Fatalf("first event after the cursor: %+v, want message two", ev)
	}
	three := appendTo(sid, "three").Str("id")
	ev := await(t, events, "live", func(sseEvent) bool { return true })
	if dataField(ev, "message_id") != three {
		t.Fatalf("live event: %+v, want message three", ev)
	}
	four := appendTo(sid, "four").Str("id")
	again := subscribe(s, t, "/v1/sessions/"+sid+"/stream", "Last-Event-ID", ev.id)
	if ev := await(t, again, "after reconnecting", func(sseEvent) bool { return true }); dataField(ev, "message_id") != four {
		t.Fatalf("resumed with %+v, want message four", ev)
	}
	isProblem(t, s.Do("GET", "/v1/sessions/"+sid+"/stream", nil, "Last-Event-ID", "garbage"), 422, "Last-Event-ID")
	isProblem(t, s.Do("GET", "/v1/sessions/"+sid+"/stream?after=x", nil), 422, "after")
}

// Stopping a server ends its event streams, telling their clients to
// resume elsewhere: an open stream would otherwise hold the graceful
// shutdown until its client left (30 s, then an error exit).
func TestShutdownEndsEventStreams(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	sid := s.Must(201, s.Do("POST", "/v1/users/"+s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "bye", "name": "B"})).Str("id")+"/sessions", map[string]any{})).Str("id")
	log := subscribe(s, t, "/v1/events/stream")
	session := subscribe(s, t, "/v1/sessions/"+sid+"/stream")
	start := time.Now()
	s.Stop()
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the server took %s to stop", took)
	}
	for name, events := range map[string]<-chan sseEvent{"log": log, "session": session} {
		await(t, events, name+" stream closing", func(e sseEvent) bool { return e.event == "closing" })
	}
}

// A write in flight when the server is told to stop still gets its
// read-your-writes answer: projections run until the HTTP server has
// drained.
func TestShutdownDrainsWritesWithProjections(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "drain", "name": "D"})).Str("id")
	ctx := context.Background()
	pool := testdb.Pool(t, s.URL)
	release := holdTable(t, pool, "memories")
	answer := make(chan int, 1)
	go func() {
		resp, err := s.Client().Post(s.Base+"/v1/users/"+uid+"/memories", "application/json", strings.NewReader(`{"type":"semantic","content":"in flight"}`))
		if err != nil {
			t.Error(err)
			answer <- 0
			return
		}
		resp.Body.Close()
		answer <- resp.StatusCode
	}()
	testwait.Eventually(t, 10*time.Second, "the memory appended", func() (bool, error) {
		var n int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE event_type = 'memory.stored'`).Scan(&n)
		return n == 1, err
	})
	stopped := make(chan struct{})
	go func() { s.Stop(); close(stopped) }()
	testwait.Eventually(t, 10*time.Second, "the server stopped listening", func() (bool, error) {
		resp, err := s.Client().Get(s.Base + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err != nil, nil
	})
	release()
	if status := <-answer; status != http.StatusCreated {
		t.Fatalf("the write in flight answered %d", status)
	}
	<-stopped
}

// HEAD on a streaming route answers its headers and ends: the stream's
// body would be dropped, and the connection would hang until the client
// gave up.
func TestHeadOfAStreamEnds(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	client := &http.Client{Timeout: 5 * time.Second}
	for _, path := range []string{"/v1/events/stream", "/v1/events"} {
		req, _ := http.NewRequest("HEAD", s.Base+path, nil)
		req.Header.Set("Accept", "application/x-ndjson")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("HEAD %s: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("HEAD %s: %d", path, resp.StatusCode)
		}
		if r, err := client.Get(s.Base + "/healthz"); err != nil { // the same connection, reused
			t.Fatalf("GET after HEAD %s: %v", path, err)
		} else {
			r.Body.Close()
		}
	}
}

// Events relayed while Redis is away reach the SSE clients of the relay's
// instance at once; the clients of another instance never miss them in
// silence: when the next event comes through Redis, they are told they
// lagged, and reconnecting with Last-Event-ID catches them up from the
// log.
func TestLiveEventsLostWhileRedisWasAwayAreCaughtUp(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	stop := redisOn(t, port)
	env := map[string]string{"ARQ_REDIS_URL": fmt.Sprintf("redis://127.0.0.1:%d/0", port)}
	url := testdb.New(t)
	servers := []*testserver.Server{testserver.StartOn(t, url, env), testserver.StartOn(t, url, env)}
	n := 0
	register := func(name string) string {
		n++
		name = fmt.Sprintf("%s-%d", name, n)
		return servers[0].Must(201, servers[0].Do("POST", "/v1/users", map[string]any{"external_id": name, "name": name})).Str("id")
	}
	const path = "/v1/events/stream?type=user.registered"
	clients := []*collected{collect(subscribe(servers[0], t, path)), collect(subscribe(servers[1], t, path))}
	// saw returns the first event of client c that match takes.
	saw := func(c *collected, match func(sseEvent) bool) (sseEvent, bool) {
		for _, ev := range c.events() {
			if match(ev) {
				return ev, true
			}
		}
		return sseEvent{}, false
	}
	user := func(id string) func(sseEvent) bool {
		return func(ev sseEvent) bool { return dataField(ev, "user_id") == id }
	}
	// registerUntil registers users until every client saw one of them,
	// or saw what stop takes; it fails after a deadline.
	registerUntil := func(what string, stop func(sseEvent) bool) {
		ids := map[string]bool{}
		deadline := time.Now().Add(30 * time.Second)
		for !time.Now().After(deadline) {
			ids[register(what)] = true
			for wait := time.Now().Add(time.Second); time.Now().Before(wait); time.Sleep(10 * time.Millisecond) {
				all := true
				for _, c := range clients {
					_, ok := saw(c, func(ev sseEvent) bool { return ids[dataField(ev, "user_id")] || stop(ev) })
					all = all && ok
				}
				if all {
					return
				}
			}
		}
		t.Fatalf("%s: not every client got an event within 30s", what)
	}
	// Both instances' feeds read the topic (a feed reads what is
	// published after it subscribed).
	registerUntil("warm-up", func(sseEvent) bool { return false })
	u1 := register("u1")
	last := make([]string, 2) // the id of the last event each client saw before the outage
	testwait.Eventually(t, 20*time.Second, "u1 at both clients", func() (bool, error) {
		for i, c := range clients {
			ev, ok := saw(c, user(u1))
			if !ok {
				return false, nil
			}
			last[i] = ev.id
		}
		return true, nil
	})

	stop()
	u2 := register("u2")
	// The relay's instance delivers u2 to its own clients once its
	// publish failed; Redis comes back only then.
	testwait.Eventually(t, 20*time.Second, "u2 at the relay's instance", func() (bool, error) {
		_, ok0 := saw(clients[0], user(u2))
		_, ok1 := saw(clients[1], user(u2))
		return ok0 || ok1, nil
	})
	redisOn(t, port)
	// Once Redis is back, events go through it to both instances again.
	lagged := func(ev sseEvent) bool { return ev.event == "lagged" }
	registerUntil("after", lagged)
	for i, c := range clients {
		if _, ok := saw(c, lagged); !ok {
			if _, ok := saw(c, user(u2)); !ok {
				t.Fatalf("client %d got later events without u2 and was not told it lagged: %v", i, c.events())
			}
			continue
		}
		// Told it lagged, the client reconnects after the last event it
		// saw before the outage, and catches up from the log.
		again := subscribe(servers[i], t, path, "Last-Event-ID", last[i])
		first := await(t, again, fmt.Sprintf("client %d after reconnecting", i), func(sseEvent) bool { return true })
		if dataField(first, "user_id") != u2 {
			t.Fatalf("client %d resumed with %+v, want u2 %s", i, first, u2)
		}
	}
}

// collected gathers the events of a stream as they come.
type collected struct {
	mu  sync.Mutex
	evs []sseEvent
}

func collect(events <-chan sseEvent) *collected {
	c := &collected{}
	go func() {
		for ev := range events {
			c.mu.Lock()
			c.evs = append(c.evs, ev)
			c.mu.Unlock()
		}
	}()
	return c
}

func (c *collected) events() []sseEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]sseEvent(nil), c.evs...)
}
