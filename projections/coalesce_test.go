package projections_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/projections"
)

// tally counts each stream's "tick" events through a Coalescer; at a
// "read" event it reads the stream's count, as Apply sees it, and records
// it with a plain write. failOnce dooms the first batch holding the read
// at version failAt, which is then replayed event by event.
type tally struct {
	failOnce *atomic.Bool
	failAt   int
}

func (tally) Name() string     { return "tally" }
func (tally) Tables() []string { return []string{"tally", "tally_seen"} }
func (t tally) Apply(ctx context.Context, tx projections.Tx, e eventstore.Recorded) error {
	if e.Type == "tick" {
		tx.Coalesce("tally", func() projections.Coalescer { return &tallyWrites{} }).(*tallyWrites).add(e.StreamID)
		return nil
	}
	var n int
	if err := tx.QueryRow(ctx, `SELECT coalesce((SELECT n FROM tally WHERE stream_id = $1), 0)`, e.StreamID).Scan(&n); err != nil {
		return err
	}
	tx.Exec(`INSERT INTO tally_seen (event_id, seen) VALUES ($1, $2)`, e.EventID, n)
	if e.Version == t.failAt && t.failOnce.CompareAndSwap(false, true) {
		tx.Exec(`SELECT 1/0`)
	}
	return nil
}

type tallyWrites struct{ streams []string }

func (w *tallyWrites) add(stream string) { w.streams = append(w.streams, stream) }

func (w *tallyWrites) Flush(exec func(sql string, args ...any)) {
	if len(w.streams) == 0 {
		return
	}
	exec(`INSERT INTO tally (stream_id, n) SELECT stream_id, count(*) FROM unnest($1::text[]) AS u (stream_id) GROUP BY 1
		ON CONFLICT (stream_id) DO UPDATE SET n = tally.n + EXCLUDED.n`, w.streams)
	w.streams = nil
}

// Coalesced writes reach the server before every later write and read:
// a read inside Apply sees each earlier event's effect, in batches and
// when a failed batch is replayed event by event; and each event counts
// once.
func TestCoalescedWritesKeepEventOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.pool.Exec(ctx, `CREATE TABLE tally (stream_id text PRIMARY KEY, n int NOT NULL);
		CREATE TABLE tally_seen (event_id text PRIMARY KEY, seen int NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	var last eventstore.Cursor
	for i := 1; i <= 40; i++ {
		for _, s := range []string{"a", "b", "c"} {
			typ := "tick"
			if i%5 == 0 {
				typ = "read"
			}
			res, err := e.store.Append(ctx, eventstore.Stream{ID: s, Type: "test"}, eventstore.Any(),
				eventstore.Event{Type: typ, Data: []byte(fmt.Sprintf(`{"i":%d}`, i))})
			if err != nil {
				t.Fatal(err)
			}
			last = res.Last().Cursor
		}
	}
	eng := e.runEngine(t, projections.Config{BatchSize: 50, CarefulBatchSize: 7}, tally{failOnce: new(atomic.Bool), failAt: 25})
	wctx, stop := context.WithTimeout(ctx, 20*time.Second)
	defer stop()
	if err := projections.NewWaiter(e.pool, []string{"tally"}, eng.Committed()).Wait(wctx, last); err != nil {
		t.Fatal(err)
	}
	// A read at version v follows v-1 events of its stream, v/5 - 1 of
	// them reads.
	if n := count(t, e.pool, `SELECT count(*) FROM events ev JOIN tally_seen s USING (event_id)
		WHERE s.seen = ev.version - ev.version / 5`); n != 24 {
		t.Fatalf("%d of 24 reads saw every earlier event of their stream", n)
	}
	if n := count(t, e.pool, `SELECT count(*) FROM tally WHERE n = 32`); n != 3 {
		t.Fatalf("%d of 3 streams counted 32 ticks", n)
	}
}
