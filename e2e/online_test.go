package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/arq-memory/arq/app"
	"github.com/arq-memory/arq/internal/testserver"
	"github.com/arq-memory/arq/internal/testwait"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/projections"
)

// call sends one request for a load goroutine (which must not t.Fatal)
// and decodes the answer's JSON into out, if given.
func call(s *testserver.Server, method, path, body string, out any) (int, error) {
	req, err := http.NewRequest(method, s.Base+path, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, nil
}

// dumpTables reads every row of the projections' tables as text, sorted.
func dumpTables(t *testing.T, url string) map[string][]string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	out := map[string][]string{}
	for _, p := range app.Projections() {
		for _, table := range p.Tables() {
			rows, err := conn.Query(ctx, `SELECT r::text FROM `+pgx.Identifier{table}.Sanitize()+` r ORDER BY 1`)
			if err != nil {
				t.Fatal(err)
			}
			out[table], err = pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	return out
}

// Every projection is rebuilt online while clients write and read: no
// read fails or goes back, the rebuilt tables equal an offline rebuild,
// and `arq projections verify` finds no row that differs.
func TestOnlineRebuildUnderLoad(t *testing.T) {
	t.Parallel()
	// No summaries (and no assistant messages, so no snapshots): the log
	// stands still once the load stops.
	s := testserver.Start(t, map[string]string{"ARQ_SUMMARY_THRESHOLD_TOKENS": "100000000"})
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "load", "name": "Load"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{"title": "load"})).Str("id")
	mid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "version 0"})).Str("id")
	// A log long enough that each rebuild takes a while, so that writes
	// land while the copies are built and switched in.
	const seeded = 4000
	for i := 0; i < seeded/100; i++ {
		batch := make([]map[string]any, 100)
		for j := range batch {
			batch[j] = map[string]any{"role": "user", "content": fmt.Sprintf("seed %d.%d", i, j)}
		}
		s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"messages": batch}))
	}
	for i := 0; i < 50; i++ {
		s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "episodic", "content": fmt.Sprintf("seed memory %d", i), "tags": []string{"seed"}}))
	}

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var failures sync.Map
	fail := func(err error) { failures.Store(err.Error(), true) }
	// What the writer has been acknowledged: a read that starts later
	// must show at least this much.
	var ackedMessages, ackedMemoryVersion atomic.Int64
	var lastMessage atomic.Value
	ackedMessages.Store(seeded)
	ackedMemoryVersion.Store(1)
	var writes, reads atomic.Int64

	wg.Add(1)
	go func() { // the writer
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			var m struct{ ID string }
			if _, err := call(s, "POST", "/v1/sessions/"+sid+"/messages", fmt.Sprintf(`{"role":"user","content":"load %d"}`, i), &m); err != nil {
				fail(err)
				return
			}
			lastMessage.Store(m.ID)
			ackedMessages.Add(1)
			var mem struct{ Version int64 }
			if _, err := call(s, "PATCH", "/v1/memories/"+mid, fmt.Sprintf(`{"content":"version %d"}`, i+1), &mem); err != nil {
				fail(err)
				return
			}
			ackedMemoryVersion.Store(mem.Version)
			if _, err := call(s, "POST", "/v1/users/"+uid+"/memories", fmt.Sprintf(`{"type":"working","content":"load memory %d"}`, i), nil); err != nil {
				fail(err)
				return
			}
			writes.Add(3)
		}
	}()
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func() { // readers: nothing fails, nothing goes back
			defer wg.Done()
			var lastCount, lastVersion int64
			for ctx.Err() == nil {
				wantMessages, wantVersion := ackedMessages.Load(), ackedMemoryVersion.Load()
				msg, _ := lastMessage.Load().(string)
				var sess struct {
					MessageCount int64 `json:"message_count"`
				}
				if _, err := call(s, "GET", "/v1/sessions/"+sid, "", &sess); err != nil {
					fail(err)
					return
				}
				if sess.MessageCount < lastCount || sess.MessageCount < wantMessages {
					fail(fmt.Errorf("session message_count %d after %d (acknowledged %d)", sess.MessageCount, lastCount, wantMessages))
				}
				lastCount = sess.MessageCount
				var mem struct{ Version int64 }
				if _, err := call(s, "GET", "/v1/memories/"+mid, "", &mem); err != nil {
					fail(err)
					return
				}
				if mem.Version < lastVersion || mem.Version < wantVersion {
					fail(fmt.Errorf("memory version %d after %d (acknowledged %d)", mem.Version, lastVersion, wantVersion))
				}
				lastVersion = mem.Version
				if msg != "" {
					if _, err := call(s, "GET", "/v1/messages/"+msg, "", nil); err != nil {
						fail(err)
					}
				}
				var list struct{ Items []any }
				if _, err := call(s, "GET", "/v1/users/"+uid+"/memories?tag=seed&limit=100", "", &list); err != nil {
					fail(err)
				} else if len(list.Items) != 50 {
					fail(fmt.Errorf("memories tagged seed: %d, want 50", len(list.Items)))
				}
				reads.Add(4)
			}
		}()
	}

	if writes.Load() == 0 {
		// Let the load start before the first rebuild.
		testwait.Eventually(t, 10*time.Second, "the first writes", func() (bool, error) { return writes.Load() > 0, nil })
	}
	for _, p := range app.Projections() {
		before := writes.Load()
		t0 := time.Now()
		code, _, errOut := runCLI(t, s.URL, "projections", "rebuild", p.Name(), "--online", "--quiet")
		if code != 0 {
			t.Errorf("online rebuild of %s: exit %d: %s", p.Name(), code, errOut)
		}
		t.Logf("online rebuild of %s took %v, %d writes meanwhile", p.Name(), time.Since(t0), writes.Load()-before)
	}
	stop()
	wg.Wait()
	if writes.Load() < 10 {
		t.Errorf("only %d writes during the rebuilds: the test proves little", writes.Load())
	}
	failures.Range(func(k, _ any) bool {
		t.Error(k)
		return true
	})
	t.Logf("%d writes and %d reads during the rebuilds", writes.Load(), reads.Load())
	if t.Failed() {
		return
	}

	// Compare the live tables, once every projection applied the whole
	// log, with an offline rebuild of the same log.
	pool := testdb.Pool(t, s.URL)
	before := eventCount(t, s)
	testwait.Eventually(t, 30*time.Second, "projections caught up", func() (bool, error) {
		st, err := projections.Statuses(context.Background(), pool, app.ProjectionNames())
		for _, x := range st {
			if x.Behind > 0 {
				return false, err
			}
		}
		return err == nil, err
	})
	online := dumpTables(t, s.URL)
	for _, p := range app.Projections() {
		code, out, errOut := runCLI(t, s.URL, "projections", "verify", p.Name(), "--quiet")
		if code != 0 {
			t.Errorf("verify %s: exit %d: %s%s", p.Name(), code, out, errOut)
		}
	}
	for _, p := range app.Projections() {
		if code, _, errOut := runCLI(t, s.URL, "projections", "rebuild", p.Name(), "--quiet"); code != 0 {
			t.Fatalf("offline rebuild of %s: exit %d: %s", p.Name(), code, errOut)
		}
	}
	offline := dumpTables(t, s.URL)
	if after := eventCount(t, s); after != before {
		t.Fatalf("the log grew after the writer stopped (%d -> %d events): the comparison proves nothing", before, after)
	}
	for table, rows := range offline {
		if strings.Join(rows, "\n") != strings.Join(online[table], "\n") {
			t.Errorf("table %s after the online rebuilds differs from an offline rebuild: %d rows vs %d", table, len(online[table]), len(rows))
		}
	}
}

// projections verify names the rows a projection got wrong.
func TestProjectionsVerifyReportsDifferingRows(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "v", "name": "Vera"})).Str("id")
	s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "w", "name": "Walt"}))

	code, out, errOut := runCLI(t, s.URL, "projections", "verify", "users", "--quiet")
	if code != 0 || !strings.Contains(out, "users: same") {
		t.Fatalf("verify of intact users: exit %d: %s%s", code, out, errOut)
	}
	// Damage the query table behind the projection's back.
	pool := testdb.Pool(t, s.URL)
	if _, err := pool.Exec(context.Background(), `UPDATE users SET name = 'Mallory' WHERE id = $1`, uid); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runCLI(t, s.URL, "projections", "verify", "users", "--quiet", "--json")
	if code != 1 {
		t.Fatalf("verify of damaged users: exit %d, want 1: %s", code, out)
	}
	var rep struct {
		Tables []struct {
			Table                 string
			OnlyLive, OnlyRebuilt int64    `json:"-"`
			LiveRows              []string `json:"live_rows"`
			RebuiltRows           []string `json:"rebuilt_rows"`
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(rep.Tables) != 1 || len(rep.Tables[0].LiveRows) != 1 || len(rep.Tables[0].RebuiltRows) != 1 ||
		!strings.Contains(rep.Tables[0].LiveRows[0], "Mallory") || !strings.Contains(rep.Tables[0].RebuiltRows[0], "Vera") {
		t.Fatalf("report does not name the damaged row: %s", out)
	}
	// Nothing of the scratch copy is left behind.
	var schemas int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'arq_copy_%'`).Scan(&schemas); err != nil || schemas != 0 {
		t.Fatalf("scratch schemas left: %d (%v)", schemas, err)
	}
}

// POST /v1/admin/projections/{name}/rebuild runs an online rebuild in the
// background; a second one of the same projection is refused with 409.
func TestAdminOnlineRebuild(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "a", "name": "Ann"})).Str("id")
	isProblem(t, s.Do("POST", "/v1/admin/projections/nope/rebuild", nil), 404, "")

	// Another process holds the memories rebuild lock: refused.
	pool := testdb.Pool(t, s.URL)
	conn, err := pool.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(context.Background(), `SELECT pg_advisory_lock(hashtextextended('arq_copy_memories', 0))`); err != nil {
		t.Fatal(err)
	}
	isProblem(t, s.Do("POST", "/v1/admin/projections/memories/rebuild", nil), 409, "")
	if _, err := conn.Exec(context.Background(), `SELECT pg_advisory_unlock(hashtextextended('arq_copy_memories', 0))`); err != nil {
		t.Fatal(err)
	}
	conn.Release()

	r := s.Must(202, s.Do("POST", "/v1/admin/projections/users/rebuild", nil))
	if r.Header.Get("Location") != "/v1/admin/projections/users/rebuild" || r.Str("state") != "running" {
		t.Fatalf("start: %s %v", r.Body, r.Header)
	}
	testwait.Eventually(t, 20*time.Second, "the rebuild is done", func() (bool, error) {
		r := s.Must(200, s.Do("GET", "/v1/admin/projections/users/rebuild", nil))
		if r.Str("state") == "failed" {
			return false, fmt.Errorf("rebuild failed: %s", r.Body)
		}
		return r.Str("state") == "done", nil
	})
	if got := s.Must(200, s.Do("GET", "/v1/users/"+uid, nil)).Str("name"); got != "Ann" {
		t.Fatalf("user after rebuild: %q", got)
	}
}

// A rebuild exists to fix tables: after an online rebuild neither a cached
// context window nor a cached entity built from the old rows is served.
func TestOnlineRebuildDropsCachedWindows(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "c", "name": "Cleo"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{"title": "bees"})).Str("id")
	mid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "bees make honey"})).Str("id")
	s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "tell me about honey"}))

	// Damage the memories table behind the projection's back, as a
	// projection bug would, and let a window be cached from it.
	pool := testdb.Pool(t, s.URL)
	if _, err := pool.Exec(context.Background(), `UPDATE memories SET content = 'wasps make nothing' WHERE id = $1`, mid); err != nil {
		t.Fatal(err)
	}
	path := "/v1/sessions/" + sid + "/context?max_tokens=2000"
	s.Must(200, s.Do("GET", path, nil))
	r := s.Must(200, s.Do("GET", path, nil))
	if r.Header.Get("X-Arq-Cache") != "hit" || !strings.Contains(string(r.Body), "wasps") {
		t.Fatalf("want the damaged window from the cache: %s %s", r.Header.Get("X-Arq-Cache"), r.Body)
	}
	s.Must(200, s.Do("GET", "/v1/memories/"+mid, nil))
	r = s.Must(200, s.Do("GET", "/v1/memories/"+mid, nil))
	if r.Header.Get("X-Arq-Cache") != "hit" || r.Str("content") != "wasps make nothing" {
		t.Fatalf("want the damaged memory from the cache: %s %s", r.Header.Get("X-Arq-Cache"), r.Body)
	}
	if code, _, errOut := runCLI(t, s.URL, "projections", "rebuild", "memories", "--online", "--quiet"); code != 0 {
		t.Fatalf("online rebuild: exit %d: %s", code, errOut)
	}
	r = s.Must(200, s.Do("GET", path, nil))
	if !strings.Contains(string(r.Body), "bees make honey") || strings.Contains(string(r.Body), "wasps") {
		t.Fatalf("window after the rebuild (cache %s): %s", r.Header.Get("X-Arq-Cache"), r.Body)
	}
	if r := s.Must(200, s.Do("GET", "/v1/memories/"+mid, nil)); r.Str("content") != "bees make honey" {
		t.Fatalf("memory after the rebuild (cache %s): %s", r.Header.Get("X-Arq-Cache"), r.Body)
	}
}

// A copy left by a crashed online rebuild (its rebuild lock free) shows in
// projections status and is dropped when a server starts; one being built
// shows as such and is left alone.
func TestServerDropsAbandonedCopies(t *testing.T) {
	t.Parallel()
	url := testdb.New(t)
	if code, _, errOut := runCLI(t, url, "migrate"); code != 0 {
		t.Fatalf("migrate: exit %d: %s", code, errOut)
	}
	pool := testdb.Pool(t, url)
	ctx := context.Background()
	for _, q := range []string{
		`CREATE SCHEMA arq_copy_users`, `CREATE TABLE arq_copy_users.users (LIKE users INCLUDING ALL)`,
		`INSERT INTO projection_checkpoints (consumer_group, offset_acked, last_processed_transaction_id) VALUES ('users_copy', 7, '7')`,
		`CREATE SCHEMA arq_copy_memories`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	// The memories copy is being built by someone: its lock is held.
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtextextended('arq_copy_memories', 0))`); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(ctx, `SELECT pg_advisory_unlock(hashtextextended('arq_copy_memories', 0))`)

	code, out, errOut := runCLI(t, url, "projections", "status")
	if code != 0 || !regexp.MustCompile(`(?m)^users +copy +7 +copy left by a crashed rebuild`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^memories +copy +0 +copy being built`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^memories +rebuilding `).MatchString(out) || !regexp.MustCompile(`(?m)^users +running `).MatchString(out) {
		t.Fatalf("projections status: exit %d:\n%s%s", code, out, errOut)
	}
	var st []projections.Status
	code, out, _ = runCLI(t, url, "projections", "status", "--json")
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil {
		t.Fatalf("projections status --json: exit %d, %v: %s", code, err, out)
	}
	for _, x := range st {
		if want := map[bool]string{true: "rebuilding", false: "running"}[x.Name == "memories"]; x.State != want {
			t.Errorf("status of %s: %s, want %s", x.Name, x.State, want)
		}
	}

	testserver.StartOn(t, url, nil)
	var schemas []string
	rows, err := pool.Query(ctx, `SELECT nspname FROM pg_namespace WHERE starts_with(nspname, 'arq_copy_') ORDER BY 1`)
	if err == nil {
		schemas, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil || strings.Join(schemas, ",") != "arq_copy_memories" {
		t.Fatalf("copies after start: %v (%v), want only the one being built", schemas, err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM projection_checkpoints WHERE consumer_group = 'users_copy'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("checkpoint of the abandoned copy: %d (%v)", n, err)
	}
}
