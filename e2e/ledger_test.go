package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/internal/testserver"
	"github.com/arq-memory/arq/internal/testwait"
	"github.com/arq-memory/arq/logproof"
)

// checkpointOf reads a checkpoint answer and checks its signature with the
// tests' verifier key, as a client holding that key would.
func checkpointOf(t *testing.T, r testserver.Response) logproof.Checkpoint {
	t.Helper()
	c, err := logproof.OpenCheckpoint([]byte(r.Str("note")), testdb.LogVerifierKey)
	if err != nil {
		t.Fatalf("checkpoint: %v: %s", err, r.Body)
	}
	if c.Size != int64(r.Num("size")) || c.Root.String() != r.Str("root") {
		t.Fatalf("the checkpoint's fields disagree with its note: %s", r.Body)
	}
	return c
}

// latestCovering waits for a signed checkpoint of at least size events.
func latestCovering(t *testing.T, a as, size int) logproof.Checkpoint {
	t.Helper()
	var c logproof.Checkpoint
	testwait.Eventually(t, 30*time.Second, fmt.Sprintf("a checkpoint of %d events", size), func() (bool, error) {
		r := a.do("GET", "/v1/log/checkpoint", nil)
		if r.Status == 404 {
			return false, nil
		}
		c = checkpointOf(t, a.s.Must(200, r))
		return c.Size >= int64(size), nil
	})
	return c
}

// The server signs checkpoints as the log grows; every event is proved in
// them with the client's verifier alone, later checkpoints extend earlier
// ones, and another tenant's key gets 404 for an event's proof.
func TestLogProofsOverTheAPI(t *testing.T) {
	t.Parallel()
	s := startTenanted(t, nil)
	newTenant(s, "acme")
	newTenant(s, "other")
	key, _ := newKey(s, "acme", "", "read", "write")
	otherKey, _ := newKey(s, "other", "", "read")
	a, other := as{s, key}, as{s, otherKey}

	user := a.must(201, "POST", "/v1/users", map[string]any{"external_id": "ada", "name": "Ada"}).Str("id")
	sess := a.must(201, "POST", "/v1/users/"+user+"/sessions", map[string]any{}).Str("id")
	a.must(201, "POST", "/v1/sessions/"+sess+"/messages", map[string]any{"role": "user", "content": "first"})
	events := a.all("/v1/events")
	first := latestCovering(t, a, len(events))

	for i := range 3 {
		a.must(201, "POST", "/v1/sessions/"+sess+"/messages", map[string]any{"role": "user", "content": fmt.Sprintf("more %d", i)})
	}
	events = a.all("/v1/events")
	second := latestCovering(t, a, int(first.Size)+3)

	for _, e := range events {
		id, _ := e["event_id"].(string)
		r := a.must(200, "GET", "/v1/events/"+id+"/proof", nil)
		var p logproof.Inclusion
		if err := json.Unmarshal(r.Body, &p); err != nil {
			t.Fatal(err)
		}
		cp, _ := r.JSON["checkpoint"].(map[string]any)
		note, _ := cp["note"].(string)
		c, err := logproof.OpenCheckpoint([]byte(note), testdb.LogVerifierKey)
		if err != nil {
			t.Fatalf("the proof's checkpoint: %v", err)
		}
		if err := logproof.VerifyInclusion(c, p); err != nil {
			t.Fatalf("event %s: %v", id, err)
		}
		if e["position"] != nil && int64(e["position"].(float64)) != p.Position {
			t.Fatalf("event %s: position %v in the log, %d in its proof", id, e["position"], p.Position)
		}
		at := a.must(200, "GET", fmt.Sprintf("/v1/events/%s/proof?size=%d", id, second.Size), nil)
		var q logproof.Inclusion
		if err := json.Unmarshal(at.Body, &q); err != nil {
			t.Fatal(err)
		}
		if err := logproof.VerifyInclusion(second, q); err != nil {
			t.Fatalf("event %s in the second checkpoint: %v", id, err)
		}
		other.must(404, "GET", "/v1/events/"+id+"/proof", nil)
	}

	r := a.must(200, "GET", fmt.Sprintf("/v1/log/consistency?from=%d&to=%d", first.Size, second.Size), nil)
	var p logproof.Consistency
	if err := json.Unmarshal(r.Body, &p); err != nil {
		t.Fatal(err)
	}
	if err := logproof.VerifyConsistency(first, second, p); err != nil {
		t.Fatalf("consistency: %v", err)
	}
	older := checkpointOf(t, a.must(200, "GET", fmt.Sprintf("/v1/log/checkpoints/%d", first.Size), nil))
	if older.Root != first.Root {
		t.Fatal("the checkpoint of the first size changed")
	}
	// Any key reads the checkpoints: hashes, no tenant's data.
	other.must(200, "GET", "/v1/log/checkpoint", nil)
	a.must(404, "GET", "/v1/log/checkpoints/999999", nil)
	a.must(404, "GET", "/v1/events/01ARZ3NDEKTSV4RRFFQ69G5FAV/proof", nil)
	a.must(422, "GET", "/v1/log/consistency?from=x", nil)
	a.must(422, "GET", fmt.Sprintf("/v1/log/consistency?from=%d&to=%d", second.Size, first.Size), nil)
	if r := a.do("GET", fmt.Sprintf("/v1/log/consistency?from=1&to=%d", second.Size+1000), nil); r.Status != 409 {
		t.Fatalf("a consistency proof past the tree: %d %s", r.Status, r.Body)
	}
}

// The running server checks the log against its latest signed checkpoint:
// an event edited and re-hashed with the database's own function after
// it was signed turns arq_log_verified to 0 and shows in /readyz, which
// stays ready, and reads go on.
func TestServerNoticesATamperedLog(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, map[string]string{"ARQ_LOG_VERIFY_EVERY": "200ms", "ARQ_LOG_VERIFY_FULL_EVERY": "200ms"})
	a := as{s, ""}
	user := a.must(201, "POST", "/v1/users", map[string]any{"external_id": "ada", "name": "Ada"}).Str("id")
	latestCovering(t, a, len(a.all("/v1/events")))
	testwait.Eventually(t, 30*time.Second, "the server's check of the signed log", func() (bool, error) {
		r := a.must(200, "GET", "/readyz", nil)
		log, _ := r.JSON["checks"].(map[string]any)["log"].(map[string]any)
		return log != nil && log["verified"] != nil, nil
	})
	if !strings.Contains(string(a.must(200, "GET", "/metrics", nil).Body), "\narq_log_verified 1\n") {
		t.Fatal("arq_log_verified is not 1 on an intact log")
	}

	pool := testdb.OwnerPool(t, s.URL) // the attacker: the database's owner
	for _, sql := range []string{`ALTER TABLE events DISABLE TRIGGER USER`,
		`UPDATE events SET data = data || '{"tampered": true}',
			hash = arq_event_hash(NULL, event_id, stream_id, stream_type, version, event_type, schema_version, recorded_at,
				data || '{"tampered": true}', metadata)
		WHERE stream_id = 'user-' || $1 AND version = 1`,
		`ALTER TABLE events ENABLE TRIGGER USER`} {
		var args []any
		if strings.Contains(sql, "$1") {
			args = []any{user}
		}
		if _, err := pool.Exec(context.Background(), sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	testwait.Eventually(t, 30*time.Second, "the server to notice the changed event", func() (bool, error) {
		return strings.Contains(string(a.must(200, "GET", "/metrics", nil).Body), "\narq_log_verified 0\n"), nil
	})
	r := a.must(200, "GET", "/readyz", nil)
	log, _ := r.JSON["checks"].(map[string]any)["log"].(map[string]any)
	if log == nil || log["differs_from_checkpoint"] == nil || log["problem"] == "" {
		t.Fatalf("readyz of a tampered log: %s", r.Body)
	}
	a.must(200, "GET", "/v1/users/"+user, nil)
}
