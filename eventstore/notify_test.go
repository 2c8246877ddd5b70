package eventstore_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/internal/testdb"
)

// A Notifier wakes its readers at once for its own appends and through
// Postgres for other processes' appends, but not a second time when its
// own NOTIFY comes back: each wake-up costs every projector a poll.
func TestNotifierWakesOnceForItsOwnAppends(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	n, other := listening(t)

	g := n.Generation()
	n.Notify()
	if got := n.Generation(); got != g+1 {
		t.Fatalf("generation %d after Notify, want %d at once", got, g+1)
	}
	own := firstOtherThan(t, other, "other")
	if own == "" || own == "other" {
		t.Fatalf("the Notifier's NOTIFY carried %q, want its own mark", own)
	}
	// Its own NOTIFY went before this one: once this one woke it, the own
	// one was read too, and must not have woken it again.
	if _, err := other.Exec(ctx, `SELECT pg_notify('arq_events', 'sentinel')`); err != nil {
		t.Fatal(err)
	}
	if !n.Wait(ctx, g+1, 10*time.Second) {
		t.Fatal("another process's NOTIFY did not wake the Notifier")
	}
	if n.Wait(ctx, g+2, 300*time.Millisecond) {
		t.Fatalf("generation %d: the Notifier woke again for its own NOTIFY", n.Generation())
	}
}

// listening returns a running Notifier and another session listening on
// its channel, once a NOTIFY of that session (naming no event types, so
// waking every reader) has woken the Notifier: it listens then.
func listening(t *testing.T) (*eventstore.Notifier, *pgx.Conn) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	url := testdb.New(t)
	n := eventstore.NewNotifier(testdb.Pool(t, url), quietLog())
	go func() { _ = n.Run(ctx) }()
	other, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close(context.Background()) })
	if _, err := other.Exec(ctx, `LISTEN arq_events`); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for g := n.Generation(); !n.WaitFor(ctx, g, []string{"wanted"}, 50*time.Millisecond); {
		if _, err := other.Exec(ctx, `SELECT pg_notify('arq_events', 'other')`); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("a NOTIFY from another session never woke the Notifier")
		}
	}
	return n, other
}

// firstOtherThan returns the payload of the first notification other
// receives that does not carry skip.
func firstOtherThan(t *testing.T, other *pgx.Conn, skip string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		nt, err := other.WaitForNotification(ctx)
		if err != nil {
			t.Fatalf("wait for a notification: %v", err)
		}
		if nt.Payload != skip {
			return nt.Payload
		}
	}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// A reader of some event types is woken by appends of those types, or of
// types not known (an import, a poke, another process's append that did
// not say), and sleeps through the others'. What an append wrote is kept
// by its last event's cursor, for a command's wait.
func TestNotifierWakesReadersOfTheTypesAppended(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	n := eventstore.NewNotifier(testdb.Pool(t, testdb.New(t)), quietLog())
	picky := []string{"wanted"}

	g := n.Generation()
	at := eventstore.Cursor{TransactionID: 7, Position: 3}
	n.Notify(eventstore.Appended{Last: at, Types: []string{"tick", "tock"}})
	if n.WaitFor(ctx, g, picky, 20*time.Millisecond) {
		t.Fatal("an append of other types woke a reader of type wanted")
	}
	if !n.WaitFor(ctx, g, nil, 0) || !n.WaitFor(ctx, g, []string{"tock"}, 0) {
		t.Fatal("an append did not wake the readers of all types and of its own")
	}
	if types, ok := n.TypesAt(at); !ok || len(types) != 2 || types[0] != "tick" || types[1] != "tock" {
		t.Fatalf("TypesAt = %v, %v; want [tick tock]", types, ok)
	}
	if _, ok := n.TypesAt(eventstore.Cursor{TransactionID: 7, Position: 2}); ok {
		t.Fatal("TypesAt knows a cursor no append ended at")
	}

	g = n.Generation()
	n.Notify(eventstore.Appended{Last: eventstore.Cursor{TransactionID: 8, Position: 4}, Types: []string{"wanted"}})
	if !n.WaitFor(ctx, g, picky, 0) {
		t.Fatal("an append of type wanted did not wake its reader")
	}
	g = n.Generation()
	n.Poke()
	if !n.WaitFor(ctx, g, picky, 0) || !n.WaitFor(ctx, g, []string{}, 0) {
		t.Fatal("a poke did not wake every reader")
	}
	g = n.Generation()
	n.Notify(eventstore.Appended{}) // an import: types not looked at
	if !n.WaitFor(ctx, g, []string{}, 0) {
		t.Fatal("an append of unknown types did not wake every reader")
	}
}

// Another process's NOTIFY names the types it announces: a reader of
// other types sleeps through it, and a NOTIFY that names none (sent by an
// older server, or for a poke) wakes every reader. This Notifier's own
// NOTIFY names the types of its appends since the last one.
func TestNotifierTellsOtherProcessesTheTypesAppended(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	n, other := listening(t)
	send := func(payload string) {
		t.Helper()
		if _, err := other.Exec(ctx, `SELECT pg_notify('arq_events', $1)`, payload); err != nil {
			t.Fatal(err)
		}
	}
	// In order: one of other types, then one of the reader's; the reader
	// wakes once, for the second.
	g := n.Generation()
	send("other tick,tock")
	send("other tock,wanted")
	if !n.WaitFor(ctx, g, []string{"wanted"}, 10*time.Second) {
		t.Fatal("a NOTIFY naming type wanted did not wake its reader")
	}
	if got := n.Generation(); got != g+2 {
		t.Fatalf("generation %d, want %d: both NOTIFYs read", got, g+2)
	}

	n.Notify(eventstore.Appended{Last: eventstore.Cursor{TransactionID: 9, Position: 1}, Types: []string{"tick"}},
		eventstore.Appended{Last: eventstore.Cursor{TransactionID: 9, Position: 2}, Types: []string{"tock"}})
	own := "other"
	for strings.HasPrefix(own, "other") { // the session hears its own too
		own = firstOtherThan(t, other, "other")
	}
	if !strings.HasSuffix(own, " tick,tock") {
		t.Fatalf("the Notifier's NOTIFY carried %q, want its mark and the types tick,tock", own)
	}
}
