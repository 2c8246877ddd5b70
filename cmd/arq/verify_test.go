package main

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/internal/testserver"
)

// An intact log verifies clean; editing one stored event by SQL makes
// `arq verify` and the stream's verify endpoint name it, and removing one
// shows as missing versions.
func TestVerifyNamesTamperedEvents(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "v", "name": "V"})).Str("id")
	mid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "first"})).Str("id")
	for _, c := range []string{"second", "third", "fourth"} {
		s.Must(200, s.Do("PATCH", "/v1/memories/"+mid, map[string]any{"content": c}))
	}
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"messages": []any{
		map[string]any{"role": "user", "content": "a"}, map[string]any{"role": "assistant", "content": "b"}}}))

	code, out, errOut := runCLI(t, s.URL, "verify")
	if code != 0 || !strings.Contains(out, " 0 broken links") {
		t.Fatalf("intact log: exit %d\n%s%s", code, out, errOut)
	}
	stream := "memory-" + mid
	if r := s.Must(200, s.Do("GET", "/v1/streams/"+stream+"/verify", nil)); r.JSON["intact"] != true || r.Num("events") != 4 {
		t.Fatalf("intact stream: %s", r.Body)
	}
	s.Must(404, s.Do("GET", "/v1/streams/memory-nothing/verify", nil))
	s.Must(404, s.Do("GET", "/v1/streams//verify", nil)) // not the whole log

	// An operator's change is let through and recorded, and still breaks
	// the chain.
	var edited string
	testdb.AsOperator(t, s.URL, "test: forge", func(ctx context.Context, tx pgx.Tx) error {
		return tx.QueryRow(ctx, `UPDATE events SET data = jsonb_set(data, '{content}', '"forged"')
			WHERE stream_id = $1 AND version = 2 RETURNING event_id`, stream).Scan(&edited)
	})
	code, out, _ = runCLI(t, s.URL, "verify", "--quiet")
	if code != 1 || !strings.Contains(out, "BROKEN "+stream+" version 2 (event "+edited) ||
		!strings.Contains(out, "first broken link: "+stream+" version 2") || !strings.Contains(out, " 1 broken links") {
		t.Fatalf("after editing version 2: exit %d\n%s", code, out)
	}
	r := s.Must(200, s.Do("GET", "/v1/streams/"+stream+"/verify", nil))
	first, _ := r.JSON["first_break"].(map[string]any)
	if r.JSON["intact"] != false || first["event_id"] != edited {
		t.Fatalf("stream verify after the edit: %s", r.Body)
	}

	// Removing the message log's first event leaves version 2 without its
	// predecessor.
	testdb.AsOperator(t, s.URL, "test: remove", func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM events WHERE stream_id = $1 AND version = 1`, "message_log-"+sid)
		return err
	})
	code, out, _ = runCLI(t, s.URL, "verify", "--quiet", "--stream", "message_log-"+sid)
	if code != 1 || !strings.Contains(out, "versions 1 to 1 are missing") {
		t.Fatalf("after removing an event: exit %d\n%s", code, out)
	}
	// A stream that does not exist is not found, as over HTTP.
	if code, _, errOut := runCLI(t, s.URL, "verify", "--quiet", "--stream", "session-nosuch"); code != 1 || !strings.Contains(errOut, "not found") {
		t.Fatalf("verify of no stream: exit %d, %s", code, errOut)
	}
}
