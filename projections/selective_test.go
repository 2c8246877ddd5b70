package projections_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/internal/testwait"
	"github.com/arq-memory/arq/projections"
)

// picky applies only events of type "wanted" and says so (Selective). The
// first time it meets failOnce it fails, dooming its batch, which is then
// replayed event by event.
type picky struct {
	name     string
	failOnce *atomic.Bool
	handed   *atomic.Int64 // events of other types Apply was handed
}

func (p picky) Name() string         { return p.name }
func (p picky) Tables() []string     { return []string{p.name} }
func (p picky) EventTypes() []string { return []string{"wanted"} }
func (p picky) Apply(_ context.Context, tx projections.Tx, e eventstore.Recorded) error {
	if e.Type != "wanted" {
		p.handed.Add(1)
		return nil
	}
	if p.failOnce != nil && e.Version == 21 && p.failOnce.CompareAndSwap(false, true) {
		tx.Exec(`SELECT 1/0`)
	}
	tx.Exec(`INSERT INTO `+p.name+` (event_id, stream_id, version) VALUES ($1, $2, $3)`, e.EventID, e.StreamID, e.Version)
	return nil
}

// appendMixed appends n events to stream s, every seventh of type
// "wanted", the last of another type; it returns the last one's cursor.
func (e *env) appendMixed(t *testing.T, s string, n int) eventstore.Cursor {
	t.Helper()
	var last eventstore.Cursor
	for i := 1; i <= n; i++ {
		typ := "tick"
		if i%7 == 0 && i != n {
			typ = "wanted"
		}
		res, err := e.store.Append(context.Background(), eventstore.Stream{ID: s, Type: "test"}, eventstore.Any(),
			eventstore.Event{Type: typ, Data: []byte(fmt.Sprintf(`{"i":%d}`, i))})
		if err != nil {
			t.Fatal(err)
		}
		last = res.Last().Cursor
	}
	return last
}

// A Selective projection is handed only its own types (and a marker per
// batch), yet its checkpoint moves over every event, up to the last one
// readable and up to an Until bound exactly: waiters, status and online
// rebuilds see what they would without the selection. A failed batch is
// replayed in careful mode with the same selection, each event once.
func TestSelectiveProjectionMovesItsCheckpointOverSkippedEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	createApplied(t, e.pool, "picky")
	createApplied(t, e.pool, "bounded")
	e.appendMixed(t, "a", 60)
	mid := e.appendMixed(t, "b", 45)
	head := e.appendMixed(t, "c", 100)

	var handed, boundedHanded atomic.Int64
	cfg := projections.Config{BatchSize: 4, CarefulBatchSize: 3, ScanWindow: 9}
	eng := e.runEngine(t, cfg, picky{name: "picky", failOnce: new(atomic.Bool), handed: &handed})
	bcfg := cfg
	bcfg.Until = func() eventstore.Cursor { return mid }
	e.startWith(t, bcfg, picky{name: "bounded", handed: &boundedHanded})

	w := projections.NewWaiter(e.pool, []string{"picky"}, eng.Committed())
	wait := func(c eventstore.Cursor) {
		t.Helper()
		wctx, stop := context.WithTimeout(ctx, 20*time.Second)
		defer stop()
		if err := w.Wait(wctx, c); err != nil {
			t.Fatalf("waiting for %s: %v", c, err)
		}
	}
	wait(head)
	same := func(table, upTo string) {
		t.Helper()
		if n := count(t, e.pool, `SELECT count(*) FROM (
			(SELECT event_id, stream_id, version FROM events WHERE event_type = 'wanted'`+upTo+` EXCEPT SELECT * FROM `+table+`)
			UNION ALL (SELECT * FROM `+table+` EXCEPT SELECT event_id, stream_id, version FROM events WHERE event_type = 'wanted'`+upTo+`)) d`); n != 0 {
			t.Fatalf("%s differs from the log's wanted events in %d rows", table, n)
		}
	}
	same("picky", "")
	st, err := projections.States(ctx, e.pool, []string{"picky"})
	if err != nil {
		t.Fatal(err)
	}
	if st[0].Checkpoint != head {
		t.Fatalf("checkpoint %s, want the last event %s", st[0].Checkpoint, head)
	}
	if n := handed.Load(); n >= 205-28 {
		t.Errorf("Apply was handed %d events of other types: none was skipped", n)
	}

	// Only skipped types arrive: the checkpoint still follows them.
	more := e.appendMixed(t, "d", 5)
	wait(more)

	testwait.Eventually(t, 20*time.Second, "bounded projection reaches its bound", func() (bool, error) {
		st, err := projections.States(ctx, e.pool, []string{"bounded"})
		return err == nil && st[0].Checkpoint == mid, err
	})
	same("bounded", fmt.Sprintf(` AND (transaction_id, position) <= ('%d'::xid8, %d)`, mid.TransactionID, mid.Position))
}
