package commands_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arq-memory/arq/commands"
	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/tokens"
)

// dueMemories lists memories as the read model does, and no sessions: in
// its order (by expiry time), up to limit, those in last after the others
// and those in skip left out.
type dueMemories []string

func (dueMemories) DueSessions(context.Context, time.Time, int, []string, []string) ([]string, error) {
	return nil, nil
}

func (d dueMemories) DueMemories(_ context.Context, _ time.Time, limit int, skip, last []string) ([]string, error) {
	var first, after []string
	for _, id := range d {
		switch {
		case slices.Contains(skip, id):
		case slices.Contains(last, id):
			after = append(after, id)
		default:
			first = append(first, id)
		}
	}
	out := append(first, after...)
	return out[:min(limit, len(out))], nil
}

// newExpiryService returns a command service over a fresh database whose
// clock the test moves, and a user of it.
func newExpiryService(t *testing.T) (*eventstore.Store, *commands.Service, *atomic.Int64, commands.Result) {
	t.Helper()
	store := eventstore.New(testdb.Pool(t, testdb.New(t)))
	tc, err := tokens.New("cl100k_base")
	if err != nil {
		t.Fatal(err)
	}
	clock := new(atomic.Int64)
	clock.Store(time.Now().UnixNano())
	svc := commands.New(store, tc, noFinder{}, func() time.Time { return time.Unix(0, clock.Load()) })
	u, err := svc.RegisterUser(context.Background(), testMeta, domain.RegisterUser{ExternalID: "expiry", Name: "Expiry"})
	if err != nil {
		t.Fatal(err)
	}
	return store, svc, clock, u
}

// brokenMemory appends a memory whose stream holds an event no decoder
// reads (schema version 99): one that cannot be expired.
func brokenMemory(t *testing.T, store *eventstore.Store) string {
	t.Helper()
	id := domain.NewID().String()
	if _, err := store.Append(context.Background(), eventstore.Stream{ID: domain.StreamID(domain.StreamMemory, id), Type: domain.StreamMemory}, eventstore.NoStream(),
		eventstore.Event{Type: domain.MemoryStored, SchemaVersion: 99, Data: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	return id
}

// A memory that cannot be expired (here, its stream holds an event no
// decoder reads) fails the pass for itself alone: the memories after it
// are expired in the same pass, each once, and a pass after that appends
// nothing more (nor tries the broken one again before its back-off ends).
func TestExpiryPassGoesOnPastAFailure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, svc, clock, u := newExpiryService(t)
	due := dueMemories{brokenMemory(t, store)}
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
	if n, err := x.RunOnce(ctx); n != 0 || err != nil {
		t.Fatalf("second pass expired %d memories (%v), want none more, and the broken one left to its back-off", n, err)
	}
	for _, id := range due[1:] {
		if v, err := store.StreamVersion(ctx, domain.StreamID(domain.StreamMemory, id)); err != nil || v != 2 {
			t.Errorf("memory %s at version %d (%v), want 2: stored, then expired once", id, v, err)
		}
	}
}

// More memories that cannot be expired than a pass reads at once hold up
// no other: while they back off, a pass reads past them, and the memory
// due after them all is expired within a pass of the first; once their
// back-off is over they are tried again, each once a pass, after the
// memories that never failed.
func TestExpiryGetsPastAPageOfFailures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, svc, clock, u := newExpiryService(t)
	const failing = 510 // a pass reads 500 of a kind
	var due dueMemories // by expiry time: the broken ones first; the expirer sees later appends
	for range failing {
		due = append(due, brokenMemory(t, store))
	}
	good, err := svc.StoreMemory(ctx, testMeta, u.ID, domain.StoreMemory{Type: "semantic", Content: "short-lived", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	due = append(due, good.ID)
	clock.Add(int64(2 * time.Minute))

	// The expirer's log says which memories it tried and failed on.
	var logged bytes.Buffer
	tries := func(id string) int { return strings.Count(logged.String(), `"id":"`+id+`"`) }
	const interval = time.Minute // a first failure waits two
	x := commands.NewExpirer(svc, &due, interval, slog.New(slog.NewJSONHandler(&logged, nil)))
	version := func(id string) int {
		t.Helper()
		v, err := store.StreamVersion(ctx, domain.StreamID(domain.StreamMemory, id))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	passes := 0
	for version(good.ID) == 1 {
		if passes++; passes > 2 {
			t.Fatalf("after %d passes, the memory due after %d failing ones is not expired", passes-1, failing)
		}
		if _, err := x.RunOnce(ctx); !errors.Is(err, domain.ErrInvalid) {
			t.Fatalf("pass %d: %v, want the failing memories' error", passes, err)
		}
	}
	for _, id := range due[:failing] {
		if n := tries(id); n != 1 {
			t.Fatalf("failing memory %s tried %d times in %d passes, want once", id, n, passes)
		}
	}

	// While they wait, a pass tries none of them.
	clock.Add(int64(interval))
	if n, err := x.RunOnce(ctx); n != 0 || err != nil {
		t.Fatalf("pass during the back-off expired %d (%v), want nothing tried", n, err)
	}
	for _, id := range due[:failing] {
		if n := tries(id); n != 1 {
			t.Fatalf("failing memory %s tried %d times before its back-off ended, want once", id, n)
		}
	}

	// Past their wait, each is tried once more, a page a pass, after a
	// memory that never failed, though that one expired after them all.
	fresh, err := svc.StoreMemory(ctx, testMeta, u.ID, domain.StoreMemory{Type: "semantic", Content: "short-lived too", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	due = append(due, fresh.ID)
	clock.Add(int64(2 * interval))
	for pass, want := range []int{1, 0} {
		if n, err := x.RunOnce(ctx); n != want || !errors.Is(err, domain.ErrInvalid) {
			t.Fatalf("pass %d after the back-off expired %d (%v), want %d and the failing memories tried again", pass+1, n, err, want)
		}
	}
	for _, id := range due[:failing] {
		if n := tries(id); n != 2 {
			t.Fatalf("failing memory %s tried %d times after its back-off ended, want twice", id, n)
		}
	}
	for _, id := range []string{good.ID, fresh.ID} {
		if v := version(id); v != 2 {
			t.Errorf("memory %s at version %d, want 2: stored, then expired once", id, v)
		}
	}
}
