package owners_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/owners"
)

// The owner of every kind of entity, and of the streams of the log, is
// read from the first event of its stream and its user's tenant; an id
// that names nothing, or a malformed one, is not found.
func TestOwnersFromTheLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := eventstore.New(testdb.Pool(t, testdb.Migrated(t)))
	user, session, message, memory, snapshot := domain.NewID().String(), domain.NewID().String(), domain.NewID().String(), domain.NewID().String(), domain.NewID().String()
	add := func(streamType, id, typ string, data any) {
		t.Helper()
		raw, err := json.Marshal(data)
		if err != nil {
			t.Fatal(err)
		}
		_, err = store.Append(ctx, eventstore.Stream{ID: domain.StreamID(streamType, id), Type: streamType}, eventstore.Any(),
			eventstore.Event{Type: typ, Data: raw, Metadata: eventstore.Metadata{Tenant: "acme"}})
		if err != nil {
			t.Fatal(err)
		}
	}
	add(domain.StreamUser, user, domain.UserRegistered, domain.UserRegisteredData{UserID: user, Tenant: "acme", Name: "Ada"})
	add(domain.StreamSession, session, domain.SessionStarted, domain.SessionStartedData{SessionID: session, UserID: user})
	add(domain.StreamMessageLog, session, domain.MessageAppended, domain.MessageAppendedData{MessageID: message, SessionID: session, UserID: user, Role: "user", Content: "hi"})
	add(domain.StreamMemory, memory, domain.MemoryStored, map[string]any{"memory_id": memory, "user_id": user, "session_id": session, "content": "x"})
	add(domain.StreamSnapshot, snapshot, domain.ContextSnapshotRecorded, map[string]any{"snapshot_id": snapshot, "session_id": session, "user_id": user})

	r := owners.New(store)
	inSession := domain.Owner{Tenant: "acme", UserID: user, SessionID: session}
	for _, c := range []struct {
		kind, id string
		want     domain.Owner
	}{
		{domain.StreamUser, user, domain.Owner{Tenant: "acme", UserID: user}},
		{domain.StreamSession, session, inSession},
		{domain.StreamMessage, message, inSession},
		{domain.StreamMemory, memory, domain.Owner{Tenant: "acme", UserID: user}},
		{domain.StreamSnapshot, snapshot, inSession},
	} {
		for range 2 { // found, then remembered
			got, err := r.Of(ctx, c.kind, c.id)
			if err != nil || got != c.want {
				t.Fatalf("owner of %s %s: %+v, %v; want %+v", c.kind, c.id, got, err, c.want)
			}
		}
	}
	for _, st := range []string{domain.StreamID(domain.StreamMessageLog, session), domain.StreamID(domain.StreamSummary, session), domain.StreamID(domain.StreamSession, session)} {
		if got, err := r.OfStream(ctx, st); err != nil || got != inSession {
			t.Fatalf("owner of stream %s: %+v, %v", st, got, err)
		}
	}
	for _, c := range []struct{ kind, id string }{
		{domain.StreamUser, domain.NewID().String()}, {domain.StreamMessage, domain.NewID().String()},
		{domain.StreamSession, "not-an-id"}, {"nonsense", user},
	} {
		if _, err := r.Of(ctx, c.kind, c.id); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("owner of %s %q: %v, want not found", c.kind, c.id, err)
		}
	}
	if _, err := r.OfStream(ctx, "nonsense"); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("owner of a stream that is none: %v, want not found", err)
	}
}
