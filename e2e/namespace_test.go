package e2e

import (
	"encoding/json"
	"github.com/arq-memory/arq/app"
	"github.com/arq-memory/arq/internal/testserver"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/arq-memory/arq/internal/testdb"
)

// Two deployments on different Postgres clusters whose databases have the
// same name (the default, arq) and which share one Redis: one cluster
// cannot hold two databases of one name, so these tests give two databases
// the same name where the app takes it (wireRedis), which is all the name
// does there.

// namedAs rewires an app's Redis parts as if its database were named
// database.
func namedAs(database string) func(*app.Options) {
	return func(o *app.Options) { o.DatabaseName = database }
}

// An SSE client of one deployment gets its own events only, and all of
// them, while another deployment whose database has the same name
// publishes through the same Redis.
func TestDeploymentsNamedAlikeKeepTheirLiveEvents(t *testing.T) {
	t.Parallel()
	a := testserver.StartLogged(t, map[string]string{"ARQ_DATABASE_URL": testdb.Migrated(t)}, namedAs("arq"))
	b := testserver.StartLogged(t, map[string]string{"ARQ_DATABASE_URL": testdb.Migrated(t)}, namedAs("arq"))
	const path = "/v1/events/stream?type=user.registered"
	fromA, fromB := subscribe(a, t, path), subscribe(b, t, path)
	ownA, ownB := map[string]bool{}, map[string]bool{}
	register := func(s *testserver.Server, own map[string]bool) string {
		id := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": ulid.Make().String(), "name": "N"})).Str("id")
		own[id] = true
		return id
	}
	// next reads events until want, failing on one not of own (another
	// deployment's) or when the stream ends (its client told it lagged).
	// Before want come only own events registered earlier.
	next := func(events <-chan sseEvent, own map[string]bool, want, what string) {
		t.Helper()
		await(t, events, what, func(ev sseEvent) bool {
			id := dataField(ev, "user_id")
			if !own[id] {
				t.Fatalf("%s: the client got %s %v, not of its deployment", what, ev.event, ev.data)
			}
			return id == want
		})
	}
	// warmUp registers users until one reaches the client: then the
	// relay has started (it relays from the log's head when it first
	// starts) and the feed reads the topic (it reads from the messages
	// after it subscribed).
	warmUp := func(s *testserver.Server, events <-chan sseEvent, own map[string]bool, what string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			register(s, own)
			select {
			case ev, ok := <-events:
				if !ok {
					t.Fatalf("%s: the stream ended", what)
				}
				if !own[dataField(ev, "user_id")] {
					t.Fatalf("%s: the client got %s %v, not of its deployment", what, ev.event, ev.data)
				}
				return
			case <-time.After(time.Second):
				// Not relayed yet, or published before the feed read.
			}
		}
		t.Fatalf("%s: no event reached the client within 20s", what)
	}
	warmUp(a, fromA, ownA, "A warming up")
	warmUp(b, fromB, ownB, "B warming up")
	// B's event is on B's topic before A appends again: were the topics
	// one, A's client would get it before A's own next event, or be told
	// it lagged.
	next(fromB, ownB, register(b, ownB), "B's user, on B")
	next(fromA, ownA, register(a, ownA), "A's next user, on A")
}

// Databases filled by `arq import` keep the ids of the log they were
// filled from, so two filled from one export have the same sessions at the
// same generations, and their context windows the same keys: sharing one
// Redis, each serves the windows of its own messages.
func TestImportedCopiesNamedAlikeServeTheirOwnWindows(t *testing.T) {
	t.Parallel()
	origin := testserver.Start(t, nil)
	uid := origin.Must(201, origin.Do("POST", "/v1/users", map[string]any{"external_id": "w", "name": "W"})).Str("id")
	sid := origin.Must(201, origin.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	origin.Must(201, origin.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "before the copies"}))
	code, dump, errOut := runCLI(t, origin.URL, "export", "--quiet")
	if code != 0 {
		t.Fatalf("export: %d %s", code, errOut)
	}
	file := filepath.Join(t.TempDir(), "log.ndjson")
	if err := os.WriteFile(file, []byte(dump), 0o600); err != nil {
		t.Fatal(err)
	}
	imported := func() *testserver.Server {
		url := testdb.Unmade(t)
		if code, _, errOut := runCLI(t, url, "import", "--quiet", file); code != 0 {
			t.Fatalf("import: %d %s", code, errOut)
		}
		return testserver.StartLogged(t, map[string]string{"ARQ_DATABASE_URL": url}, namedAs("arq"))
	}
	a, b := imported(), imported()
	last := func(s *testserver.Server, content string) {
		t.Helper()
		s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": content}))
		r := s.Must(200, s.Do("GET", "/v1/sessions/"+sid+"/context?max_tokens=4000", nil))
		var win window
		if err := json.Unmarshal(r.Body, &win); err != nil {
			t.Fatal(err)
		}
		if n := len(win.Messages); n == 0 || win.Messages[n-1].Content != content {
			t.Fatalf("window of a copy whose last message is %q (cache %s): %s", content, r.Header.Get("X-Arq-Cache"), r.Body)
		}
	}
	last(a, "only in copy A")
	last(b, "only in copy B")
}
