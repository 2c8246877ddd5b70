package commands_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/arq-memory/arq/commands"
	"github.com/arq-memory/arq/domain"
)

// derivedFixture is a user's conversation and memories: some an
// extraction stored from its messages, one a client stored and an
// extraction later updated.
type derivedFixture struct {
	user, session, first, second string
	// fromFirst, fromSecond and fromBoth were stored from those
	// messages; deleted was stored from the first and deleted since;
	// client is a client's, updated from the first; clientFirst is a
	// client's naming the first as its source.
	fromFirst, fromSecond, fromBoth, deleted, client, clientFirst string
}

func newDerived(t *testing.T, e *erasing) derivedFixture {
	t.Helper()
	ctx := context.Background()
	var f derivedFixture
	f.user = must(t)(e.svc.RegisterUser(ctx, testMeta, domain.RegisterUser{ExternalID: "ext", Name: "A"})).ID
	f.session = must(t)(e.svc.StartSession(ctx, testMeta, f.user, domain.StartSession{})).ID
	msgs := must(t)(e.svc.AppendMessages(ctx, testMeta, f.session, []domain.NewMessage{
		{Role: "user", Content: "I moved to Lisbon"}, {Role: "user", Content: "I like tea"}}))
	f.first, f.second = msgs.Messages[0].ID, msgs.Messages[1].ID
	prov := func(ids ...string) *domain.Provenance {
		p := &domain.Provenance{RunID: "run", Extractor: "chat", PromptVersion: "p1", SessionID: f.session}
		for i, id := range ids {
			p.Messages = append(p.Messages, domain.SourceMessage{ID: id, Seq: i + 1, Version: 1})
		}
		return p
	}
	store := func(content string, p *domain.Provenance) string {
		return must(t)(e.svc.StoreMemory(ctx, testMeta, f.user, domain.StoreMemory{Type: "semantic", Content: content, Provenance: p, Reason: "said so"})).ID
	}
	f.fromFirst = store("lives in Lisbon", prov(f.first))
	f.fromSecond = store("likes tea", prov(f.second))
	f.fromBoth = store("a tea drinker in Lisbon", prov(f.first, f.second))
	f.deleted = store("moved", prov(f.first))
	must(t)(e.svc.DeleteMemory(ctx, testMeta, f.deleted, nil))
	f.client = store("lives in Europe", nil)
	content := "lives in Portugal"
	must(t)(e.svc.UpdateMemory(ctx, testMeta, f.client, nil, domain.UpdateMemory{Content: &content, Provenance: prov(f.first), Reason: "more precise"}))
	f.clientFirst = must(t)(e.svc.StoreMemory(ctx, testMeta, f.user, domain.StoreMemory{Type: "semantic", Content: "from the first", SourceMessageID: f.first})).ID
	return f
}

// live reports whether a memory is still live, as its commands see it.
func (e *erasing) live(t *testing.T, id string) bool {
	t.Helper()
	_, err := e.svc.UpdateMemory(context.Background(), testMeta, id, nil, domain.UpdateMemory{})
	if err != nil && !errors.Is(err, domain.ErrNotFound) && !errors.Is(err, domain.ErrErased) {
		t.Fatal(err)
	}
	return err == nil
}

// The memories derived from a message are those an extraction stored from
// it, found in the log: not a client's, even one an extraction updated
// from the message or one naming it as its source.
func TestStoredFromFindsWhatAnExtractionStoredFromAMessage(t *testing.T) {
	t.Parallel()
	e := newErasing(t)
	f := newDerived(t, e)
	ctx := context.Background()
	got, err := e.svc.StoredFrom(ctx, testMeta, f.first)
	want := []string{f.fromFirst, f.fromBoth, f.deleted}
	slices.Sort(got)
	slices.Sort(want)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("stored from the first message: %v, %v; want %v", got, err, want)
	}
	other := commands.Meta{RequestID: "o", Actor: "o", Scope: domain.Scope{Tenant: "other"}}
	if _, err := e.svc.StoredFrom(ctx, other, f.first); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("another tenant's lookup: %v; want ErrNotFound", err)
	}
	if _, err := e.svc.StoredFrom(ctx, testMeta, domain.NewID().String()); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("lookup of no message: %v; want ErrNotFound", err)
	}
}

// Redacting a message with what was derived from it deletes, in the same
// transaction, every live memory an extraction stored from it, and no
// other; a stale If-Match (the message's) or another tenant's caller
// changes nothing.
func TestRedactMessageWithDerivedDeletesTheDerivedMemoriesWithIt(t *testing.T) {
	t.Parallel()
	e := newErasing(t)
	f := newDerived(t, e)
	ctx := context.Background()
	other := commands.Meta{RequestID: "o", Actor: "o", Scope: domain.Scope{Tenant: "other"}}
	if _, err := e.svc.RedactMessageWithDerived(ctx, other, f.first, nil, ""); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("another tenant's cascade: %v; want ErrNotFound", err)
	}
	if _, err := e.svc.RedactMessageWithDerived(ctx, testMeta, f.first, []int{7}, ""); !errors.Is(err, domain.ErrStale) {
		t.Errorf("a cascade with a stale If-Match: %v; want ErrStale", err)
	}
	for _, id := range []string{f.fromFirst, f.fromBoth} {
		if !e.live(t, id) {
			t.Fatalf("memory %s went with a cascade that failed", id)
		}
	}

	res := must(t)(e.svc.RedactMessageWithDerived(ctx, testMeta, f.first, []int{1}, "wrong"))
	if res.ID != f.first || res.Version != 2 || res.Cursor.IsZero() {
		t.Errorf("result %+v; want the message at version 2 and a cursor", res)
	}
	for id, want := range map[string]bool{f.fromFirst: false, f.fromBoth: false, f.fromSecond: true, f.client: true, f.clientFirst: true} {
		if got := e.live(t, id); got != want {
			t.Errorf("memory %s live: %v, want %v", id, got, want)
		}
	}
	// One transaction: the message's redaction and the deletions.
	for _, st := range []string{domain.StreamID(domain.StreamMessage, f.first), domain.StreamID(domain.StreamMemory, f.fromFirst),
		domain.StreamID(domain.StreamMemory, f.fromBoth)} {
		recs, err := e.store.ReadStream(ctx, st, 1)
		if err != nil {
			t.Fatal(err)
		}
		if last := recs[len(recs)-1]; last.TransactionID != res.Cursor.TransactionID {
			t.Errorf("%s's last event (%s) is not in the cascade's transaction", st, last.Type)
		}
	}
	if _, err := e.svc.RedactMessageWithDerived(ctx, testMeta, f.first, nil, ""); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("the cascade again: %v; want ErrNotFound, as a redaction again", err)
	}
}

// Erasing a message with what was derived from it erases every memory an
// extraction stored from it (also one deleted since), then the message;
// a client's memory stays.
func TestEraseMessageWithDerivedErasesTheDerivedMemoriesFirst(t *testing.T) {
	t.Parallel()
	e := newErasing(t)
	f := newDerived(t, e)
	ctx := context.Background()
	er := commands.NewEraser(e.svc, nil, nil, 0)
	res := must(t)(er.EraseMessageWithDerived(ctx, testMeta, f.first))
	if res.ID != f.first || res.Cursor.IsZero() {
		t.Errorf("result %+v; want the message and a cursor", res)
	}
	for _, id := range []string{f.fromFirst, f.fromBoth, f.deleted} {
		if _, err := e.svc.EraseMemory(ctx, testMeta, id); err != nil {
			t.Fatal(err)
		}
		recs, err := e.store.ReadStream(ctx, domain.StreamID(domain.StreamMemory, id), 1)
		if err != nil {
			t.Fatal(err)
		}
		if last := recs[len(recs)-1]; last.Type != domain.MemoryErased || !recs[0].Erased {
			t.Errorf("memory %s ends with %s (erased %v); want it erased", id, last.Type, recs[0].Erased)
		}
	}
	for _, id := range []string{f.fromSecond, f.client, f.clientFirst} {
		if !e.live(t, id) {
			t.Errorf("memory %s is gone; only those stored from the message go", id)
		}
	}
	if _, err := e.svc.RedactMessage(ctx, testMeta, f.first, nil, ""); !errors.Is(err, domain.ErrErased) {
		t.Errorf("the message after the cascade: %v; want ErrErased", err)
	}
	// Again: harmless, and it answers the same.
	if _, err := er.EraseMessageWithDerived(ctx, testMeta, f.first); err != nil {
		t.Errorf("the erasure again: %v", err)
	}
}
