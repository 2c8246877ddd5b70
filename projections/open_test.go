package projections_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/internal/testwait"
	"github.com/arq-memory/arq/projections"
)

// fakeOpener opens events by marking their data opened, after failing its
// first failures calls as an unreachable key store does. It counts its
// calls and the events it was asked to open.
type fakeOpener struct {
	mu       sync.Mutex
	failures int
	calls    int
	events   int
}

func (o *fakeOpener) Open(_ context.Context, events []eventstore.Recorded) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls++
	if o.failures > 0 {
		o.failures--
		return fmt.Errorf("key store: read data keys: %w", &pgconn.PgError{Code: "08006", Message: "connection failure"})
	}
	o.events += len(events)
	for i := range events {
		events[i].Data = json.RawMessage(`{"opened":true}`)
	}
	return nil
}

func (o *fakeOpener) counts() (calls, events int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.calls, o.events
}

// reading records the data of every event it applies.
type reading struct{ name string }

func (r reading) Name() string     { return r.name }
func (r reading) Tables() []string { return []string{r.name} }
func (r reading) Apply(_ context.Context, tx projections.Tx, e eventstore.Recorded) error {
	tx.Exec(`INSERT INTO `+r.name+` (event_id, data) VALUES ($1, $2)`, e.EventID, string(e.Data))
	return nil
}

// A projection gets its events opened, a batch in one call of the opener;
// an opener that fails for a while (the key store is unreachable) holds the
// projection back without stopping it, and nothing unopened is applied.
// The stream catalog, which reads no personal data, is handed events as
// stored.
func TestProjectionsApplyEventsOpened(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.pool.Exec(ctx, `CREATE TABLE opened (event_id text PRIMARY KEY, data text)`); err != nil {
		t.Fatal(err)
	}
	const n = 60
	e.appendN(t, 3, n/3)
	o := &fakeOpener{failures: 5} // more than the attempts an event gets (3)
	e.startWith(t, projections.Config{Opener: o, RetryDelay: 5 * time.Millisecond, BatchSize: 25}, reading{"opened"})
	testwait.Eventually(t, 30*time.Second, "every event applied", func() (bool, error) {
		return count(t, e.pool, `SELECT count(*) FROM opened`) == n, nil
	})
	if c := count(t, e.pool, `SELECT count(*) FROM opened WHERE data <> '{"opened":true}'`); c != 0 {
		t.Errorf("%d events applied unopened", c)
	}
	st, err := projections.Statuses(ctx, e.pool, []string{"opened"})
	if err != nil {
		t.Fatal(err)
	}
	if st[0].State != projections.StateRunning {
		t.Errorf("status %+v after the opener failed for a while, want running", st[0])
	}
	calls, events := o.counts()
	// 60 events in batches of 25 (or the smaller careful ones after a
	// failure): a few calls, never one an event.
	if calls-5 > n/5 || events < n {
		t.Errorf("%d calls of the opener (5 failing) for %d events, %d opened", calls, n, events)
	}

	catalog := &fakeOpener{}
	e.startWith(t, projections.Config{Opener: catalog}, projections.Streams{})
	testwait.Eventually(t, 20*time.Second, "catalog matches log", func() (bool, error) {
		return catalogMatchesLog(ctx, e.pool)
	})
	if calls, _ := catalog.counts(); calls != 0 {
		t.Errorf("the stream catalog had its events opened (%d calls)", calls)
	}
}

// A copy built beside the live tables opens its events too.
func TestCopyAppliesEventsOpened(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.pool.Exec(ctx, `CREATE TABLE copied (event_id text PRIMARY KEY, data text)`); err != nil {
		t.Fatal(err)
	}
	e.appendN(t, 2, 10)
	o := &fakeOpener{}
	cp, err := projections.NewCopy(ctx, e.pool, e.notifier, reading{"copied"}, projections.OnlineOptions{UpToLog: true, Opener: o})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Replace(ctx); err != nil {
		t.Fatal(err)
	}
	if got, unopened := count(t, e.pool, `SELECT count(*) FROM copied`), count(t, e.pool, `SELECT count(*) FROM copied WHERE data <> '{"opened":true}'`); got != 20 || unopened != 0 {
		t.Fatalf("the copy holds %d events, %d of them unopened; want 20 opened", got, unopened)
	}
}
