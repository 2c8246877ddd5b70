package eventstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/internal/testwait"
)

// Count counts what a reader of the log sees: a commit that an open
// transaction with an earlier id may yet overtake is not counted until
// that transaction ends.
func TestCountSeesWhatReadersSee(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, pool := newStore(t)
	if n, err := s.Count(ctx); err != nil || n != 0 {
		t.Fatalf("empty log: count %d, %v; want 0", n, err)
	}
	if _, err := s.Append(ctx, stream("a"), eventstore.NoStream(), ev("x", `{}`), ev("x", `{}`), ev("x", `{}`)); err != nil {
		t.Fatal(err)
	}
	counts := func(want int64) func() (bool, error) {
		return func() (bool, error) {
			n, err := s.Count(ctx)
			return n == want, err
		}
	}
	// Another test's open transaction may hold the horizon back a moment.
	testwait.Eventually(t, 10*time.Second, "three events counted", counts(3))

	early, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer early.Rollback(ctx)
	if _, err := early.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, stream("b"), eventstore.NoStream(), ev("x", `{}`)); err != nil {
		t.Fatal(err)
	}
	// The append committed after early took its id, so while early is
	// open the horizon stays at or below early: the count cannot move.
	if n, err := s.Count(ctx); err != nil || n != 3 {
		t.Fatalf("with an earlier transaction open: count %d, %v; want 3", n, err)
	}
	if err := early.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	testwait.Eventually(t, 10*time.Second, "the fourth event counted", counts(4))
}

// VerifyStream finds no stream where there are no events and none were
// removed, and verifies one that has events as Verify does.
func TestVerifyStream(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, pool := newStore(t)
	if _, err := s.Append(ctx, stream("c"), eventstore.NoStream(), ev("a", `{}`), ev("a", `{}`)); err != nil {
		t.Fatal(err)
	}
	v, err := s.VerifyStream(ctx, "c", nil)
	if err != nil || !v.Intact() || v.Events != 2 || v.Streams != 1 {
		t.Fatalf("verify c: %+v, %v", v, err)
	}
	for _, id := range []string{"nope", ""} {
		if _, err := s.VerifyStream(ctx, id, nil); !errors.Is(err, eventstore.ErrNoStream) {
			t.Errorf("verify %q: err = %v, want ErrNoStream", id, err)
		}
	}
	// A stream the catalog saw at version 9 whose events are all gone is
	// found, broken.
	if _, err := pool.Exec(ctx, `INSERT INTO streams VALUES ('ghost', 'test', 9, 9, 1, 1, now(), now())`); err != nil {
		t.Fatal(err)
	}
	v, err = s.VerifyStream(ctx, "ghost", nil)
	if err != nil || v.Intact() || v.Events != 0 || len(v.Breaks) != 1 {
		t.Fatalf("verify ghost: %+v, %v; want one break", v, err)
	}
}
