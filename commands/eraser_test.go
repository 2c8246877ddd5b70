package commands_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/arq-memory/arq/commands"
	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
)

// fakeWaiter stands for the projections: it returns err, and counts.
type fakeWaiter struct {
	mu    sync.Mutex
	err   error
	calls []eventstore.Cursor
}

func (w *fakeWaiter) Wait(_ context.Context, c eventstore.Cursor) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls = append(w.calls, c)
	return w.err
}

// fakeCaches records what it was asked to forget.
type fakeCaches struct {
	mu     sync.Mutex
	forgot []commands.Erased
	err    error
}

func (f *fakeCaches) ForgetErased(_ context.Context, e commands.Erased) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forgot = append(f.forgot, e)
	return f.err
}

// The Eraser waits for the projections before it clears the caches, also
// for an erasure recorded before (at the log's end); projections that do
// not catch up in time, or a cache it cannot clear, make the erasure
// pending, and it clears what it can all the same.
func TestEraserWaitsThenForgetsCaches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newErasing(t)
	c := e.converse(t, testMeta)
	w, caches := &fakeWaiter{}, &fakeCaches{}
	er := commands.NewEraser(e.svc, w, caches, time.Second)

	res := must(t)(er.EraseMessage(ctx, testMeta, c.messages[0]))
	// A message: waited for, erased again, forgotten.
	if len(w.calls) != 1 || w.calls[0] != res.Cursor || len(caches.forgot) != 1 || !slices.Equal(caches.forgot[0].Messages, []string{c.messages[0]}) {
		t.Fatalf("waits %v, forgot %+v; want one wait for %v, then the message forgotten", w.calls, caches.forgot, res.Cursor)
	}
	must(t)(er.EraseMemory(ctx, testMeta, c.memory))
	again := must(t)(er.EraseMemory(ctx, testMeta, c.memory))
	last, err := e.store.Last(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Cursor.IsZero() || w.calls[len(w.calls)-1] != last || len(caches.forgot) != 3 {
		t.Fatalf("second erasure: waits %v (last %v), forgot %d times", w.calls, last, len(caches.forgot))
	}

	w.err = context.DeadlineExceeded
	if _, err := er.EraseUser(ctx, testMeta, c.user); !errors.Is(err, commands.ErrErasurePending) {
		t.Fatalf("erasure with projections behind: %v, want ErrErasurePending", err)
	}
	if got := caches.forgot[len(caches.forgot)-1]; !slices.Equal(got.Users, []string{c.user}) {
		t.Fatalf("the pending erasure forgot %+v", got)
	}
	w.err, caches.err = nil, errors.New("redis down")
	if _, err := er.EraseUser(ctx, testMeta, c.user); !errors.Is(err, commands.ErrErasurePending) {
		t.Fatalf("erasure with the cache unreachable: %v, want ErrErasurePending", err)
	}
}

// finder lists the messages of a session as past retention.
type finder []string

func (f finder) MessagesBefore(_ context.Context, _ time.Time, limit int, skip, last []string) ([]string, error) {
	var out []string
	for _, id := range f {
		if !slices.Contains(skip, id) {
			out = append(out, id)
		}
	}
	return out[:min(limit, len(out))], nil
}

// The retention worker erases the messages it is given, for retention, as
// its own actor; a message already erased goes through again harmlessly,
// and one not found is passed over.
func TestRetentionErasesOldMessages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newErasing(t)
	c := e.converse(t, testMeta)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r := commands.NewRetention(commands.NewEraser(e.svc, nil, nil, 0), finder{c.messages[0], c.messages[1], domain.NewID().String()}, time.Hour, time.Second, log)
	n, err := r.RunOnce(ctx)
	if err != nil || n != 2 {
		t.Fatalf("retention pass: %d erased, %v; want 2", n, err)
	}
	for _, id := range c.messages[:2] {
		recs, err := e.store.ReadStream(ctx, domain.StreamID(domain.StreamMessage, id), 1)
		if err != nil || len(recs) != 1 || recs[0].Metadata.Actor != commands.RetentionActor {
			t.Fatalf("message %s after retention: %v, %v", id, recs, err)
		}
		var d domain.MessageErasedData
		if err := json.Unmarshal(recs[0].Data, &d); err != nil || d.Reason != domain.ErasedForRetention {
			t.Fatalf("message %s erased for %q (%v), want retention", id, d.Reason, err)
		}
	}
	if n, err := r.RunOnce(ctx); err != nil || n != 2 {
		t.Fatalf("second pass: %d, %v", n, err)
	}
	if got := e.types(t, domain.StreamID(domain.StreamMessage, c.messages[0])); len(got) != 1 {
		t.Fatalf("a second pass appended again: %v", got)
	}
	if err := commands.NewRetention(nil, nil, 0, time.Second, log).Run(ctx); err != nil {
		t.Fatalf("retention off: %v", err)
	}
}
