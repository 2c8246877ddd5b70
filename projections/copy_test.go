package projections_test

import (
	"context"
	"errors"
	"testing"

	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/projections"
)

// worded writes each event's stream id as a full-text document, indexed
// by GIN (which a copy builds only once it is filled); block, if set,
// runs first.
type worded struct {
	block func(ctx context.Context, e eventstore.Recorded) error
}

func (worded) Name() string     { return "worded" }
func (worded) Tables() []string { return []string{"worded"} }
func (w worded) Apply(ctx context.Context, tx projections.Tx, e eventstore.Recorded) error {
	if w.block != nil {
		if err := w.block(ctx, e); err != nil {
			return err
		}
	}
	tx.Exec(`INSERT INTO worded (event_id, words) VALUES ($1, to_tsvector('simple', $2))`, e.EventID, e.StreamID)
	return nil
}

// A rebuild up to the log through a copy never touches the live tables
// until it switches: interrupted, it leaves them whole, with every index;
// done, it switches in the whole log's rows, indexes and all, moves the
// checkpoint to the last event, and clears the error the live projection
// had stopped on.
func TestRebuildUpToLogThroughACopy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.pool.Exec(ctx, `CREATE TABLE worded (event_id text PRIMARY KEY, words tsvector NOT NULL);
		CREATE INDEX worded_words_idx ON worded USING gin (words);
		INSERT INTO worded VALUES ('stale', 'stale');
		INSERT INTO projection_status (name, state, last_error) VALUES ('worded', 'stopped', 'it broke')`); err != nil {
		t.Fatal(err)
	}
	e.appendN(t, 5, 30)
	last, err := e.store.Last(ctx)
	if err != nil {
		t.Fatal(err)
	}
	index := func() int {
		return count(t, e.pool, `SELECT count(*) FROM pg_indexes WHERE tablename = 'worded' AND indexname = 'worded_words_idx' AND schemaname = current_schema()`)
	}

	// Interrupted at the 100th event.
	reached := make(chan struct{})
	n := 0
	cp, err := projections.NewCopy(ctx, e.pool, e.notifier, worded{block: func(ctx context.Context, _ eventstore.Recorded) error {
		if n++; n == 100 {
			close(reached)
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}}, projections.OnlineOptions{UpToLog: true})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { _, err := cp.Replace(runCtx); done <- err }()
	<-reached
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted rebuild = %v", err)
	}
	if n := count(t, e.pool, `SELECT count(*) FROM worded`); n != 1 || index() != 1 {
		t.Fatalf("after an interrupted rebuild the live table has %d rows and %d of its index", n, index())
	}

	cp, err = projections.NewCopy(ctx, e.pool, e.notifier, worded{}, projections.OnlineOptions{UpToLog: true})
	if err != nil {
		t.Fatal(err)
	}
	at, err := cp.Replace(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if at != last {
		t.Fatalf("rebuilt up to %s, want the last event %s", at, last)
	}
	if n := count(t, e.pool, `SELECT count(*) FROM worded w JOIN events USING (event_id) WHERE w.words @@ to_tsquery('simple', events.stream_id)`); n != 150 {
		t.Fatalf("rebuilt table holds %d of the log's 150 events", n)
	}
	if n := count(t, e.pool, `SELECT count(*) FROM worded`); n != 150 || index() != 1 {
		t.Fatalf("rebuilt table has %d rows and %d of its index", n, index())
	}
	st, err := projections.States(ctx, e.pool, []string{"worded"})
	if err != nil {
		t.Fatal(err)
	}
	if st[0].Checkpoint != last || st[0].State != projections.StateRunning || st[0].LastError != "" {
		t.Fatalf("after the rebuild: %+v", st[0])
	}
}
