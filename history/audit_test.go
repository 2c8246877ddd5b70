package history_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/history"
	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/internal/testwait"
)

// logBuilder appends domain events to a real log, one stream at a time.
type logBuilder struct {
	t     *testing.T
	store *eventstore.Store
}

func (b logBuilder) add(streamType, id, eventType string, data map[string]any) {
	b.t.Helper()
	raw, err := json.Marshal(data)
	if err != nil {
		b.t.Fatal(err)
	}
	s := eventstore.Stream{ID: domain.StreamID(streamType, id), Type: streamType}
	if _, err := b.store.Append(context.Background(), s, eventstore.Any(), eventstore.Event{Type: eventType, Data: raw}); err != nil {
		b.t.Fatal(err)
	}
}

// ids gives the event types and streams of events, to compare them.
func ids(events []eventstore.Recorded) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.Type + "@" + e.StreamID
	}
	return out
}

// A user's audit holds the events of their own stream, sessions and
// messages and their own claims of a shared external id, in log order, and
// no one else's; filters narrow it, pages follow each other, and a user
// without events is not found.
func TestAudit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := eventstore.New(testdb.Pool(t, testdb.New(t)))
	r := history.New(store)
	b := logBuilder{t, store}
	const (
		alice, bob, carol, dave = "01J0000000000000000000000A", "01J0000000000000000000000B", "01J0000000000000000000000C", "01J0000000000000000000000D"
		session, message        = "01J00000000000000000000005", "01J0000000000000000000000M"
		claim                   = "t:shared"
	)
	b.add(domain.StreamUser, alice, domain.UserRegistered, map[string]any{"user_id": alice, "tenant": "t", "external_id": "shared"})
	b.add(domain.StreamExternalID, claim, domain.ExternalIDClaimed, map[string]any{"user_id": alice, "tenant": "t", "external_id": "shared"})
	b.add(domain.StreamSession, session, domain.SessionStarted, map[string]any{"session_id": session, "user_id": alice})
	b.add(domain.StreamMessageLog, session, domain.MessageAppended, map[string]any{"message_id": message, "session_id": session, "user_id": alice})
	b.add(domain.StreamMessage, message, domain.MessageEdited, map[string]any{"content": "edited"}) // names no user: found by the message
	b.add(domain.StreamExternalID, claim, domain.ExternalIDReleased, map[string]any{"user_id": alice, "tenant": "t", "external_id": "shared"})
	b.add(domain.StreamUser, bob, domain.UserRegistered, map[string]any{"user_id": bob, "tenant": "t", "external_id": "shared"})
	b.add(domain.StreamExternalID, claim, domain.ExternalIDClaimed, map[string]any{"user_id": bob, "tenant": "t", "external_id": "shared"})
	b.add(domain.StreamMemory, "01J0000000000000000000000Y", domain.MemoryStored, map[string]any{"user_id": carol})
	b.add(domain.StreamUser, dave, domain.UserRegistered, map[string]any{"user_id": dave, "tenant": "t", "external_id": "d"})

	want := []string{
		domain.UserRegistered + "@user-" + alice,
		domain.ExternalIDClaimed + "@user_external_id-" + claim,
		domain.SessionStarted + "@session-" + session,
		domain.MessageAppended + "@message_log-" + session,
		domain.MessageEdited + "@message-" + message,
		domain.ExternalIDReleased + "@user_external_id-" + claim,
	}
	// Another test's open transaction may hold back what the log shows.
	testwait.Eventually(t, 10*time.Second, "dave's registration readable", func() (bool, error) {
		got, err := r.Audit(ctx, dave, eventstore.Filter{}, eventstore.Start, 100)
		return len(got) == 1, err
	})
	all, err := r.Audit(ctx, alice, eventstore.Filter{}, eventstore.Start, 100)
	if err != nil || !slices.Equal(ids(all), want) {
		t.Fatalf("alice's audit = %v, %v\nwant %v", ids(all), err, want)
	}

	// Pages of two follow each other to the same events.
	var paged []eventstore.Recorded
	for after := eventstore.Start; ; {
		page, err := r.Audit(ctx, alice, eventstore.Filter{}, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, page...)
		if len(page) < 2 {
			break
		}
		after = page[len(page)-1].Cursor()
	}
	if !slices.Equal(ids(paged), want) {
		t.Errorf("alice's audit in pages of 2 = %v\nwant %v", ids(paged), want)
	}

	// A filter narrows it; one that leaves nothing leaves an empty audit.
	got, err := r.Audit(ctx, alice, eventstore.Filter{EventTypes: []string{domain.ExternalIDClaimed, domain.ExternalIDReleased}}, eventstore.Start, 100)
	if err != nil || !slices.Equal(ids(got), []string{want[1], want[5]}) {
		t.Errorf("alice's claims = %v, %v", ids(got), err)
	}
	got, err = r.Audit(ctx, alice, eventstore.Filter{StreamType: domain.StreamMemory}, eventstore.Start, 100)
	if err != nil || len(got) != 0 {
		t.Errorf("alice's memories = %v, %v; want none", ids(got), err)
	}

	// Bob has his own claim of the shared id, not alice's.
	got, err = r.Audit(ctx, bob, eventstore.Filter{}, eventstore.Start, 100)
	if err != nil || !slices.Equal(ids(got), []string{domain.UserRegistered + "@user-" + bob, domain.ExternalIDClaimed + "@user_external_id-" + claim}) {
		t.Errorf("bob's audit = %v, %v", ids(got), err)
	}
	if len(got) == 2 && got[1].Position == all[1].Position {
		t.Error("bob's audit holds alice's claim")
	}

	// No events, no user: with a filter or without.
	for _, f := range []eventstore.Filter{{}, {EventTypes: []string{domain.SessionClosed}}} {
		if got, err := r.Audit(ctx, "01J0000000000000000000000Z", f, eventstore.Start, 100); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("audit of no user (filter %+v) = %v, %v; want ErrNotFound", f, ids(got), err)
		}
	}
}
