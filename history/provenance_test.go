package history_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/history"
	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/vault"
)

// A memory's provenance lists each event an extraction decided, with the
// messages it read as they were at the version read: a message edited
// since shows its text as read, one redacted since is marked so and
// still shows it, one erased since is marked erased without its text.
// A memory a client stored has none; an erased memory's derivations stay,
// without the model's reason.
func TestProvenanceShowsTheMessagesAsTheyWereRead(t *testing.T) {
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
	id := func() string { return ulid.Make().String() }
	alice, sa := id(), id()
	edited, redacted, erasedMsg := id(), id(), id()
	derived, replacing, client, erasedMem := id(), id(), id(), id()

	b.add(domain.StreamUser, alice, domain.UserRegistered, domain.UserRegisteredData{UserID: alice, Tenant: "t", ExternalID: "a", Name: "A"})
	b.add(domain.StreamSession, sa, domain.SessionStarted, domain.SessionStartedData{SessionID: sa, UserID: alice, TokenHash: "h"})
	for _, msg := range []struct{ id, content string }{{edited, "I live in Lisbon"}, {redacted, "I like tea"}, {erasedMsg, "my secret"}} {
		b.add(domain.StreamMessageLog, sa, domain.MessageAppended, domain.MessageAppendedData{MessageID: msg.id, SessionID: sa, UserID: alice,
			Role: "user", Content: msg.content, Tokens: 3})
	}
	prov := func(run string, msgs ...domain.SourceMessage) *domain.Provenance {
		return &domain.Provenance{RunID: run, Extractor: "chat", Model: "gpt", PromptVersion: "p1", SessionID: sa, Messages: msgs}
	}
	src := func(id string, seq, version int) domain.SourceMessage {
		return domain.SourceMessage{ID: id, Seq: seq, Version: version}
	}
	b.add(domain.StreamMemory, client, domain.MemoryStored, domain.MemoryStoredData{MemoryID: client, UserID: alice, Type: "semantic", Content: "client's", Tokens: 1})
	b.add(domain.StreamMemory, derived, domain.MemoryStored, domain.MemoryStoredData{MemoryID: derived, UserID: alice, Type: "semantic",
		Content: "lives in Lisbon", Tokens: 3, Provenance: prov("r1", src(edited, 1, 1), src(redacted, 2, 1), src(erasedMsg, 3, 1)), Reason: "said so"})
	b.add(domain.StreamMessage, edited, domain.MessageEdited, domain.MessageEditedData{Content: "I live in Porto", Tokens: 4})
	porto := "lives in Porto"
	b.add(domain.StreamMemory, derived, domain.MemoryUpdated, domain.MemoryUpdatedData{Content: &porto, Provenance: prov("r2", src(edited, 1, 2)), Reason: "moved"})
	b.add(domain.StreamMemory, replacing, domain.MemoryStored, domain.MemoryStoredData{MemoryID: replacing, UserID: alice, Type: "semantic",
		Content: "lives in Faro", Tokens: 3, Provenance: prov("r3", src(edited, 1, 2)), Reason: "moved again", Supersedes: derived})
	b.add(domain.StreamMemory, derived, domain.MemorySuperseded, domain.MemorySupersededData{SupersededBy: replacing, ValidUntil: time.Now().UTC(),
		Provenance: prov("r3", src(edited, 1, 2)), Reason: "moved again"})
	b.add(domain.StreamMemory, erasedMem, domain.MemoryStored, domain.MemoryStoredData{MemoryID: erasedMem, UserID: alice, Type: "semantic",
		Content: "erased", Tokens: 1, Provenance: prov("r1", src(edited, 1, 1)), Reason: "private reason"})
	b.add(domain.StreamMessage, redacted, domain.MessageRedacted, domain.MessageRedactedData{})
	if _, err := v.Erase(ctx, nil, []string{domain.KeyID(domain.UnitMessage, erasedMsg), domain.KeyID(domain.UnitMemory, erasedMem)}); err != nil {
		t.Fatal(err)
	}
	b.add(domain.StreamMessage, erasedMsg, domain.MessageErased, domain.MessageErasedData{SessionID: sa, UserID: alice, Seq: 3, Reason: domain.ErasedOnRequest})
	b.add(domain.StreamMemory, erasedMem, domain.MemoryErased, domain.MemoryErasedData{UserID: alice, Reason: domain.ErasedOnRequest})

	got, err := r.Provenance(ctx, derived)
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		version            int
		action, run        string
		reason, by, before string
		sources            []history.Source
	}
	wants := []want{
		{1, "add", "r1", "said so", "", "", []history.Source{
			{ID: edited, SessionID: sa, Seq: 1, Version: 1, Role: "user", Content: "I live in Lisbon"},
			{ID: redacted, SessionID: sa, Seq: 2, Version: 1, Role: "user", Content: "I like tea", Redacted: true},
			{ID: erasedMsg, SessionID: sa, Seq: 3, Version: 1, Erased: true}}},
		{2, "update", "r2", "moved", "", "", []history.Source{{ID: edited, SessionID: sa, Seq: 1, Version: 2, Role: "user", Content: "I live in Porto"}}},
		{3, "superseded", "r3", "moved again", replacing, "", []history.Source{{ID: edited, SessionID: sa, Seq: 1, Version: 2, Role: "user", Content: "I live in Porto"}}},
	}
	if len(got) != len(wants) {
		t.Fatalf("provenance of the derived memory: %+v; want %d derivations", got, len(wants))
	}
	for i, w := range wants {
		g := got[i]
		if g.Version != w.version || g.Action != w.action || g.RunID != w.run || g.Reason != w.reason || g.SupersededBy != w.by ||
			g.Extractor != "chat" || g.Model != "gpt" || g.PromptVersion != "p1" || g.SessionID != sa || g.Actor != "tester" || g.Erased {
			t.Errorf("derivation %d: %+v; want %+v", i, g, w)
		}
		if len(g.Messages) != len(w.sources) {
			t.Errorf("derivation %d read %+v; want %+v", i, g.Messages, w.sources)
			continue
		}
		for j, s := range w.sources {
			if g.Messages[j] != s {
				t.Errorf("derivation %d, message %d: %+v; want %+v", i, j, g.Messages[j], s)
			}
		}
	}

	if got, err := r.Provenance(ctx, replacing); err != nil || len(got) != 1 || got[0].Action != "supersede" || got[0].Supersedes != derived {
		t.Errorf("provenance of the replacing memory: %+v, %v; want one supersede of %s", got, err, derived)
	}
	if got, err := r.Provenance(ctx, client); err != nil || got == nil || len(got) != 0 {
		t.Errorf("provenance of a client's memory: %#v, %v; want an empty list", got, err)
	}
	if got, err := r.Provenance(ctx, erasedMem); err != nil || len(got) != 1 || !got[0].Erased || got[0].Reason != "" ||
		got[0].Messages[0].Content != "I live in Lisbon" {
		t.Errorf("provenance of an erased memory: %+v, %v; want its derivation, erased, without the reason, its message as read", got, err)
	}
	if _, err := r.Provenance(ctx, id()); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("provenance of no memory: %v; want ErrNotFound", err)
	}
}
