package e2e

import (
	"github.com/arq-memory/arq/internal/testserver"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/arq-memory/arq/internal/testdb"
)

// A log exported and imported into an empty database gives the same reads
// and the same verification; a second import is refused. The export holds
// no data key: the import reads them from the key store it is configured
// with, here the source's.
func TestExportThenImportGivesTheSameReads(t *testing.T) {
	t.Parallel()
	src := testserver.Start(t, nil)
	uid := src.Must(201, src.Do("POST", "/v1/users", map[string]any{"external_id": "x", "name": "Xu"})).Str("id")
	src.Must(200, src.Do("PATCH", "/v1/users/"+uid, map[string]any{"email": "xu@example.com"}))
	sid := src.Must(201, src.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{"title": "moving"})).Str("id")
	src.Must(201, src.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"messages": []any{
		map[string]any{"role": "user", "content": "Pack the books first."},
		map[string]any{"role": "user", "content": "Then the kitchen."}}})) // no assistant message: no snapshot after the export
	gone := src.Must(201, src.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "oops"})).Str("id")
	src.Must(204, src.Do("DELETE", "/v1/messages/"+gone, nil))
	mid := src.Must(201, src.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "Xu is moving house", "tags": []string{"life"}})).Str("id")
	src.Must(200, src.Do("PATCH", "/v1/memories/"+mid, map[string]any{"importance": 0.8}))
	snap := src.Must(201, src.Do("POST", "/v1/sessions/"+sid+"/context/snapshots", map[string]any{})).Str("id")

	code, dump, errOut := runCLI(t, src.URL, "export", "--quiet")
	if code != 0 || strings.Count(dump, "\n") < 10 {
		t.Fatalf("export: %d\n%s", code, errOut)
	}
	file := filepath.Join(t.TempDir(), "log.ndjson")
	if err := os.WriteFile(file, []byte(dump), 0o600); err != nil {
		t.Fatal(err)
	}
	dst := testdb.New(t)
	env := map[string]string{"ARQ_DATABASE_URL": dst, "ARQ_KEYSTORE_URL": src.URL}
	if code, _, errOut := runCLIWith(t, env, "import", "--quiet", file); code != 0 {
		t.Fatalf("import: %d %s", code, errOut)
	}
	if code, _, errOut := runCLIWith(t, env, "import", "--quiet", file); code != 1 || !strings.Contains(errOut, "not empty") {
		t.Fatalf("second import: %d %s", code, errOut)
	}
	_, wantVerify, _ := runCLI(t, src.URL, "verify", "--quiet")
	if code, got, _ := runCLI(t, dst, "verify", "--quiet"); code != 0 || got != wantVerify {
		t.Fatalf("verify after import: %d %q, source %q", code, got, wantVerify)
	}

	to := testserver.StartOn(t, dst, map[string]string{"ARQ_KEYSTORE_URL": src.URL})
	for _, path := range []string{
		"/v1/users/" + uid, "/v1/users", "/v1/sessions/" + sid, "/v1/sessions/" + sid + "/messages",
		"/v1/users/" + uid + "/memories", "/v1/memories/" + mid, "/v1/memories/" + mid + "/history",
		"/v1/messages/" + gone + "/history", "/v1/context-snapshots/" + snap,
	} {
		a, b := src.Must(200, src.Do("GET", path, nil)), to.Must(200, to.Do("GET", path, nil))
		if string(a.Body) != string(b.Body) {
			t.Errorf("GET %s differs after import:\nsource %s\nimport %s", path, a.Body, b.Body)
		}
	}
	// The audit holds the same events in the same order; cursors are each
	// log's own.
	ids := func(s *testserver.Server) string {
		var out []string
		for _, e := range s.Must(200, s.Do("GET", "/v1/users/"+uid+"/audit", nil)).Items() {
			out = append(out, e["event_id"].(string)+"@"+e["recorded_at"].(string))
		}
		return strings.Join(out, " ")
	}
	if a, b := ids(src), ids(to); a != b || a == "" {
		t.Errorf("audit differs after import:\nsource %s\nimport %s", a, b)
	}
}
