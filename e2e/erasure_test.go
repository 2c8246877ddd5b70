package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/redis/go-redis/v9"

	"github.com/arq-memory/arq/app"
	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/internal/testserver"
	"github.com/arq-memory/arq/internal/testwait"
)

// The tests of erasure (issue 17): a unique marker is written into every
// personal field, the user (or one message and one memory) is erased, and
// then the marker is looked for everywhere ARQ keeps or hands out data:
// a pg_dump of the whole database, every Redis key and value of the
// deployment, every API read, the SSE replay, and an export taken before
// the erasure imported into a fresh database that shares the key store.

// erasureEnv makes sessions summarized after a few messages (with room
// for every older message in the summary, so each marker is in it) and
// the background pass quick, so that summaries and snapshots come soon.
var erasureEnv = map[string]string{
	"ARQ_BACKGROUND_INTERVAL":      "50ms",
	"ARQ_SUMMARY_THRESHOLD_TOKENS": "30",
	"ARQ_SUMMARY_RECENT_TOKENS":    "25",
	"ARQ_SUMMARY_MAX_TOKENS":       "400",
}

// A user's erasure leaves the user's data nowhere: not in any table, not
// in Redis, not in any read of the API (live, by version, as of before,
// history, audit, the log, its SSE replay), and not in an export taken
// before the erasure once imported into a fresh database that shares the
// key store; the log still holds every event, marked erased, and verifies.
func TestErasureOfAUserLeavesNoTrace(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, erasureEnv)
	w := seedUser(t, s, "user")
	w.await(t, s)

	// Controls: the marker is where the checks below look, before the
	// erasure, so that finding it nowhere afterwards means something.
	mustFind(t, "pg_dump before the erasure", dumpFindings(t, s.URL, w.marks))
	mustFind(t, "pg_dump before the erasure, looked at for embedding values only", dumpFindings(t, s.URL, w.marks[1:]))
	if n := len(redisFindings(t, s.URL, w.marks)); n == 0 {
		t.Log("control: Redis held no marker before the erasure (the caches may keep none in clear)")
	}
	export := exportTo(t, s.URL)
	report(t, "the export taken before the erasure (it must hold ciphertext only)", w.marks.findLines("the export file", readText(t, export)))
	shared := importInto(t, export, s.URL)
	mustFind(t, "pg_dump of the export imported before the erasure (the key store is shared)", dumpFindings(t, shared, w.marks))

	gone := append(append([]string{"/v1/users/" + w.uid, "/v1/sessions/" + w.sid}, prefixed("/v1/messages/", w.messages)...), prefixed("/v1/memories/", w.memories)...)
	sealed, listed := eventsHolding(t, s, w.marks), historyLengths(t, s, gone)
	before := time.Now()
	if r := s.Do("POST", "/v1/users/"+w.uid+"/erase", nil); r.Status != 200 {
		t.Errorf("POST /v1/users/%s/erase: %d, want 200: %.300s", w.uid, r.Status, r.Body)
	}

	rs := w.reads(before)
	rs.gone = gone
	noTrace(t, "after the user's erasure", s, w.marks, rs)
	stillLogged(t, s, sealed)
	stillListed(t, s, listed)

	after := importInto(t, export, s.URL)
	report(t, "pg_dump of the export taken before the erasure, imported after it", dumpFindings(t, after, w.marks))
	verifies(t, after)
	report(t, "after the user's erasure, retries of requests sent before it", w.retries.findings(t, s, w.marks))
}

// Erasing one message and one memory leaves their data nowhere, as a
// user's erasure does (the session's summary and the snapshot whose query
// held the message included), while another message and memory of the
// same user and session stay readable, also through an export taken
// before the erasure and imported after it.
func TestErasureOfAMessageAndAMemoryLeavesNoTrace(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, erasureEnv)
	p := seedPartial(t, s)
	p.await(t, s)

	mustFind(t, "pg_dump before the erasure", dumpFindings(t, s.URL, p.marks))
	export := exportTo(t, s.URL)
	report(t, "the export taken before the erasure (it must hold ciphertext only)", p.marks.findLines("the export file", readText(t, export)))

	sealed, listed := eventsHolding(t, s, p.marks), historyLengths(t, s, []string{"/v1/messages/" + p.erasedMessage, "/v1/memories/" + p.erasedMemory})
	before := time.Now()
	if r := s.Do("DELETE", "/v1/messages/"+p.erasedMessage+"?erase=true", nil); r.Status != 204 {
		t.Errorf("DELETE /v1/messages/%s?erase=true: %d, want 204: %.300s", p.erasedMessage, r.Status, r.Body)
	}
	if r := s.Do("DELETE", "/v1/memories/"+p.erasedMemory+"?erase=true", nil); r.Status != 204 {
		t.Errorf("DELETE /v1/memories/%s?erase=true: %d, want 204: %.300s", p.erasedMemory, r.Status, r.Body)
	}

	noTrace(t, "after the erasure of a message and a memory", s, p.marks, p.reads(before))
	stillLogged(t, s, sealed)
	stillListed(t, s, listed)
	p.survivorsReadable(t, s, "after the erasure")

	after := importInto(t, export, s.URL)
	report(t, "pg_dump of the export taken before the erasure, imported after it", dumpFindings(t, after, p.marks))
	if len(dumpFindings(t, after, p.keep)) == 0 {
		t.Errorf("pg_dump of the export taken before the erasure, imported after it: the message and memory not erased are gone too (%s)", p.keep[0].text)
	}
	verifies(t, after)
	report(t, "after the erasure of a message and a memory, retries of requests sent before it", p.retries.findings(t, s, p.marks))
}

// What the system does after an erasure brings nothing back: offline and
// online rebuilds of every projection, an import of the current export
// into a fresh database (sharing the key store), and a restart of the
// server. The erasures go through the command line here. A rebuild
// rewrites the query tables alone, so after one the reads served from
// them are looked at (the reads of the log are after the other steps).
func TestErasureSurvivesRebuildImportAndRestart(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, erasureEnv)
	w := seedUser(t, s, "user")
	p := seedPartial(t, s)
	w.await(t, s)
	p.await(t, s)
	gone := append(append(marks{}, w.marks...), p.marks...)
	mustFind(t, "pg_dump before the erasure", dumpFindings(t, s.URL, gone))

	before := time.Now()
	for _, args := range [][]string{{"erase", "user", w.uid}, {"erase", "message", p.erasedMessage}, {"erase", "memory", p.erasedMemory}} {
		if code, out, errOut := runCLI(t, s.URL, args...); code != 0 {
			t.Errorf("arq %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
	}
	rs := w.reads(before).and(p.reads(before))
	rs.gone = append(rs.gone, "/v1/users/"+w.uid, "/v1/sessions/"+w.sid)
	rs.gone = append(rs.gone, prefixed("/v1/messages/", w.messages)...)
	rs.gone = append(rs.gone, prefixed("/v1/memories/", w.memories)...)
	projected := rs
	projected.projected = true
	check := func(round string, s *testserver.Server, rs readSet) {
		t.Helper()
		noTrace(t, round, s, gone, rs)
		p.survivorsReadable(t, s, round)
	}
	check("after the erasures", s, rs)

	for _, online := range []bool{false, true} {
		for _, pr := range app.Projections() {
			args := []string{"projections", "rebuild", pr.Name(), "--quiet"}
			if online {
				args = append(args, "--online")
			}
			if code, _, errOut := runCLI(t, s.URL, args...); code != 0 {
				t.Fatalf("arq %s: exit %d: %s", strings.Join(args, " "), code, errOut)
			}
		}
		check(map[bool]string{false: "after an offline rebuild of every projection", true: "after an online rebuild of every projection"}[online], s, projected)
	}

	dst := importInto(t, exportTo(t, s.URL), s.URL)
	env := map[string]string{"ARQ_KEYSTORE_URL": s.URL}
	for k, v := range erasureEnv {
		env[k] = v
	}
	check("in a fresh database the current export was imported into", testserver.StartOn(t, dst, env), rs)
	verifies(t, dst)

	s.Stop()
	check("after a restart", testserver.StartOn(t, s.URL, erasureEnv), rs)
}

// A mark is a text that must be found nowhere, and what it stands for.
type mark struct{ name, text string }

type marks []mark

// newMarker is a text found nowhere but where a test wrote it; lower case,
// as full-text indexes keep it.
func newMarker() string { return "mk" + strings.ToLower(ulid.Make().String()) }

// vector is an embedding of values unlikely anywhere else, and adds to
// ms each value's decimal forms: as sent and as a float32 (Postgres real)
// prints it, and as a float64 prints the same float32.
func (ms *marks) vector(name string) []float32 {
	v := make([]float32, 3)
	for i := range v {
		for {
			x := float32(0.1 + 0.8*rand.Float64())
			short := strconv.FormatFloat(float64(x), 'f', -1, 32)
			if len(short) < 10 { // "0." and 8 digits at least
				continue
			}
			v[i] = x
			*ms = append(*ms, mark{name + " value " + short, short}, mark{name + " value " + short, strconv.FormatFloat(float64(x), 'f', -1, 64)})
			break
		}
	}
	return v
}

// finding is a mark found somewhere.
type finding struct{ where, mark, excerpt string }

// find reports the first mark in text, if any, found at where, in any
// case (a full-text index keeps words in lower case).
func (ms marks) find(where, text string) []finding {
	low := strings.ToLower(text)
	for _, m := range ms {
		if i := strings.Index(low, strings.ToLower(m.text)); i >= 0 {
			from, to := max(0, i-60), min(len(low), i+len(m.text)+60)
			return []finding{{where: where, mark: m.name, excerpt: strings.ToValidUTF8(low[from:to], "")}}
		}
	}
	return nil
}

// findLines finds marks line by line in text, and reports them as one
// finding: what, the numbers of the lines, and the first line's excerpt.
func (ms marks) findLines(what, text string) []finding {
	var lines []string
	var first finding
	for i, line := range strings.Split(text, "\n") {
		if f := ms.find("", line); len(f) > 0 {
			if len(lines) == 0 {
				first = f[0]
			}
			lines = append(lines, strconv.Itoa(i+1))
		}
	}
	if len(lines) == 0 {
		return nil
	}
	if len(lines) > 20 {
		lines = append(lines[:20], "…")
	}
	first.where = fmt.Sprintf("%s, lines %s", what, strings.Join(lines, ","))
	return []finding{first}
}

// report fails t with the findings at place: the first few with what
// was found, then where the others are.
func report(t *testing.T, place string, fs []finding) {
	t.Helper()
	if len(fs) == 0 {
		return
	}
	const shown, listed = 6, 60
	var b strings.Builder
	fmt.Fprintf(&b, "%s: a marker is still there, %d times:", place, len(fs))
	for i, f := range fs {
		switch {
		case i < shown:
			fmt.Fprintf(&b, "\n  %s holds %s: …%s…", f.where, f.mark, strings.ReplaceAll(f.excerpt, "\n", `\n`))
		case i < shown+listed:
			fmt.Fprintf(&b, "\n  %s", f.where)
		default:
			fmt.Fprintf(&b, "\n  … and %d more", len(fs)-i)
			t.Error(b.String())
			return
		}
	}
	t.Error(b.String())
}

// mustFind ends the test when a control finds no mark: the checks after
// the erasure would prove nothing.
func mustFind(t *testing.T, place string, fs []finding) {
	t.Helper()
	if len(fs) == 0 {
		t.Fatalf("control: %s holds no marker, so not finding one later proves nothing", place)
	}
}

// pgDump dumps the whole database at dbURL, schema and the data of
// every table, in plain format.
func pgDump(t *testing.T, dbURL string) string {
	t.Helper()
	bin, err := exec.LookPath("pg_dump")
	if err != nil {
		found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_dump")
		if len(found) == 0 {
			t.Fatal("pg_dump is not installed")
		}
		bin = found[len(found)-1]
	}
	out, err := exec.Command(bin, "--format=plain", "--no-owner", "--dbname="+dbURL).Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			t.Fatalf("pg_dump: %v: %s", err, exit.Stderr)
		}
		t.Fatalf("pg_dump: %v", err)
	}
	return string(out)
}

// dumpFindings finds marks in a pg_dump of the database, naming the
// table and row (or the dump's line outside the tables' data).
func dumpFindings(t *testing.T, dbURL string, ms marks) []finding {
	t.Helper()
	var out []finding
	table, row := "", 0
	for i, line := range strings.Split(pgDump(t, dbURL), "\n") {
		switch {
		case strings.HasPrefix(line, "COPY "):
			table, row = strings.Fields(line)[1], 0
			continue
		case line == `\.`:
			table = ""
			continue
		}
		where := fmt.Sprintf("dump line %d", i+1)
		if table != "" {
			row++
			where = fmt.Sprintf("table %s row %d", table, row)
		}
		out = append(out, ms.find(where, line)...)
	}
	return out
}

// redisFindings finds marks in the name of every Redis key, and in the
// value of every key of the deployment over the database at dbURL (its
// keys name the database: see cache.Namespace).
func redisFindings(t *testing.T, dbURL string, ms marks) []finding {
	t.Helper()
	cfg, err := app.FromEnv(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	opt, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	database := strings.TrimPrefix(u.Path, "/")
	ctx := context.Background()
	var out []finding
	var cursor uint64
	for {
		keys, next, err := rdb.Scan(ctx, cursor, "*", 1000).Result()
		if err != nil {
			t.Fatalf("redis scan: %v", err)
		}
		for _, k := range keys {
			out = append(out, ms.find("redis key name "+k, k)...)
			if strings.Contains(k, database) {
				out = append(out, ms.find("redis key "+k, redisValue(t, rdb, k))...)
			}
		}
		if cursor = next; cursor == 0 {
			return out
		}
	}
}

// redisValue is the value of key as text, whatever its type ("" if it
// went meanwhile).
func redisValue(t *testing.T, rdb *redis.Client, key string) string {
	t.Helper()
	ctx := context.Background()
	typ, err := rdb.Type(ctx, key).Result()
	if err != nil {
		t.Fatalf("redis type %s: %v", key, err)
	}
	var v any
	switch typ {
	case "none":
		return ""
	case "string":
		v, err = rdb.Get(ctx, key).Result()
	case "list":
		v, err = rdb.LRange(ctx, key, 0, -1).Result()
	case "set":
		v, err = rdb.SMembers(ctx, key).Result()
	case "zset":
		v, err = rdb.ZRangeWithScores(ctx, key, 0, -1).Result()
	case "hash":
		v, err = rdb.HGetAll(ctx, key).Result()
	case "stream":
		v, err = rdb.XRange(ctx, key, "-", "+").Result()
	default:
		t.Fatalf("redis key %s is a %s, which this test does not read", key, typ)
	}
	if errors.Is(err, redis.Nil) {
		return ""
	}
	if err != nil {
		t.Fatalf("redis read %s: %v", key, err)
	}
	return fmt.Sprint(v)
}

// exportTo runs arq export of the database at dbURL into a file.
func exportTo(t *testing.T, dbURL string) string {
	t.Helper()
	code, out, errOut := runCLI(t, dbURL, "export", "--quiet")
	if code != 0 {
		t.Fatalf("arq export: exit %d: %s", code, errOut)
	}
	file := filepath.Join(t.TempDir(), "export.ndjson")
	if err := os.WriteFile(file, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// importInto runs arq import of file into a fresh database whose key
// store is the database at keystore, and returns the fresh one's URL.
func importInto(t *testing.T, file, keystore string) string {
	t.Helper()
	dst := testdb.Unmade(t)
	code, out, errOut := runCLIWith(t, map[string]string{"ARQ_DATABASE_URL": dst, "ARQ_KEYSTORE_URL": keystore}, "import", "--quiet", file)
	if code != 0 {
		t.Fatalf("arq import: exit %d\n%s%s", code, out, errOut)
	}
	return dst
}

// verifies checks that arq verify passes on the database at dbURL.
func verifies(t *testing.T, dbURL string) {
	t.Helper()
	if code, out, errOut := runCLI(t, dbURL, "verify", "--quiet"); code != 0 {
		t.Errorf("arq verify: exit %d\n%s%s", code, out, errOut)
	}
}

func readText(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func prefixed(prefix string, ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = prefix + id
	}
	return out
}

// appendBatch appends messages to a session in one request and returns
// their ids.
func appendBatch(t *testing.T, s *testserver.Server, sid string, messages []any) []string {
	t.Helper()
	r := s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"messages": messages}, idem()...))
	var body struct {
		Messages []struct {
			ID string `json:"id"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil || len(body.Messages) != len(messages) {
		t.Fatalf("batch append: %v: %s", err, r.Body)
	}
	ids := make([]string, len(messages))
	for i, m := range body.Messages {
		ids[i] = m.ID
	}
	return ids
}

// retries are POSTs sent with an Idempotency-Key, to send again after an
// erasure: the answer kept for a retry must not bring erased data back.
type retries []retry

type retry struct {
	path, key string
	body      any
}

// retried POSTs body to path with a fresh Idempotency-Key, and keeps the
// request to retry later.
func (rs *retries) retried(t *testing.T, s *testserver.Server, status int, path string, body any) testserver.Response {
	t.Helper()
	r := retry{path: path, key: "idem-" + ulid.Make().String(), body: body}
	*rs = append(*rs, r)
	return s.Must(status, s.Do("POST", path, body, "Idempotency-Key", r.key))
}

// findings sends each request again, as a client's retry, and finds marks
// in the answers. (A retry after the erasure may also be answered anew;
// it is sent last, after every other check.)
func (rs retries) findings(t *testing.T, s *testserver.Server, ms marks) []finding {
	t.Helper()
	var out []finding
	for _, r := range rs {
		a := s.Do("POST", r.path, r.body, "Idempotency-Key", r.key)
		if a.Status >= 500 {
			t.Errorf("retry of POST %s: %d: %.300s", r.path, a.Status, a.Body)
		}
		out = append(out, ms.find(fmt.Sprintf("the retry of POST %s with its Idempotency-Key (%d)", r.path, a.Status), string(a.Body))...)
	}
	return out
}

// historyLengths are the numbers of entries of each entity's history.
func historyLengths(t *testing.T, s *testserver.Server, entities []string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, e := range entities {
		r := s.Do("GET", e+"/history", nil)
		if r.Status != 200 {
			t.Errorf("GET %s/history: %d: %.300s", e, r.Status, r.Body)
		}
		out[e] = len(r.Items())
	}
	return out
}

// stillListed checks that each entity's history lists every event it
// listed before the erasure (and the erasure's own, if any).
func stillListed(t *testing.T, s *testserver.Server, before map[string]int) {
	t.Helper()
	for e, n := range historyLengths(t, s, slices.Sorted(maps.Keys(before))) {
		if n < before[e] {
			t.Errorf("GET %s/history lists %d events after the erasure, %d before: every event stays listed, marked erased", e, n, before[e])
		}
	}
}

// idem is a fresh Idempotency-Key header: the answers kept for retries
// are among what an erasure must reach.
func idem() []string { return []string{"Idempotency-Key", "idem-" + ulid.Make().String()} }

// world is one user with a marker in every personal field: profile and
// external id, a session's title and metadata, messages (content, name,
// metadata, embeddings; one edited), memories (content, tags, metadata,
// embeddings; one updated), the session's summary, the snapshots of its
// assistant messages (whose query is the last user message) and one a
// client takes.
type world struct {
	marks      marks
	marker     string
	uid, sid   string
	messages   []string
	answers    []string // assistant messages, each due a snapshot
	memories   []string
	snapshot   string // taken by a client
	externalID string
	retries    retries
	// summaryWindow is the query of a context window that shows the
	// session's summary.
	summaryWindow string
}

func seedUser(t *testing.T, s *testserver.Server, label string) *world {
	t.Helper()
	m := newMarker()
	w := &world{marker: m, externalID: "ext-" + m, marks: marks{{"the " + label + "'s marker " + m, m}}}
	w.uid = w.retries.retried(t, s, 201, "/v1/users", map[string]any{"external_id": w.externalID, "name": "Name " + m,
		"email": m + "@example.com", "metadata": map[string]any{"note": "about " + m}}).Str("id")
	s.Must(200, s.Do("PATCH", "/v1/users/"+w.uid, map[string]any{"name": "Renamed " + m, "metadata": map[string]any{"again": m}}, idem()...))
	w.sid = s.Must(201, s.Do("POST", "/v1/users/"+w.uid+"/sessions", map[string]any{"title": "Title " + m,
		"metadata": map[string]any{"topic": m}}, idem()...)).Str("id")
	// The first message is edited before the session is due a summary,
	// and the rest come in one batch: one summary covers them all.
	say := func(i int) map[string]any {
		role := []string{"user", "assistant"}[i%2]
		msg := map[string]any{"role": role, "content": fmt.Sprintf("The %s says %d things about the garden wall and %s.", role, i, m),
			"metadata": map[string]any{"m": m}}
		if i < 2 {
			msg["name"] = m
			msg["embedding"] = w.marks.vector(fmt.Sprintf("embedding of %s's message %d", label, i))
		}
		return msg
	}
	w.messages = []string{s.Must(201, s.Do("POST", "/v1/sessions/"+w.sid+"/messages", say(0), idem()...)).Str("id")}
	s.Must(200, s.Do("PATCH", "/v1/messages/"+w.messages[0], map[string]any{"content": "Edited: the garden wall and " + m + ".",
		"metadata": map[string]any{"edited": m}, "embedding": w.marks.vector("embedding of " + label + "'s edited message")}, idem()...))
	var batch []any
	for i := 1; i < 6; i++ {
		batch = append(batch, say(i))
	}
	w.messages = append(w.messages, appendBatch(t, s, w.sid, batch)...)
	w.answers = []string{w.messages[1], w.messages[3], w.messages[5]}
	for i := range 2 {
		mem := map[string]any{"type": []string{"semantic", "episodic"}[i], "content": fmt.Sprintf("Memory %d: the garden wall of %s.", i, m),
			"tags": []string{m, "garden"}, "metadata": map[string]any{"k": m}, "source_session_id": w.sid,
			"embedding": w.marks.vector(fmt.Sprintf("embedding of %s's memory %d", label, i))}
		w.memories = append(w.memories, s.Must(201, s.Do("POST", "/v1/users/"+w.uid+"/memories", mem, idem()...)).Str("id"))
	}
	s.Must(200, s.Do("PATCH", "/v1/memories/"+w.memories[0], map[string]any{"content": "Updated: the garden wall of " + m + ".",
		"tags": []string{"garden", m + "x"}, "embedding": w.marks.vector("embedding of " + label + "'s updated memory")}, idem()...))
	w.snapshot = s.Must(201, s.Do("POST", "/v1/sessions/"+w.sid+"/context/snapshots", map[string]any{"max_tokens": 1000, "query": "garden " + m}, idem()...)).Str("id")
	return w
}

// await waits until the background pass has summarized the session and
// recorded the snapshots of its assistant messages, each holding the
// marker, and reads the user's data through the API once, so that the
// caches hold it.
func (w *world) await(t *testing.T, s *testserver.Server) {
	t.Helper()
	w.summaryWindow = awaitSummary(t, s, w.sid, w.marker)
	testwait.Eventually(t, 30*time.Second, "snapshots of the assistant messages, their query holding the marker", func() (bool, error) {
		for _, a := range w.answers {
			r := s.Do("GET", "/v1/messages/"+a+"/context", nil)
			if r.Status != 200 {
				return false, nil
			}
			if !strings.Contains(r.Str("query"), w.marker) {
				return false, fmt.Errorf("the snapshot of %s has the query %q", a, r.Str("query"))
			}
		}
		return true, nil
	})
	for _, p := range append(append([]string{"/v1/users/" + w.uid, "/v1/sessions/" + w.sid, "/v1/users/" + w.uid + "/memories",
		"/v1/sessions/" + w.sid + "/messages", "/v1/sessions/" + w.sid + "/context?max_tokens=2000"},
		prefixed("/v1/messages/", w.messages)...), prefixed("/v1/memories/", w.memories)...) {
		s.Must(200, s.Do("GET", p, nil))
	}
	s.Must(200, s.Do("POST", "/v1/users/"+w.uid+"/memories/search", map[string]any{"query": "garden wall"}))
}

// awaitSummary waits until the background pass has summarized the
// session, the summary holding marker, and returns the query of a context
// window that shows it: room for the summary and one message or two, so
// that the summary does not repeat what the window holds.
func awaitSummary(t *testing.T, s *testserver.Server, sid, marker string) string {
	t.Helper()
	var tokens int
	testwait.Eventually(t, 30*time.Second, "a summary holding "+marker, func() (bool, error) {
		for _, e := range s.Must(200, s.Do("GET", "/v1/events?type=session.summarized&stream=summary-"+sid, nil)).Items() {
			d, _ := e["data"].(map[string]any)
			if c, _ := d["content"].(string); strings.Contains(c, marker) {
				n, _ := d["tokens"].(float64)
				tokens = int(n)
				return true, nil
			}
		}
		return false, nil
	})
	query := fmt.Sprintf("max_tokens=%d&summary_share=0.99&memory_share=0", tokens+domain.ItemOverhead+30)
	if w := windowOf(s, sid, query); w.Summary == nil || !strings.Contains(w.Summary.Content, marker) {
		t.Fatalf("control: the context window %s shows no summary holding %s: %+v", query, marker, w)
	}
	return query
}

// reads are the API reads of everything of the world.
func (w *world) reads(before time.Time) readSet {
	return readSet{before: before, users: []string{w.uid}, sessions: []string{w.sid},
		messages: w.messages, memories: w.memories, snapshots: []string{w.snapshot},
		get:  []string{"/v1/users?external_id=" + url.QueryEscape(w.externalID), "/v1/sessions/" + w.sid + "/context?" + w.summaryWindow},
		post: map[string]any{"/v1/users/" + w.uid + "/memories/search": map[string]any{"query": "garden wall"}}}
}

// partial is a user whose session has one message, and who has one
// memory, to erase, each with a marker of its own, beside a message and a
// memory that stay (with the keep marker). The erased message is the
// oldest (its session's summary holds it) and a user message followed by
// an assistant's (whose snapshot's query is its text).
type partial struct {
	marks, keep                 marks
	msgMarker, memMarker        string
	uid, sid                    string
	erasedMessage, keptMessage  string
	erasedMemory, keptMemory    string
	messages, answers, memories []string
	summaryWindow               string
	retries                     retries
}

func seedPartial(t *testing.T, s *testserver.Server) *partial {
	t.Helper()
	p := &partial{msgMarker: newMarker(), memMarker: newMarker()}
	k := newMarker()
	p.marks = marks{{"the erased message's marker " + p.msgMarker, p.msgMarker}, {"the erased memory's marker " + p.memMarker, p.memMarker}}
	p.keep = marks{{"the kept message's and memory's marker", k}}
	p.uid = s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "kept-" + k, "name": "Kept " + k}, idem()...)).Str("id")
	p.sid = s.Must(201, s.Do("POST", "/v1/users/"+p.uid+"/sessions", map[string]any{"title": "Kept " + k}, idem()...)).Str("id")
	msg := func(role, content string, extra map[string]any) map[string]any {
		out := map[string]any{"role": role, "content": content}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	// As in seedUser: the edit before the session is due a summary, the
	// rest in one batch.
	p.erasedMessage = p.retries.retried(t, s, 201, "/v1/sessions/"+p.sid+"/messages", msg("user", "Where does the garden bench go, near "+p.msgMarker+"?",
		map[string]any{"name": p.msgMarker, "metadata": map[string]any{"m": p.msgMarker}, "embedding": p.marks.vector("embedding of the erased message")})).Str("id")
	s.Must(200, s.Do("PATCH", "/v1/messages/"+p.erasedMessage, map[string]any{"content": "Where does the garden bench go, by " + p.msgMarker + "?",
		"embedding": p.marks.vector("embedding of the erased message, edited")}, idem()...))
	rest := appendBatch(t, s, p.sid, []any{
		msg("assistant", "By the wall, where the afternoon sun reaches the garden.", nil),
		msg("user", "And the tomatoes near "+k+"?", map[string]any{"metadata": map[string]any{"m": k}}),
		msg("assistant", "They want the south side of the garden wall.", nil),
		msg("user", "Thanks, the garden will look fine this summer.", nil),
		msg("assistant", "Enjoy the garden and the long evenings outside.", nil),
	})
	p.messages = append([]string{p.erasedMessage}, rest...)
	p.keptMessage = rest[1]
	p.answers = []string{rest[0], rest[2], rest[4]}

	p.erasedMemory = p.retries.retried(t, s, 201, "/v1/users/"+p.uid+"/memories", map[string]any{"type": "semantic",
		"content": "The garden bench stands by " + p.memMarker, "tags": []string{p.memMarker, "garden"}, "metadata": map[string]any{"k": p.memMarker},
		"embedding": p.marks.vector("embedding of the erased memory")}).Str("id")
	s.Must(200, s.Do("PATCH", "/v1/memories/"+p.erasedMemory, map[string]any{"content": "The garden bench moved to " + p.memMarker,
		"embedding": p.marks.vector("embedding of the erased memory, updated")}, idem()...))
	p.keptMemory = s.Must(201, s.Do("POST", "/v1/users/"+p.uid+"/memories", map[string]any{"type": "semantic",
		"content": "The garden tomatoes grow by " + k, "tags": []string{"garden"}}, idem()...)).Str("id")
	p.memories = []string{p.erasedMemory, p.keptMemory}
	return p
}

// await waits until the session's summary holds the message to erase and
// the first answer's snapshot has its text as query, and reads
// everything once, so that the caches hold it.
func (p *partial) await(t *testing.T, s *testserver.Server) {
	t.Helper()
	p.summaryWindow = awaitSummary(t, s, p.sid, p.msgMarker)
	testwait.Eventually(t, 30*time.Second, "snapshots of the assistant messages", func() (bool, error) {
		for _, a := range p.answers {
			if s.Do("GET", "/v1/messages/"+a+"/context", nil).Status != 200 {
				return false, nil
			}
		}
		return true, nil
	})
	if q := s.Must(200, s.Do("GET", "/v1/messages/"+p.answers[0]+"/context", nil)).Str("query"); !strings.Contains(q, p.msgMarker) {
		t.Fatalf("the first answer's snapshot has the query %q, want the erased message's text", q)
	}
	for _, path := range append(append([]string{"/v1/users/" + p.uid + "/memories", "/v1/sessions/" + p.sid + "/messages",
		"/v1/sessions/" + p.sid + "/context?max_tokens=2000"}, prefixed("/v1/messages/", p.messages)...), prefixed("/v1/memories/", p.memories)...) {
		s.Must(200, s.Do("GET", path, nil))
	}
	s.Must(200, s.Do("POST", "/v1/users/"+p.uid+"/memories/search", map[string]any{"query": "garden"}))
}

func (p *partial) reads(before time.Time) readSet {
	return readSet{before: before, users: []string{p.uid}, sessions: []string{p.sid}, messages: p.messages, memories: p.memories,
		gone: []string{"/v1/messages/" + p.erasedMessage, "/v1/memories/" + p.erasedMemory},
		get:  []string{"/v1/sessions/" + p.sid + "/context?" + p.summaryWindow},
		post: map[string]any{"/v1/users/" + p.uid + "/memories/search": map[string]any{"query": "garden bench"}}}
}

// survivorsReadable checks that the message and the memory not erased
// read as before, in their session and the context window too.
func (p *partial) survivorsReadable(t *testing.T, s *testserver.Server, round string) {
	t.Helper()
	k := p.keep[0].text
	for _, path := range []string{"/v1/messages/" + p.keptMessage, "/v1/memories/" + p.keptMemory,
		"/v1/sessions/" + p.sid + "/messages", "/v1/users/" + p.uid + "/memories", "/v1/sessions/" + p.sid + "/context?max_tokens=2000"} {
		if r := s.Do("GET", path, nil); r.Status != 200 || !strings.Contains(string(r.Body), k) {
			t.Errorf("%s: GET %s: %d without the kept marker: %.300s", round, path, r.Status, r.Body)
		}
	}
}

// readSet is what the API is asked after an erasure.
type readSet struct {
	before time.Time // a time before the erasure, for ?as_of=
	// Entities whose every read is looked at: live, by version, as of
	// before the erasure, history; and more by kind.
	users, sessions, messages, memories, snapshots []string
	// gone must answer 404 or 410.
	gone []string
	get  []string
	post map[string]any
	// projected leaves out the reads of the log (history, version,
	// as_of, audit, /v1/events and the SSE replays): those the query
	// tables serve are left.
	projected bool
}

func (rs readSet) and(o readSet) readSet {
	rs.users = append(append([]string{}, rs.users...), o.users...)
	rs.sessions = append(append([]string{}, rs.sessions...), o.sessions...)
	rs.messages = append(append([]string{}, rs.messages...), o.messages...)
	rs.memories = append(append([]string{}, rs.memories...), o.memories...)
	rs.snapshots = append(append([]string{}, rs.snapshots...), o.snapshots...)
	rs.gone = append(append([]string{}, rs.gone...), o.gone...)
	rs.get = append(append([]string{}, rs.get...), o.get...)
	post := map[string]any{}
	for _, m := range []map[string]any{rs.post, o.post} {
		for k, v := range m {
			post[k] = v
		}
	}
	rs.post = post
	return rs
}

// paths are the GETs of the set.
func (rs readSet) paths() []string {
	asOf := "?as_of=" + url.QueryEscape(rs.before.UTC().Format(time.RFC3339Nano))
	var out []string
	entity := func(base string, extra ...string) {
		out = append(out, base)
		if !rs.projected {
			out = append(out, base+"?version=1", base+"?version=2", base+"?version=3", base+asOf, base+"/history")
		}
		for _, e := range extra {
			out = append(out, base+e)
		}
	}
	for _, id := range rs.users {
		if !rs.projected {
			out = append(out, "/v1/users/"+id+"/audit?limit=1000")
		}
		entity("/v1/users/"+id, "/sessions", "/memories", "/memories?tag=garden")
	}
	for _, id := range rs.sessions {
		entity("/v1/sessions/"+id, "/messages", "/context?max_tokens=2000", "/context?max_tokens=2000&query=garden", "/context/snapshots")
	}
	for _, id := range rs.messages {
		entity("/v1/messages/"+id, "/context")
	}
	for _, id := range rs.memories {
		entity("/v1/memories/" + id)
	}
	for _, id := range rs.snapshots {
		out = append(out, "/v1/context-snapshots/"+id)
	}
	return append(append(out, rs.get...), "/v1/users?limit=100", "/v1/stats")
}

// noTrace looks for the marks in a pg_dump of the server's database,
// in Redis, and in every read of the API, and checks that arq verify
// passes.
func noTrace(t *testing.T, round string, s *testserver.Server, ms marks, rs readSet) {
	t.Helper()
	report(t, round+": pg_dump", dumpFindings(t, s.URL, ms))
	report(t, round+": Redis", redisFindings(t, s.URL, ms))
	report(t, round+": the API", apiFindings(t, round, s, ms, rs))
	verifies(t, s.URL)
}

// apiFindings reads the API: every path of rs (and its POSTs), the whole
// log as pages, as NDJSON and replayed over SSE from the start, and each
// session's SSE replay. The entities of rs.gone must answer 404 or 410,
// and no read may fail with a 5xx.
func apiFindings(t *testing.T, round string, s *testserver.Server, ms marks, rs readSet) []finding {
	t.Helper()
	var out []finding
	look := func(what string, r testserver.Response) {
		if r.Status >= 500 {
			t.Errorf("%s: %s: %d: %.300s", round, what, r.Status, r.Body)
		}
		out = append(out, ms.find(fmt.Sprintf("%s (%d)", what, r.Status), string(r.Body))...)
	}
	for _, p := range rs.gone {
		if r := s.Do("GET", p, nil); r.Status != 404 && r.Status != 410 {
			t.Errorf("%s: GET %s: %d, want 404 or 410: %.300s", round, p, r.Status, r.Body)
		}
	}
	for _, p := range rs.paths() {
		look("GET "+p, s.Do("GET", p, nil))
	}
	for p, body := range rs.post {
		look("POST "+p, s.Do("POST", p, body))
	}
	for _, id := range rs.sessions {
		look("POST /v1/sessions/"+id+"/context", s.Do("POST", "/v1/sessions/"+id+"/context", map[string]any{"max_tokens": 2000}))
	}
	if rs.projected {
		return out
	}
	for after := ""; ; {
		r := s.Do("GET", "/v1/events?limit=1000&after="+after, nil)
		look("GET /v1/events?after="+after, r)
		if after = r.Str("next_cursor"); after == "" || r.Status != 200 {
			break
		}
	}
	log := s.Must(200, s.Do("GET", "/v1/events", nil, "Accept", "application/x-ndjson"))
	out = append(out, ms.findLines("GET /v1/events as NDJSON", string(log.Body))...)
	events := decodeLog(t, log.Body)
	if len(events) > 0 {
		out = append(out, ms.findLines("SSE /v1/events/stream?after=0.0", replay(t, s, "/v1/events/stream?after=0.0", events[len(events)-1].Cursor))...)
	}
	for _, sid := range rs.sessions {
		last := ""
		for _, e := range events {
			if e.StreamID == domain.StreamID(domain.StreamMessageLog, sid) || e.StreamID == domain.StreamID(domain.StreamSummary, sid) ||
				(e.Type == domain.ContextSnapshotRecorded && e.Data.SessionID == sid) {
				last = e.Cursor
			}
		}
		path := "/v1/sessions/" + sid + "/stream?after=0.0"
		out = append(out, ms.findLines("SSE "+path, replay(t, s, path, last))...)
	}
	return out
}

// logLine is an event as GET /v1/events sends it.
type logLine struct {
	Cursor   string `json:"cursor"`
	EventID  string `json:"event_id"`
	StreamID string `json:"stream_id"`
	Type     string `json:"event_type"`
	Erased   bool   `json:"erased"`
	Data     struct {
		SessionID string `json:"session_id"`
	} `json:"data"`
	raw string
}

func decodeLog(t *testing.T, body []byte) []logLine {
	t.Helper()
	var out []logLine
	for _, line := range strings.Split(strings.TrimSpace(string(body)), "\n") {
		if line == "" {
			continue
		}
		var e logLine
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("a line of the log: %v: %s", err, line)
		}
		e.raw = line
		out = append(out, e)
	}
	return out
}

// replay reads the event stream at path until the event with id last,
// within 30 s, and returns what it read; an answer other than a stream
// is returned whole. With last "" only the answer's start is read.
func replay(t *testing.T, s *testserver.Server, path, last string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", s.Base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	if resp.StatusCode != 200 || last == "" {
		if resp.StatusCode != 200 {
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				b.WriteString(sc.Text() + "\n")
			}
		}
		return b.String()
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	reached := false
	for sc.Scan() {
		line := sc.Text()
		b.WriteString(line + "\n")
		if line == "id: "+last {
			reached = true
		}
		if reached && line == "" {
			return b.String()
		}
	}
	t.Errorf("SSE %s: the replay did not reach %s within 30s (%v)", path, last, sc.Err())
	return b.String()
}

// eventsHolding reads the log and returns the events holding a mark: by
// id, their type.
func eventsHolding(t *testing.T, s *testserver.Server, ms marks) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, e := range decodeLog(t, s.Must(200, s.Do("GET", "/v1/events", nil, "Accept", "application/x-ndjson")).Body) {
		if len(ms.find("", e.raw)) > 0 {
			out[e.EventID] = e.Type
		}
	}
	if len(out) == 0 {
		t.Fatal("control: no event of the log holds a marker")
	}
	return out
}

// stillLogged checks that every event that held erased data is still in
// the log, of its type, and marked erased.
func stillLogged(t *testing.T, s *testserver.Server, sealed map[string]string) {
	t.Helper()
	seen := map[string]logLine{}
	for _, e := range decodeLog(t, s.Must(200, s.Do("GET", "/v1/events", nil, "Accept", "application/x-ndjson")).Body) {
		seen[e.EventID] = e
	}
	var bad []string
	for id, typ := range sealed {
		e, ok := seen[id]
		switch {
		case !ok:
			bad = append(bad, fmt.Sprintf("%s %s is gone from the log", typ, id))
		case e.Type != typ:
			bad = append(bad, fmt.Sprintf("%s %s is now a %s", typ, id, e.Type))
		case !e.Erased:
			bad = append(bad, fmt.Sprintf("%s %s is not marked erased", typ, id))
		}
	}
	if len(bad) > 0 {
		t.Errorf("of the %d events that held erased data, %d are not in the log as erased events: %s", len(sealed), len(bad), strings.Join(bad[:min(len(bad), 8)], "; "))
	}
}
