package commands_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arq-memory/arq/commands"
	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/tokens"
)

// dueMemories lists fixed memories as due, and no sessions.
type dueMemories []string

func (dueMemories) DueSessions(context.Context, time.Time, int) ([]string, error) { return nil, nil }
func (d dueMemories) DueMemories(context.Context, time.Time, int) ([]string, error) {
	return d, nil
}

// A memory that cannot be expired (here, its stream holds an event no
// decoder reads) fails the pass for itself alone: the memories after it
// are expired in the same pass, each once, and a pass after that appends
// nothing more.
func TestExpiryPassGoesOnPastAFailure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := eventstore.New(testdb.Pool(t, testdb.New(t)))
	tc, err := tokens.New("cl100k_base")
	if err != nil {
		t.Fatal(err)
	}
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	svc := commands.New(store, tc, noFinder{}, func() time.Time { return time.Unix(0, clock.Load()) })
	u, err := svc.RegisterUser(ctx, testMeta, domain.RegisterUser{ExternalID: "expiry", Name: "Expiry"})
	if err != nil {
		t.Fatal(err)
	}
	broken := domain.NewID().String()
	if _, err := store.Append(ctx, eventstore.Stream{ID: domain.StreamID(domain.StreamMemory, broken), Type: domain.StreamMemory}, eventstore.NoStream(),
		eventstore.Event{Type: domain.MemoryStored, SchemaVersion: 99, Data: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	due := dueMemories{broken}
	for range 3 {
		m, err := svc.StoreMemory(ctx, testMeta, u.ID, domain.StoreMemory{Type: "semantic", Content: "short-lived", TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		due = append(due, m.ID)
	}
	clock.Add(int64(2 * time.Minute))

	x := commands.NewExpirer(svc, due, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	n, err := x.RunOnce(ctx)
	if n != 3 || !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("pass expired %d memories (%v), want the 3 after the broken one, and the broken one's error", n, err)
	}
	if n, err := x.RunOnce(ctx); n != 0 || !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("second pass expired %d memories (%v), want none more", n, err)
	}
	for _, id := range due[1:] {
		if v, err := store.StreamVersion(ctx, domain.StreamID(domain.StreamMemory, id)); err != nil || v != 2 {
			t.Errorf("memory %s at version %d (%v), want 2: stored, then expired once", id, v, err)
		}
	}
}
