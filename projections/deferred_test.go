package projections_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/projections"
)

// A command waits only for the projections that apply what it appended:
// not for a Selective projection of other types, nor for one that defers
// them. Here both are stuck (each blocks on whatever it is handed), and a
// command's wait returns all the same, once the projection that applies
// its event has: read-your-writes of the command holds.
func TestCommandWaitsOnlyForTheProjectionsOfWhatItAppended(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	for _, name := range []string{"picky", "eager", "lazy"} {
		createApplied(t, e.pool, name)
	}
	release := make(chan struct{})
	gate := gateOn(release)
	ps := []projections.Projection{gatedPicky{gate}, deferring{applied{name: "lazy", block: gate}}, applied{name: "eager"}}
	eng := e.runEngine(t, projections.Config{}, ps...)
	w := projections.NewWaiter(e.pool, []string{"picky", "lazy", "eager"}, eng.Committed()).Knowing(ps, e.notifier)
	wctx, stop := context.WithTimeout(ctx, 20*time.Second)
	defer stop()

	tick, err := e.store.Append(ctx, eventstore.Stream{ID: "t", Type: "test"}, eventstore.Any(), eventstore.Event{Type: "tick", Data: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	c := tick.Last().Cursor
	if err := w.WaitAppended(wctx, c); err != nil {
		t.Fatalf("waiting for the append: %v", err)
	}
	if n := count(t, e.pool, `SELECT count(*) FROM eager WHERE stream_id = 't'`); n != 1 {
		t.Fatalf("the projection of all types holds %d rows of the append once waited for, want 1", n)
	}
	st, err := projections.States(ctx, e.pool, []string{"picky", "lazy"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if !s.Checkpoint.Less(c) {
			t.Fatalf("%s is at %s: it was to be stuck before the append", s.Name, s.Checkpoint)
		}
	}
	// A read at the position waits for every projection.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := w.Wait(short, c); err == nil {
		t.Fatal("a read at the position did not wait for the stuck projections")
	}
	close(release)
	if err := w.Wait(wctx, c); err != nil {
		t.Fatalf("waiting for every projection: %v", err)
	}
}

// A projection that sleeps through appends of the types it defers (the
// stream catalog defers all) moves at once when a read waits for it: with
// its safety poll an hour away, only the waiter's pokes bring it there.
func TestReadAtAPositionWakesDeferringProjections(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	createApplied(t, e.pool, "picky")
	ps := []projections.Projection{projections.Streams{}, picky{name: "picky", handed: new(atomic.Int64)}}
	eng := e.runEngine(t, projections.Config{IdlePoll: time.Hour}, ps...)
	w := projections.NewWaiter(e.pool, []string{"streams", "picky"}, eng.Committed()).Knowing(ps, e.notifier)
	wctx, stop := context.WithTimeout(ctx, 20*time.Second)
	defer stop()
	for i := 1; i <= 3; i++ {
		res, err := e.store.Append(ctx, eventstore.Stream{ID: "t", Type: "test"}, eventstore.Any(), eventstore.Event{Type: "tick", Data: []byte(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WaitAppended(wctx, res.Last().Cursor); err != nil {
			t.Fatalf("waiting for append %d: %v", i, err)
		}
		if err := w.Wait(wctx, res.Last().Cursor); err != nil {
			t.Fatalf("waiting for every projection to take append %d: %v", i, err)
		}
		if n := count(t, e.pool, `SELECT coalesce(max(version), 0) FROM streams WHERE stream_id = 't'`); n != i {
			t.Fatalf("the catalog is at version %d of the stream, want %d", n, i)
		}
	}
}

// gatedPicky is picky (of type "wanted" only) blocked by gate on every
// event it is handed, its markers of other types too.
type gatedPicky struct {
	gate func(context.Context, projections.Tx, eventstore.Recorded) error
}

func (gatedPicky) Name() string         { return "picky" }
func (gatedPicky) Tables() []string     { return []string{"picky"} }
func (gatedPicky) EventTypes() []string { return []string{"wanted"} }
func (g gatedPicky) Apply(ctx context.Context, tx projections.Tx, e eventstore.Recorded) error {
	return g.gate(ctx, tx, e)
}

// deferring is a projection that defers every type it applies.
type deferring struct{ applied }

func (deferring) DeferredTypes() []string { return nil }
