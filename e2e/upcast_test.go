package e2e

import (
	"context"
	"github.com/arq-memory/arq/internal/testserver"
	"strings"
	"testing"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/internal/testdb"
)

// A memory.stored event written in schema version 1, before the event
// changed shape, reads as version 2 through the projections, history,
// time travel and replay; new ones are written as version 2.
func TestVersion1EventReadsAsVersion2(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "o", "name": "Old"})).Str("id")
	mid := domain.NewID().String()
	store := eventstore.New(testdb.Pool(t, s.URL))
	res, err := store.Append(context.Background(), eventstore.Stream{ID: "memory-" + mid, Type: "memory"}, eventstore.NoStream(), eventstore.Event{
		Type: domain.MemoryStored, SchemaVersion: 1,
		Data: []byte(`{"memory_id":"` + mid + `","user_id":"` + uid + `","type":"episodic","content":"from an old log","importance":0.4,
			"tags":["old"],"metadata":{},"source_session_id":"01M89VB9XHPWV2SCAB0P286JT9","tokens":4}`),
		Metadata: eventstore.Metadata{Actor: "importer", Tenant: "default"},
	})
	if err != nil {
		t.Fatal(err)
	}
	const src = "01M89VB9XHPWV2SCAB0P286JT9"
	got := s.Must(200, s.Do("GET", "/v1/memories/"+mid, nil, "X-Arq-Min-Position", res.Last().Cursor.String()))
	if got.Str("source_session_id") != src || got.Str("content") != "from an old log" {
		t.Fatalf("projected: %s", got.Body)
	}
	h := s.Must(200, s.Do("GET", "/v1/memories/"+mid+"/history", nil)).Items()
	ch, _ := h[0]["changes"].(map[string]any)
	if sc, _ := ch["source_session_id"].(map[string]any); sc["after"] != src {
		t.Fatalf("history: %v", h)
	}
	if r := s.Must(200, s.Do("GET", "/v1/memories/"+mid+"?version=1", nil)); r.Str("source_session_id") != src {
		t.Fatalf("time travel: %s", r.Body)
	}
	if code, out, _ := runCLI(t, s.URL, "replay", "memory-"+mid, "--version", "1"); code != 0 || !strings.Contains(out, `"source_session_id": "`+src+`"`) {
		t.Fatalf("replay: %d %s", code, out)
	}

	// An update of the old memory, and a new memory, are written today.
	s.Must(200, s.Do("PATCH", "/v1/memories/"+mid, map[string]any{"importance": 0.9}))
	// (A new memory's source must be a session of the user's.)
	own := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	fresh := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "new", "source_session_id": own})).Str("id")
	if code, out, _ := runCLI(t, s.URL, "events", "--stream", "memory-"+fresh); code != 0 || !strings.Contains(out, `"schema_version":2`) || !strings.Contains(out, `"source":{"session_id":"`+own+`"}`) {
		t.Fatalf("new memory event: %d %s", code, out)
	}
	if r := s.Must(200, s.Do("GET", "/v1/memories/"+fresh, nil)); r.Str("source_session_id") != own {
		t.Fatalf("new memory: %s", r.Body)
	}
}
