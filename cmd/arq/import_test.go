package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/note"

	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/internal/testserver"
	"github.com/arq-memory/arq/internal/testwait"
	"github.com/arq-memory/arq/ledger"
)

// signedLog is a source database whose log has signed checkpoints, and
// its export.
type signedLog struct {
	url   string
	pool  *pgxpool.Pool
	vkey  string
	lines []map[string]json.RawMessage
}

// newSignedLog fills a database through the API in rounds, building the
// log's tree and signing a checkpoint after each, and exports it.
func newSignedLog(t *testing.T) signedLog {
	t.Helper()
	ctx := context.Background()
	// The server signs no checkpoint of its own: the test signs one after
	// each round, where its cases expect them.
	s := testserver.Start(t, map[string]string{"ARQ_LOG_CHECKPOINT_EVERY": "1h"})
	pool := testdb.Pool(t, s.URL)
	tree := ledger.NewTree(pool, slog.New(slog.DiscardHandler))
	// The server signs checkpoints too, as the log grows, with the tests'
	// key: the test signs with the same one.
	vkey := testdb.LogVerifierKey
	signer, err := note.NewSigner(testdb.LogSigningKey)
	if err != nil {
		t.Fatal(err)
	}
	origin, err := ledger.Origin(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	// An event becomes a leaf once it is safe to read, which a transaction
	// of any database on the server can hold back.
	sign := func() {
		testwait.Eventually(t, time.Minute, "the tree holds every event", func() (bool, error) {
			if _, err := tree.Build(ctx); err != nil {
				return false, err
			}
			var behind bool
			err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM events) > coalesce((SELECT max(first_leaf + leaves) FROM log_tree), 0)`).Scan(&behind)
			return !behind, err
		})
		if _, err := tree.SignNow(ctx, signer, origin, ""); err != nil {
			t.Fatal(err)
		}
	}
	for round := range 3 {
		uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "u" + strconv.Itoa(round), "name": "U"})).Str("id")
		s.Must(200, s.Do("PATCH", "/v1/users/"+uid, map[string]any{"email": fmt.Sprintf("u%d@example.com", round)}))
		sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{"title": "t"})).Str("id")
		s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"messages": []any{
			map[string]any{"role": "user", "content": "first"}, map[string]any{"role": "user", "content": "second"}}}))
		mid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "a fact"})).Str("id")
		s.Must(200, s.Do("PATCH", "/v1/memories/"+mid, map[string]any{"importance": 0.9}))
		sign()
	}
	s.Stop() // nothing writes now: the last checkpoint covers the whole log
	sign()
	code, out, errOut := runCLI(t, s.URL, "export", "--quiet")
	if code != 0 {
		t.Fatalf("export: %d %s", code, errOut)
	}
	l := signedLog{url: s.URL, pool: pool, vkey: vkey}
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("export line %q: %v", line, err)
		}
		l.lines = append(l.lines, m)
	}
	return l
}

// str is a field of an exported line, as a string.
func str(m map[string]json.RawMessage, key string) string {
	var s string
	_ = json.Unmarshal(m[key], &s)
	return s
}

// copyLines is a deep enough copy of lines to change fields of.
func copyLines(lines []map[string]json.RawMessage) []map[string]json.RawMessage {
	out := make([]map[string]json.RawMessage, len(lines))
	for i, m := range lines {
		out[i] = map[string]json.RawMessage{}
		for k, v := range m {
			out[i][k] = v
		}
	}
	return out
}

// writeLines writes lines as an NDJSON file and returns its path.
func writeLines(t *testing.T, lines []map[string]json.RawMessage) string {
	t.Helper()
	var b strings.Builder
	for _, m := range lines {
		j, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(j)
		b.WriteByte('\n')
	}
	path := filepath.Join(t.TempDir(), "log.ndjson")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// importFile imports path into a fresh database; it returns the exit
// code, stderr and how many events the database holds after.
func (l signedLog) importFile(t *testing.T, path string, flags ...string) (int, string, int) {
	t.Helper()
	dst := testdb.New(t)
	env := map[string]string{"ARQ_DATABASE_URL": dst, "ARQ_KEYSTORE_URL": l.url, "ARQ_MASTER_KEY": testserver.MasterKey}
	code, _, errOut := runCLIWith(t, env, append(append([]string{"import"}, flags...), path)...)
	// One connection, closed at once: the server's are shared by every
	// test running.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return code, errOut, n
}

// victim is the first line of the export whose stream has a later event,
// with the line of that event.
func (l signedLog) victim(t *testing.T) (int, int) {
	t.Helper()
	for i, m := range l.lines {
		for j := i + 1; j < len(l.lines); j++ {
			if str(l.lines[j], "stream_id") == str(m, "stream_id") {
				return i, j
			}
		}
	}
	t.Fatal("no stream with two events")
	return 0, 0
}

// rehash recomputes the hash of lines[i] and of every later event of its
// stream, as the log defines it, as one who changed the file would.
func (l signedLog) rehash(t *testing.T, lines []map[string]json.RawMessage, i int) {
	t.Helper()
	var prev []byte
	stream := str(lines[i], "stream_id")
	for j := 0; j < len(lines); j++ {
		m := lines[j]
		if str(m, "stream_id") != stream {
			continue
		}
		if j >= i {
			var version, schema int
			_ = json.Unmarshal(m["version"], &version)
			_ = json.Unmarshal(m["schema_version"], &schema)
			err := l.pool.QueryRow(context.Background(), `SELECT arq_event_hash($1, $2, $3, $4, $5, $6, $7, $8::timestamptz, $9::jsonb, $10::jsonb)`,
				prev, str(m, "event_id"), stream, str(m, "stream_type"), version, str(m, "event_type"), schema,
				str(m, "recorded_at"), string(m["data"]), string(m["metadata"])).Scan(&prev)
			if err != nil {
				t.Fatal(err)
			}
			m["hash"], _ = json.Marshal(prev)
			continue
		}
		_ = json.Unmarshal(m["hash"], &prev)
	}
}

// An export carries the log's checkpoints and imports, its chains and
// checkpoints checked, signatures too with the right key; with another
// key it is refused, and a partial export carries no checkpoint.
func TestImportChecksTheExportsCheckpoints(t *testing.T) {
	t.Parallel()
	l := newSignedLog(t)
	carried := 0
	for _, m := range l.lines {
		if m["checkpoint"] != nil {
			carried++
		}
	}
	// One per round, and one after the server stopped unless it wrote
	// nothing after the third.
	if carried < 3 || l.lines[len(l.lines)-1]["checkpoint"] == nil {
		t.Fatalf("the export carries %d checkpoints, the last line %s; want 3 or more, one on the last line", carried, l.lines[len(l.lines)-1]["checkpoint"])
	}
	path := writeLines(t, l.lines)
	code, errOut, n := l.importFile(t, path)
	if code != 0 || n != len(l.lines) || !strings.Contains(errOut, fmt.Sprintf("the first %d match the log's %d checkpoints, whose signatures were not checked", n, carried)) {
		t.Fatalf("import: exit %d, %d events\n%s", code, n, errOut)
	}
	code, errOut, n = l.importFile(t, path, "--log-key", l.vkey)
	if code != 0 || n != len(l.lines) || !strings.Contains(errOut, "signed by the key given") {
		t.Fatalf("import --log-key: exit %d, %d events\n%s", code, n, errOut)
	}
	_, other, err := note.GenerateKey(rand.Reader, "arq-import-test")
	if err != nil {
		t.Fatal(err)
	}
	code, errOut, n = l.importFile(t, path, "--quiet", "--log-key", other)
	first := l.lines[0]
	for i, m := range l.lines {
		if m["checkpoint"] != nil {
			first = l.lines[i]
			break
		}
	}
	if code != 1 || n != 0 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "event "+str(first, "event_id")) ||
		!strings.Contains(errOut, "the checkpoint it carries does not verify") {
		t.Fatalf("import with another key: exit %d, %d events, stderr %q", code, n, errOut)
	}
	if code, errOut, _ := l.importFile(t, path, "--log-key", "nonsense"); code != 2 || !strings.Contains(errOut, "--log-key") {
		t.Fatalf("import --log-key nonsense: exit %d, stderr %q", code, errOut)
	}
	since := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	code, out, errOut := runCLI(t, l.url, "export", "--since", since)
	if code != 0 || strings.Contains(out, `"checkpoint"`) || strings.Count(out, "\n") != len(l.lines) ||
		!strings.Contains(errOut, "carries no checkpoint") {
		t.Fatalf("export --since: exit %d, %d lines, checkpoints: %v, stderr %q", code, strings.Count(out, "\n"), strings.Contains(out, `"checkpoint"`), errOut)
	}
}

// Each way of tampering with an export is refused, naming the first bad
// event, and leaves the database without events.
func TestImportRefusesATamperedExport(t *testing.T) {
	t.Parallel()
	l := newSignedLog(t)
	i, j := l.victim(t)
	vid, sid := str(l.lines[i], "event_id"), str(l.lines[j], "event_id")
	// a is a line whose neighbour below is of another stream.
	a := 0
	for str(l.lines[a], "stream_id") == str(l.lines[a+1], "stream_id") {
		a++
	}
	// The re-hashed event's first checkpoint, and the one before.
	cp, before := -1, -1
	for k, m := range l.lines {
		if m["checkpoint"] != nil {
			if k >= i {
				cp = k
				break
			}
			before = k
		}
	}
	for _, c := range []struct {
		name   string
		tamper func([]map[string]json.RawMessage) []map[string]json.RawMessage
		line   int // 1-based
		event  string
		want   string
	}{
		{"data changed, hash kept", func(ls []map[string]json.RawMessage) []map[string]json.RawMessage {
			ls[i]["data"] = json.RawMessage(strings.Replace(string(ls[i]["data"]), "{", `{"tampered":true,`, 1))
			return ls
		}, i + 1, vid, "its content does not match its hash"},
		{"hash changed", func(ls []map[string]json.RawMessage) []map[string]json.RawMessage {
			ls[i]["hash"], _ = json.Marshal(make([]byte, 32))
			return ls
		}, i + 1, vid, "its content does not match its hash"},
		{"data changed and the chain re-hashed", func(ls []map[string]json.RawMessage) []map[string]json.RawMessage {
			ls[i]["data"] = json.RawMessage(strings.Replace(string(ls[i]["data"]), "{", `{"tampered":true,`, 1))
			l.rehash(t, ls, i)
			return ls
		}, cp + 1, str(l.lines[cp], "event_id"), fmt.Sprintf("does not match the file's events: one at lines %d to %d was changed", before+2, cp+1)},
		{"event removed", func(ls []map[string]json.RawMessage) []map[string]json.RawMessage {
			return append(ls[:i], ls[i+1:]...)
		}, j, sid, "the chain is broken: version 1 of its stream is missing before it"},
		{"two events swapped", func(ls []map[string]json.RawMessage) []map[string]json.RawMessage {
			ls[a], ls[a+1] = ls[a+1], ls[a]
			return ls
		}, a + 2, str(l.lines[a], "event_id"), "comes before the event above it in the log's order"},
		{"two events swapped with their places", func(ls []map[string]json.RawMessage) []map[string]json.RawMessage {
			ls[a], ls[a+1] = ls[a+1], ls[a]
			for _, k := range []string{"position", "transaction_id"} {
				ls[a][k], ls[a+1][k] = ls[a+1][k], ls[a][k]
			}
			return ls
		}, -1, "", "does not match the file's events"},
		{"event id repeated in another stream", func(ls []map[string]json.RawMessage) []map[string]json.RawMessage {
			dup := copyLines(ls[i : i+1])[0]
			last := ls[len(ls)-1]
			var pos int64
			_ = json.Unmarshal(last["position"], &pos)
			dup["position"], dup["transaction_id"] = json.RawMessage(strconv.FormatInt(pos+1, 10)), last["transaction_id"]
			dup["stream_id"], dup["version"] = json.RawMessage(`"user-another"`), json.RawMessage(`1`)
			delete(dup, "checkpoint")
			ls = append(ls, dup)
			l.rehash(t, ls, len(ls)-1)
			return ls
		}, len(l.lines) + 1, vid, fmt.Sprintf("a duplicate: line %d holds the same event id", i+1)},
		{"event repeated", func(ls []map[string]json.RawMessage) []map[string]json.RawMessage {
			return append(ls[:i+1], append([]map[string]json.RawMessage{ls[i]}, ls[i+1:]...)...)
		}, i + 2, vid, "a duplicate"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := writeLines(t, c.tamper(copyLines(l.lines)))
			code, errOut, n := l.importFile(t, path)
			t.Logf("stderr: %s", errOut)
			want := []string{c.want, "import refused, nothing imported"}
			if c.line > 0 {
				want = append(want, fmt.Sprintf("line %d, event %s ", c.line, c.event))
			}
			for _, w := range want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q", w)
				}
			}
			if code != 1 || n != 0 || strings.Count(errOut, "\n") != 1 {
				t.Errorf("exit %d, %d events imported, stderr %q; want exit 1, no event, one line", code, n, errOut)
			}
		})
	}
	// The re-hashed file is consistent but for its checkpoints: without
	// them it imports, unless the operator asks for signed checkpoints.
	rehashed := copyLines(l.lines)
	rehashed[i]["data"] = json.RawMessage(strings.Replace(string(rehashed[i]["data"]), "{", `{"tampered":true,`, 1))
	l.rehash(t, rehashed, i)
	for _, m := range rehashed {
		delete(m, "checkpoint")
	}
	path := writeLines(t, rehashed)
	if code, errOut, n := l.importFile(t, path, "--log-key", l.vkey); code != 1 || n != 0 || !strings.Contains(errOut, "carries no checkpoint") {
		t.Fatalf("re-hashed, no checkpoint, --log-key: exit %d, %d events, stderr %q", code, n, errOut)
	}
	if code, errOut, n := l.importFile(t, path); code != 0 || n != len(l.lines) || !strings.Contains(errOut, "carries no checkpoint of its log") {
		t.Fatalf("re-hashed, no checkpoint: exit %d, %d events, stderr %q", code, n, errOut)
	}
}
