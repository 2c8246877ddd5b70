package vault_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/vault"
)

func keyring(t *testing.T) vault.Keyring {
	t.Helper()
	m, err := vault.ParseMaster(vault.NewMasterKey())
	if err != nil {
		t.Fatal(err)
	}
	return vault.NewKeyring(m)
}

func setup(t *testing.T) (*eventstore.Store, *vault.Vault, *pgxpool.Pool) {
	t.Helper()
	pool := testdb.Pool(t, testdb.New(t))
	v := vault.New(pool, keyring(t), true)
	return eventstore.New(pool, eventstore.WithSealer(v)), v, pool
}

func message(t *testing.T, user, id, content string) eventstore.Event {
	t.Helper()
	data, err := json.Marshal(domain.MessageAppendedData{MessageID: id, SessionID: "s1", UserID: user, Role: "user", Content: content, Tokens: 3, Metadata: map[string]any{"k": content}})
	if err != nil {
		t.Fatal(err)
	}
	return eventstore.Event{Type: domain.MessageAppended, Data: data}
}

func TestSealedInTheLogOpenedOnRead(t *testing.T) {
	store, v, pool := setup(t)
	ctx := context.Background()
	const marker = "zebra-marker-7731"
	st := eventstore.Stream{ID: "message_log-s1", Type: domain.StreamMessageLog}
	if _, err := store.Append(ctx, st, eventstore.Any(), message(t, "u1", "m1", marker+" one"), message(t, "u1", "m2", marker+" two")); err != nil {
		t.Fatal(err)
	}
	var raw string
	if err := pool.QueryRow(ctx, `SELECT string_agg(data::text, ' ') FROM events`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(raw, marker) {
		t.Fatalf("the log holds the marker in the clear: %s", raw)
	}
	got, err := store.ReadStream(ctx, st.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{marker + " one", marker + " two"} {
		e, err := domain.DecodeEvent(got[i].Type, 1, got[i].Data)
		if err != nil {
			t.Fatal(err)
		}
		if c := e.Data.(domain.MessageAppendedData).Content; c != want || got[i].Erased {
			t.Fatalf("event %d: content %q erased %v, want %q", i, c, got[i].Erased, want)
		}
	}

	// Erasing one message leaves the other readable.
	if _, err := v.Erase(ctx, nil, []string{domain.KeyID(domain.UnitMessage, "m1")}); err != nil {
		t.Fatal(err)
	}
	got, err = store.ReadStream(ctx, st.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !got[0].Erased || strings.Contains(string(got[0].Data), marker) || got[1].Erased || !strings.Contains(string(got[1].Data), marker) {
		t.Fatalf("after erasing m1: %+v", got)
	}
	// Erasing the user erases the rest; nothing may be kept for them again.
	if _, err := v.Erase(ctx, []string{"u1"}, nil); err != nil {
		t.Fatal(err)
	}
	got, _ = store.ReadStream(ctx, st.ID, 1)
	if !got[1].Erased {
		t.Fatalf("after erasing u1: %s", got[1].Data)
	}
	_, err = store.Append(ctx, st, eventstore.Any(), message(t, "u1", "m3", "late"))
	if !errors.Is(err, domain.ErrErased) {
		t.Fatalf("append for an erased user: %v, want ErrErased", err)
	}
}

// A key kept while its owner is being erased is deleted by the erasure or
// refused after it: never left behind.
func TestEraseRacesAppends(t *testing.T) {
	store, v, _ := setup(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := eventstore.Stream{ID: "message_log-s" + string(rune('a'+i)), Type: domain.StreamMessageLog}
			for j := range 30 {
				_, _ = store.Append(ctx, st, eventstore.Any(), message(t, "u1", "m"+string(rune('a'+i))+string(rune('A'+j)), "text"))
			}
		}()
	}
	if _, err := v.Erase(ctx, []string{"u1"}, nil); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	all, err := store.ReadAll(ctx, eventstore.Start, 10000, eventstore.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range all {
		if !e.Erased {
			t.Fatalf("event %s readable after its user's erasure", e.EventID)
		}
	}
}

// An append whose keys were kept but whose events were not written (left
// out of a group commit, then lost its race) and that is retried under new
// event ids stays readable: each event has a key of its own.
func TestRetriedAppendOpens(t *testing.T) {
	store, v, pool := setup(t)
	ctx := context.Background()
	st := eventstore.Stream{ID: "message_log-s1", Type: domain.StreamMessageLog}
	first := []eventstore.StreamAppend{{Stream: st, Events: []eventstore.Event{message(t, "u1", "m1", "first try")}}}
	first[0].Events[0].ID = "01JZZZZZZZZZZZZZZZZZZZZZZ1"
	keep, err := v.Seal(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, keep.SQL, keep.Args...); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Append(ctx, st, eventstore.Any(), message(t, "u1", "m1", "second try")); err != nil {
		t.Fatal(err)
	}
	other := vault.New(pool, v.Keyring(), true) // remembers nothing: reads keys from the store
	got, err := eventstore.New(pool, eventstore.WithSealer(other)).ReadStream(ctx, st.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Erased || !strings.Contains(string(got[0].Data), "second try") {
		t.Fatalf("the retried append reads %+v", got)
	}
}

// A process configured with another master key than the store's keys were
// wrapped by is told so when it opens, not at its first read.
func TestCheckFindsAnotherMasterKey(t *testing.T) {
	store, v, pool := setup(t)
	ctx := context.Background()
	if err := v.Check(ctx); err != nil {
		t.Fatalf("the store's own key: %v", err)
	}
	if _, err := store.Append(ctx, eventstore.Stream{ID: "message_log-s1", Type: domain.StreamMessageLog}, eventstore.Any(), message(t, "u1", "m1", "text")); err != nil {
		t.Fatal(err)
	}
	if err := vault.New(pool, keyring(t), true).Check(ctx); !errors.Is(err, vault.ErrUnknownMaster) {
		t.Fatalf("another master key: %v, want ErrUnknownMaster", err)
	}
	if err := v.Check(ctx); err != nil {
		t.Fatalf("the store's own key: %v", err)
	}
}
