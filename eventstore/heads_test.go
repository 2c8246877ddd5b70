package eventstore_test

import (
	"context"
	"errors"
	"testing"

	"github.com/oklog/ulid/v2"

	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/internal/testdb"
)

// Two Stores over one database stand for two arq processes: each remembers
// the heads of the streams it appended to, and the other moves them on.
// Appends from an out-of-date head must conflict or retry exactly as
// appends that read the stream, and the chain must stay intact.
func TestRememberedHeadsNeverWriteFromAStaleHead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t, testdb.New(t))
	a, b := eventstore.New(pool), eventstore.New(pool)
	st := stream("shared")

	if _, err := a.Append(ctx, st, eventstore.NoStream(), ev("x", `{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Append(ctx, st, eventstore.Exactly(1), ev("x", `{"n":2}`)); err != nil {
		t.Fatal(err) // a now remembers version 2
	}
	if _, err := b.Append(ctx, st, eventstore.Exactly(2), ev("x", `{"n":3}`)); err != nil {
		t.Fatal(err) // the log is at 3; a still remembers 2
	}

	// A caller of a that read version 2 before b's append: a conflict at 3.
	_, err := a.Append(ctx, st, eventstore.Exactly(2), ev("x", `{"n":"stale"}`))
	var conflict *eventstore.ConflictError
	if !errors.As(err, &conflict) || conflict.Current != 3 {
		t.Fatalf("append from a stale head: err = %v, want a conflict at current version 3", err)
	}
	// A caller that read version 3 goes ahead from a's out-of-date memory.
	res, err := a.Append(ctx, st, eventstore.Exactly(3), ev("x", `{"n":4}`))
	if err != nil || res.Version != 4 {
		t.Fatalf("append at 3 = %+v, %v; want version 4", res, err)
	}
	if _, err := b.Append(ctx, st, eventstore.Any(), ev("x", `{"n":5}`)); err != nil {
		t.Fatal(err)
	}
	// Any() from a's head (4) loses the race to b's 5 and is retried.
	res, err = a.Append(ctx, st, eventstore.Any(), ev("x", `{"n":6}`))
	if err != nil || res.Version != 6 {
		t.Fatalf("append any = %+v, %v; want version 6", res, err)
	}

	// A repeat of an append made from a remembered head reports the original.
	id := ulid.Make().String()
	first, err := a.Append(ctx, st, eventstore.Exactly(6), eventstore.Event{ID: id, Type: "x"})
	if err != nil {
		t.Fatal(err)
	}
	again, err := a.Append(ctx, st, eventstore.Exactly(7), eventstore.Event{ID: id, Type: "x"})
	if err != nil || !again.Repeated || again.Version != first.Version || again.Last().EventID != id {
		t.Fatalf("repeat = %+v, %v; want the original result at version %d", again, err, first.Version)
	}

	got, err := a.ReadStream(ctx, st.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range got {
		if r.Version != i+1 {
			t.Fatalf("event %d has version %d: versions are not gapless", i, r.Version)
		}
	}
	if len(got) != 7 {
		t.Fatalf("stream has %d events, want 7", len(got))
	}
	v, err := a.Verify(ctx, st.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Intact() || v.Events != 7 {
		t.Fatalf("verify = %+v, want 7 events and no break", v)
	}
}

// An append that expects no stream writes without reading the stream; an
// existing stream still makes it a conflict, or a type error when the
// stream has another type, and nothing is written.
func TestNewStreamAppendOnExistingStream(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newStore(t)
	if _, err := s.Append(ctx, stream("taken"), eventstore.NoStream(), ev("x", `{}`), ev("x", `{}`)); err != nil {
		t.Fatal(err)
	}
	_, err := s.Append(ctx, stream("taken"), eventstore.NoStream(), ev("x", `{}`))
	var conflict *eventstore.ConflictError
	if !errors.As(err, &conflict) || conflict.Current != 2 {
		t.Fatalf("new-stream append on a stream at 2: err = %v, want a conflict at 2", err)
	}
	_, err = s.Append(ctx, eventstore.Stream{ID: "taken", Type: "other"}, eventstore.NoStream(), ev("x", `{}`))
	if !errors.Is(err, eventstore.ErrStreamType) {
		t.Fatalf("new-stream append of another type: err = %v, want ErrStreamType", err)
	}
	got, err := s.ReadStream(ctx, "taken", 1)
	if err != nil || len(got) != 2 {
		t.Fatalf("stream holds %d events (%v), want 2", len(got), err)
	}
}
