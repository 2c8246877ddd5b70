package history_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/history"
	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/internal/testwait"
	"github.com/arq-memory/arq/vault"
)

// sealedBuilder appends domain events to a log whose people's data a
// vault seals.
type sealedBuilder struct {
	t     *testing.T
	store *eventstore.Store
	last  eventstore.Cursor
}

func (b *sealedBuilder) add(streamType, id, eventType string, data any) string {
	b.t.Helper()
	raw, err := json.Marshal(data)
	if err != nil {
		b.t.Fatal(err)
	}
	eventID := ulid.Make().String()
	res, err := b.store.Append(context.Background(), eventstore.Stream{ID: domain.StreamID(streamType, id), Type: streamType}, eventstore.Any(),
		eventstore.Event{ID: eventID, Type: eventType, Data: raw, Metadata: eventstore.Metadata{Tenant: "t", Actor: "tester"}})
	if err != nil {
		b.t.Fatalf("append %s: %v", eventType, err)
	}
	b.last = res.Last().Cursor
	return eventID
}

// noMarker fails the test if v, as JSON, holds marker.
func noMarker(t *testing.T, what string, v any, marker string) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), marker) {
		t.Errorf("%s holds erased text: %s", what, b)
	}
}

// What was erased is not served as it was at any version or time
// (domain.ErrErased), for an erased entity and for every entity of an
// erased user; what was not erased still is. Histories and audits still
// list every event, the erased ones marked and without their data, and a
// snapshot lists its erased items without their text.
func TestErasedEntitiesAreNotServedAsTheyWere(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t, testdb.New(t))
	m, err := vault.ParseMaster(vault.NewMasterKey())
	if err != nil {
		t.Fatal(err)
	}
	v := vault.New(pool, vault.NewKeyring(m), true)
	store := eventstore.New(pool, eventstore.WithSealer(v))
	r := history.New(store)
	b := &sealedBuilder{t: t, store: store}
	const marker = "zqxerased"
	id := func() string { return ulid.Make().String() }
	alice, bob, sa, sb := id(), id(), id(), id()
	gone, kept, bobMsg, goneMem, keptMem := id(), id(), id(), id(), id()

	for _, u := range []string{alice, bob} {
		b.add(domain.StreamUser, u, domain.UserRegistered, domain.UserRegisteredData{UserID: u, Tenant: "t", ExternalID: "x" + u,
			Name: "Name " + marker, Email: marker + "@example.com", Metadata: map[string]any{"k": marker}})
	}
	b.add(domain.StreamSession, sa, domain.SessionStarted, domain.SessionStartedData{SessionID: sa, UserID: alice, Title: "kept title", TokenHash: "ha"})
	b.add(domain.StreamSession, sb, domain.SessionStarted, domain.SessionStartedData{SessionID: sb, UserID: bob, Title: "title " + marker, TokenHash: "hb"})
	b.add(domain.StreamMessageLog, sa, domain.MessageAppended, domain.MessageAppendedData{MessageID: gone, SessionID: sa, UserID: alice,
		Role: "user", Content: "said " + marker, Tokens: 3})
	b.add(domain.StreamMessageLog, sa, domain.MessageAppended, domain.MessageAppendedData{MessageID: kept, SessionID: sa, UserID: alice,
		Role: "assistant", Content: "kept reply", Tokens: 3})
	b.add(domain.StreamMessage, gone, domain.MessageEdited, domain.MessageEditedData{Content: "edited " + marker, Tokens: 4})
	b.add(domain.StreamMessageLog, sb, domain.MessageAppended, domain.MessageAppendedData{MessageID: bobMsg, SessionID: sb, UserID: bob,
		Role: "user", Content: "bob says " + marker, Tokens: 3})
	b.add(domain.StreamMemory, goneMem, domain.MemoryStored, domain.MemoryStoredData{MemoryID: goneMem, UserID: alice, Type: "semantic",
		Content: "memory " + marker, Tags: []string{marker}, Tokens: 2})
	b.add(domain.StreamMemory, keptMem, domain.MemoryStored, domain.MemoryStoredData{MemoryID: keptMem, UserID: alice, Type: "semantic",
		Content: "kept memory", Tokens: 2})
	summary := b.add(domain.StreamSummary, sa, domain.SessionSummarized, domain.SessionSummarizedData{SessionID: sa, UserID: alice,
		Content: "summary " + marker, Tokens: 5, FromSeq: 1, ToSeq: 1})
	before := b.last
	beforeTime := time.Now()

	if _, err := v.Erase(ctx, []string{bob}, []string{domain.KeyID(domain.UnitMessage, gone), domain.KeyID(domain.UnitMemory, goneMem),
		domain.KeyID(domain.UnitSummary, summary)}); err != nil {
		t.Fatal(err)
	}
	b.add(domain.StreamUser, bob, domain.UserErased, domain.UserErasedData{Reason: domain.ErasedOnRequest})
	b.add(domain.StreamMessage, gone, domain.MessageErased, domain.MessageErasedData{SessionID: sa, UserID: alice, Seq: 1,
		Reason: domain.ErasedOnRequest, Summaries: []string{summary}})
	b.add(domain.StreamMemory, goneMem, domain.MemoryErased, domain.MemoryErasedData{UserID: alice, Reason: domain.ErasedOnRequest})

	for _, c := range []struct {
		kind    domain.Kind
		id      string
		version int
	}{
		{domain.KindMessage, gone, 1}, {domain.KindMessage, gone, 2}, {domain.KindMemory, goneMem, 1},
		{domain.KindUser, bob, 1}, {domain.KindSession, sb, 1}, {domain.KindMessage, bobMsg, 1},
	} {
		for _, asOf := range []*time.Time{nil, &beforeTime} {
			version := c.version
			if asOf != nil {
				version = 0
			}
			got, err := r.At(ctx, c.kind, c.id, version, asOf)
			if !errors.Is(err, domain.ErrErased) {
				t.Errorf("%s %s at version %d, as of %v: %v, %v; want ErrErased", c.kind, c.id, version, asOf, got, err)
			}
		}
	}
	for _, c := range []struct {
		kind domain.Kind
		id   string
		want string
	}{{domain.KindMessage, kept, "kept reply"}, {domain.KindMemory, keptMem, "kept memory"}} {
		got, err := r.At(ctx, c.kind, c.id, 1, nil)
		if err != nil || got["content"] != c.want {
			t.Errorf("%s %s at version 1: %v, %v; want content %q", c.kind, c.id, got, err, c.want)
		}
		if got, err := r.At(ctx, c.kind, c.id, 0, &beforeTime); err != nil || got["content"] != c.want {
			t.Errorf("%s %s as of before the erasures: %v, %v; want content %q", c.kind, c.id, got, err, c.want)
		}
	}
	if got, err := r.At(ctx, domain.KindSession, sa, 1, nil); err != nil || got["title"] != "kept title" {
		t.Errorf("alice's session: %v, %v", got, err)
	}

	// Folded at a place before the erasures, for a window as it was.
	msgs, err := r.MessagesAt(ctx, []string{gone, kept}, before)
	if err != nil || len(msgs) != 1 || msgs[kept] == nil {
		t.Errorf("messages at a place before the erasure: %v, %v; want only %s", msgs, err, kept)
	}
	if m, err := r.MessageAt(ctx, gone, before); err != nil || m != nil {
		t.Errorf("erased message at a place before its erasure: %v, %v; want none", m, err)
	}
	mems, err := r.MemoriesAt(ctx, []string{goneMem, keptMem}, before)
	if err != nil || len(mems) != 1 || mems[keptMem] == nil {
		t.Errorf("memories at a place before the erasure: %v, %v; want only %s", mems, err, keptMem)
	}

	// Histories list every event, the erased marked, without their data.
	for _, c := range []struct {
		kind   domain.Kind
		id     string
		erased []bool
	}{
		{domain.KindMessage, gone, []bool{true, true, false}},
		{domain.KindUser, bob, []bool{true, false}},
		{domain.KindSession, sb, []bool{true}},
	} {
		h, err := r.History(ctx, c.kind, c.id)
		if err != nil || len(h) != len(c.erased) {
			t.Errorf("history of %s %s: %+v, %v; want %d entries", c.kind, c.id, h, err, len(c.erased))
			continue
		}
		for i, e := range h {
			if e.Erased != c.erased[i] || e.Actor != "tester" || e.Version != i+1 {
				t.Errorf("history of %s %s, entry %d: %+v; want erased %v, by tester, at version %d", c.kind, c.id, i, e, c.erased[i], i+1)
			}
		}
		noMarker(t, "history of "+c.id, h, marker)
	}

	// The audit lists every event of bob's, the erased marked. (It reads
	// the log in commit-safe order, which another test's open
	// transaction may hold back.)
	var audit []eventstore.Recorded
	testwait.Eventually(t, 10*time.Second, "bob's erasure audited", func() (bool, error) {
		audit, err = r.Audit(ctx, bob, eventstore.Filter{}, eventstore.Start, 100)
		return len(audit) == 4, err
	})
	var types []string
	for _, e := range audit {
		types = append(types, e.Type)
		if want := e.Type != domain.UserErased; e.Erased != want {
			t.Errorf("audit of bob: %s erased %v, want %v", e.Type, e.Erased, want)
		}
	}
	if want := []string{domain.UserRegistered, domain.SessionStarted, domain.MessageAppended, domain.UserErased}; strings.Join(types, " ") != strings.Join(want, " ") {
		t.Errorf("audit of bob: %v, want %v", types, want)
	}
	noMarker(t, "audit of bob", audit, marker)
	if b, _ := json.Marshal(audit[0]); !strings.Contains(string(b), `"erased":true`) {
		t.Errorf("an audited erased event does not say so: %s", b)
	}

	// A snapshot's erased items are listed, marked, without their text.
	items, err := r.Items(ctx, sa, []domain.SnapshotItem{
		{Kind: domain.ItemSummary, ID: sa, Version: 1}, {Kind: domain.ItemMessage, ID: gone, Version: 2, Seq: 1},
		{Kind: domain.ItemMessage, ID: kept, Version: 1, Seq: 2}, {Kind: domain.ItemMemory, ID: goneMem, Version: 1},
	})
	if err != nil || len(items) != 4 {
		t.Fatalf("items: %+v, %v", items, err)
	}
	for i, want := range []bool{true, true, false, true} {
		if items[i].Erased != want {
			t.Errorf("item %d (%s %s): erased %v, want %v", i, items[i].Kind, items[i].ID, items[i].Erased, want)
		}
	}
	if items[2].Content != "kept reply" {
		t.Errorf("the message not erased: %+v", items[2])
	}
	noMarker(t, "the snapshot's items", items, marker)
}
