package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/arq-memory/arq/internal/testdb"
)

// A log exported and imported into an empty database gives the same reads
// and the same verification; a second import is refused.
func TestExportThenImportGivesTheSameReads(t *testing.T) {
	t.Parallel()
	src := startServer(t, nil)
	uid := src.must(201, src.do("POST", "/v1/users", map[string]any{"external_id": "x", "name": "Xu"})).str("id")
	src.must(200, src.do("PATCH", "/v1/users/"+uid, map[string]any{"email": "xu@example.com"}))
	sid := src.must(201, src.do("POST", "/v1/users/"+uid+"/sessions", map[string]any{"title": "moving"})).str("id")
	src.must(201, src.do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"messages": []any{
		map[string]any{"role": "user", "content": "Pack the books first."},
		map[string]any{"role": "user", "content": "Then the kitchen."}}})) // no assistant message: no snapshot after the export
	gone := src.must(201, src.do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "oops"})).str("id")
	src.must(204, src.do("DELETE", "/v1/messages/"+gone, nil))
	mid := src.must(201, src.do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "Xu is moving house", "tags": []string{"life"}})).str("id")
	src.must(200, src.do("PATCH", "/v1/memories/"+mid, map[string]any{"importance": 0.8}))
	snap := src.must(201, src.do("POST", "/v1/sessions/"+sid+"/context/snapshots", map[string]any{})).str("id")

	code, dump, errOut := runCLI(t, src.url, "export", "--quiet")
	if code != 0 || strings.Count(dump, "\n") < 10 {
		t.Fatalf("export: %d\n%s", code, errOut)
	}
	file := filepath.Join(t.TempDir(), "log.ndjson")
	if err := os.WriteFile(file, []byte(dump), 0o600); err != nil {
		t.Fatal(err)
	}
	dst := testdb.New(t)
	if code, _, errOut := runCLI(t, dst, "import", "--quiet", file); code != 0 {
		t.Fatalf("import: %d %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, dst, "import", "--quiet", file); code != 1 || !strings.Contains(errOut, "not empty") {
		t.Fatalf("second import: %d %s", code, errOut)
	}
	_, wantVerify, _ := runCLI(t, src.url, "verify", "--quiet")
	if code, got, _ := runCLI(t, dst, "verify", "--quiet"); code != 0 || got != wantVerify {
		t.Fatalf("verify after import: %d %q, source %q", code, got, wantVerify)
	}

	to := startServerOn(t, dst, nil)
	for _, path := range []string{
		"/v1/users/" + uid, "/v1/users", "/v1/sessions/" + sid, "/v1/sessions/" + sid + "/messages",
		"/v1/users/" + uid + "/memories", "/v1/memories/" + mid, "/v1/memories/" + mid + "/history",
		"/v1/messages/" + gone + "/history", "/v1/context-snapshots/" + snap,
	} {
		a, b := src.must(200, src.do("GET", path, nil)), to.must(200, to.do("GET", path, nil))
		if string(a.body) != string(b.body) {
			t.Errorf("GET %s differs after import:\nsource %s\nimport %s", path, a.body, b.body)
		}
	}
	// The audit holds the same events in the same order; cursors are each
	// log's own.
	ids := func(s *server) string {
		var out []string
		for _, e := range s.must(200, s.do("GET", "/v1/users/"+uid+"/audit", nil)).items() {
			out = append(out, e["event_id"].(string)+"@"+e["recorded_at"].(string))
		}
		return strings.Join(out, " ")
	}
	if a, b := ids(src), ids(to); a != b || a == "" {
		t.Errorf("audit differs after import:\nsource %s\nimport %s", a, b)
	}
}
