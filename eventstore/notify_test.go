package eventstore_test

import (
	"context"
	"io"
	"log/slog"
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
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url := testdb.New(t)
	pool := testdb.Pool(t, url)
	n := eventstore.NewNotifier(pool, quietLog())
	go func() { _ = n.Run(ctx) }()

	other, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(context.Background())
	if _, err := other.Exec(ctx, `LISTEN arq_events`); err != nil {
		t.Fatal(err)
	}
	// The Notifier listens once it is connected: wait until a NOTIFY from
	// another session wakes it.
	deadline := time.Now().Add(10 * time.Second)
	for g := n.Generation(); ; {
		if _, err := other.Exec(ctx, `SELECT pg_notify('arq_events', 'other process')`); err != nil {
			t.Fatal(err)
		}
		if n.Wait(ctx, g, 50*time.Millisecond) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a NOTIFY from another session never woke the Notifier")
		}
	}

	g := n.Generation()
	n.Notify()
	if got := n.Generation(); got != g+1 {
		t.Fatalf("generation %d after Notify, want %d at once", got, g+1)
	}
	own := firstOtherThan(t, other, "other process")
	if own == "" || own == "other process" {
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
