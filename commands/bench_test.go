package commands_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/arq-memory/arq/commands"
	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/tokens"
)

// noFinder serves no messages: the append benchmark never edits.
type noFinder struct{}

func (noFinder) FindMessage(context.Context, string) (string, int, error) {
	return "", 0, domain.ErrNotFound
}

// newService returns a command service over a fresh database, with a user
// and a session of theirs.
func newService(tb testing.TB) (svc *commands.Service, store *eventstore.Store, userID, sessionID string) {
	tb.Helper()
	ctx := context.Background()
	store = eventstore.New(testdb.Pool(tb, testdb.New(tb)))
	tc, err := tokens.New("cl100k_base")
	if err != nil {
		tb.Fatal(err)
	}
	svc = commands.New(store, tc, noFinder{}, time.Now)
	u, err := svc.RegisterUser(ctx, testMeta, domain.RegisterUser{ExternalID: "test", Name: "Test"})
	if err != nil {
		tb.Fatal(err)
	}
	sess, err := svc.StartSession(ctx, testMeta, u.ID, domain.StartSession{Title: "test"})
	if err != nil {
		tb.Fatal(err)
	}
	return svc, store, u.ID, sess.ID
}

// testMeta is the request behind the tests' commands.
var testMeta = commands.Meta{RequestID: "test", Actor: "test", Scope: domain.Scope{Tenant: "default"}}

// BenchmarkAppendMessage is the command alone (load the session, decide,
// count tokens, append to the session's log), beside a raw one-event append
// on the same store in the same run. No projections run.
func BenchmarkAppendMessage(b *testing.B) {
	ctx := context.Background()
	svc, store, _, sid := newService(b)
	tc, err := tokens.New("cl100k_base")
	if err != nil {
		b.Fatal(err)
	}
	const content = "remember that I prefer short answers about gardening in the shade"
	b.Run("command", func(b *testing.B) {
		for b.Loop() {
			if _, err := svc.AppendMessages(ctx, testMeta, sid, []domain.NewMessage{{Role: "user", Content: content}}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw-append", func(b *testing.B) {
		data := []byte(fmt.Sprintf(`{"role":"user","content":%q}`, content))
		for b.Loop() {
			if _, err := store.Append(ctx, eventstore.Stream{ID: "raw-1", Type: "raw"}, eventstore.Any(),
				eventstore.Event{Type: "raw.appended", Data: data}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("read-session", func(b *testing.B) {
		for b.Loop() {
			if _, err := store.ReadStream(ctx, domain.StreamID(domain.StreamSession, sid), 1); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw-append-guarded", func(b *testing.B) {
		data := []byte(fmt.Sprintf(`{"role":"user","content":%q}`, content))
		for b.Loop() {
			if _, err := store.AppendMulti(ctx,
				eventstore.StreamAppend{Stream: eventstore.Stream{ID: "guard-1", Type: "raw"}, Expected: eventstore.Any()},
				eventstore.StreamAppend{Stream: eventstore.Stream{ID: "raw-2", Type: "raw"}, Expected: eventstore.Any(),
					Events: []eventstore.Event{{Type: "raw.appended", Data: data}}}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("tokens", func(b *testing.B) {
		for b.Loop() {
			tc.Count(content)
		}
	})
}
