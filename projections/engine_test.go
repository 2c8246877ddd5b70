package projections_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/oklog/ulid/v2"

	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/internal/testwait"
	"github.com/arq-memory/arq/projections"
)

type env struct {
	pool *pgxpool.Pool
	// owner connects as the database's owner, a superuser, which may end
	// the backends of the projector (whose login is the superuser too).
	owner    *pgxpool.Pool
	store    *eventstore.Store
	notifier *eventstore.Notifier
}

func newEnv(t *testing.T) *env { return newEnvTB(t) }

func newEnvTB(t testing.TB) *env {
	t.Helper()
	url := testdb.New(t)
	pool := testdb.Pool(t, url)
	n := eventstore.NewNotifier(pool, quietLog())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return &env{pool: pool, owner: testdb.OwnerPool(t, url), store: eventstore.New(pool, eventstore.WithAppendHook(n.Notify)), notifier: n}
}

func quietLog() *slog.Logger {
	if os.Getenv("ARQ_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// runEngine runs an engine of ps until the test ends and returns it.
func (e *env) runEngine(t *testing.T, cfg projections.Config, ps ...projections.Projection) *projections.Engine {
	t.Helper()
	eng, _ := e.launch(t, cfg, ps...)
	return eng
}

// gatedSlowpoke runs streams and a projection "slowpoke" that applies
// nothing until release is closed, and appends one event for them.
func (e *env) gatedSlowpoke(t *testing.T) (release chan struct{}, eng *projections.Engine, res eventstore.AppendResult) {
	t.Helper()
	createApplied(t, e.pool, "slowpoke")
	release = make(chan struct{})
	eng = e.runEngine(t, projections.Config{}, projections.Streams{}, applied{name: "slowpoke", block: gateOn(release)})
	res, err := e.store.Append(context.Background(), eventstore.Stream{ID: "w", Type: "test"}, eventstore.Any(), eventstore.Event{Type: "x"})
	if err != nil {
		t.Fatal(err)
	}
	return release, eng, res
}

// gateOn blocks an Apply until release is closed.
func gateOn(release <-chan struct{}) func(context.Context, projections.Tx, eventstore.Recorded) error {
	return func(ctx context.Context, _ projections.Tx, _ eventstore.Recorded) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// start runs an engine over ps until the returned stop is called (or the
// test ends).
func (e *env) start(t *testing.T, ps ...projections.Projection) (stop func()) {
	t.Helper()
	return e.startWith(t, projections.Config{}, ps...)
}

func (e *env) startWith(t *testing.T, cfg projections.Config, ps ...projections.Projection) (stop func()) {
	t.Helper()
	_, stop = e.launch(t, cfg, ps...)
	return stop
}

// launch runs an engine of ps until stop is called or the test ends.
func (e *env) launch(t *testing.T, cfg projections.Config, ps ...projections.Projection) (eng *projections.Engine, stop func()) {
	t.Helper()
	eng, err := projections.NewEngine(e.pool, e.notifier, ps, cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("engine: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("engine did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return eng, stop
}

func (e *env) appendN(t *testing.T, streams, perStream int) {
	t.Helper()
	for i := 0; i < perStream; i++ {
		for s := 0; s < streams; s++ {
			_, err := e.store.Append(context.Background(), eventstore.Stream{ID: fmt.Sprintf("s-%d", s), Type: "test"},
				eventstore.Any(), eventstore.Event{Type: "tick", Data: []byte(fmt.Sprintf(`{"i":%d}`, i))})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
}

// catalogMatchesLog checks the stream catalog against the log itself: each
// stream's row must say exactly what its events say, or an event was missed
// or applied twice.
func catalogMatchesLog(ctx context.Context, pool *pgxpool.Pool) (bool, error) {
	var diff int
	err := pool.QueryRow(ctx, `SELECT count(*) FROM (
		(SELECT stream_id, stream_type, max(version), count(*)::int, min(position), max(position) FROM events GROUP BY 1, 2
		 EXCEPT SELECT stream_id, stream_type, version, event_count, first_position, last_position FROM streams)
		UNION ALL
		(SELECT stream_id, stream_type, version, event_count, first_position, last_position FROM streams
		 EXCEPT SELECT stream_id, stream_type, max(version), count(*)::int, min(position), max(position) FROM events GROUP BY 1, 2)
	) d`).Scan(&diff)
	return diff == 0, err
}

func TestEngineBuildsCatalog(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.appendN(t, 5, 20)
	e.start(t, projections.Streams{})
	e.appendN(t, 7, 10)
	testwait.Eventually(t, 20*time.Second, "catalog matches log", func() (bool, error) {
		var n int
		if err := e.pool.QueryRow(ctx, `SELECT coalesce(sum(event_count), 0) FROM streams`).Scan(&n); err != nil || n < 170 {
			return false, err
		}
		return catalogMatchesLog(ctx, e.pool)
	})
	st, err := projections.Statuses(ctx, e.pool, []string{"streams"})
	if err != nil {
		t.Fatal(err)
	}
	if st[0].State != projections.StateRunning || st[0].Behind != 0 || st[0].Position == 0 {
		t.Fatalf("status = %+v", st[0])
	}
}

// An idle projector learns of a new event from the notifier: with its
// safety poll an hour away, nothing else could bring the event in time.
func TestIdleProjectorWakesOnAppend(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	createApplied(t, e.pool, "eager")
	e.startWith(t, projections.Config{IdlePoll: time.Hour}, applied{name: "eager"})
	for i := 1; i <= 3; i++ {
		e.appendN(t, 1, 1)
		testwait.Eventually(t, 20*time.Second, "event applied", func() (bool, error) {
			return count(t, e.pool, `SELECT count(*) FROM eager`) == i, nil
		})
	}
}

// applied records every event it sees, refusing a second application of
// one event (primary key), so exactly-once shows in its table.
type applied struct {
	name   string
	failOn string // event type that always fails
	block  func(ctx context.Context, tx projections.Tx, e eventstore.Recorded) error
}

func (a applied) Name() string     { return a.name }
func (a applied) Tables() []string { return []string{a.name} }
func (a applied) Apply(ctx context.Context, tx projections.Tx, e eventstore.Recorded) error {
	if a.block != nil {
		if err := a.block(ctx, tx, e); err != nil {
			return err
		}
	}
	tx.Exec(`INSERT INTO `+a.name+` (event_id, stream_id, version) VALUES ($1, $2, $3)`, e.EventID, e.StreamID, e.Version)
	if e.Type == a.failOn {
		// The write above is queued; this one fails, and neither may stay.
		tx.Exec(`SELECT 1/0`)
	}
	return nil
}

func createApplied(t *testing.T, pool *pgxpool.Pool, name string) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `CREATE TABLE `+name+` (event_id text PRIMARY KEY, stream_id text, version int)`)
	if err != nil {
		t.Fatal(err)
	}
}

func count(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Transaction A takes its position, B takes a later one and commits, then A
// commits: a running projector applies both and does not skip A.
func TestProjectorAppliesLateCommit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	createApplied(t, e.pool, "seen")
	e.start(t, applied{name: "seen"}, projections.Streams{})

	txA, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer txA.Rollback(ctx)
	idA := ulid.Make().String()
	if _, err := txA.Exec(ctx, `INSERT INTO events (event_id, stream_id, stream_type, version, event_type, data, metadata, hash) VALUES ($1, 'a', 'test', 1, 'x', '{}', '{}', '\x00')`, idA); err != nil {
		t.Fatal(err)
	}
	resB, err := e.store.Append(ctx, eventstore.Stream{ID: "b", Type: "test"}, eventstore.Any(), eventstore.Event{Type: "x"})
	if err != nil {
		t.Fatal(err)
	}
	var posA int64
	if err := txA.QueryRow(ctx, `SELECT position FROM events WHERE event_id = $1`, idA).Scan(&posA); err != nil {
		t.Fatal(err)
	}
	if posA >= resB.Last().Cursor.Position {
		t.Fatalf("A (%d) must take its position before B (%d)", posA, resB.Last().Cursor.Position)
	}
	// B is committed but hidden behind A. Give the projector a window in
	// which applying B first would skip A for good, and check it did not.
	time.Sleep(100 * time.Millisecond)
	if n := count(t, e.pool, `SELECT count(*) FROM seen`); n != 0 {
		t.Fatalf("projector applied %d events while A was still open", n)
	}
	if err := txA.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	e.notifier.Notify()
	testwait.Eventually(t, 20*time.Second, "both applied", func() (bool, error) {
		return count(t, e.pool, `SELECT count(*) FROM seen`) == 2, nil
	})
	if n := count(t, e.pool, `SELECT count(*) FROM seen WHERE event_id = $1`, idA); n != 1 {
		t.Fatalf("A applied %d times", n)
	}
}

// A failing event stops its projection at that event, with its error in the
// status and no partial write, while the other projections go on.
func TestFailingEventStopsOnlyItsProjection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	createApplied(t, e.pool, "fragile")
	e.appendN(t, 2, 3)
	bad, err := e.store.Append(ctx, eventstore.Stream{ID: "s-0", Type: "test"}, eventstore.Any(), eventstore.Event{Type: "poison"})
	if err != nil {
		t.Fatal(err)
	}
	e.appendN(t, 2, 3)
	e.start(t, applied{name: "fragile", failOn: "poison"}, projections.Streams{})

	testwait.Eventually(t, 20*time.Second, "fragile stops", func() (bool, error) {
		st, err := projections.Statuses(ctx, e.pool, []string{"fragile"})
		return err == nil && st[0].State == projections.StateStopped, err
	})
	testwait.Eventually(t, 20*time.Second, "streams goes on past the poison event", func() (bool, error) {
		return count(t, e.pool, `SELECT coalesce(sum(event_count), 0) FROM streams`) == 13, nil
	})
	// The stop is recorded before the subscriber commits the events ahead
	// of the poison one: the checkpoint settles just after.
	var st []projections.Status
	testwait.Eventually(t, 20*time.Second, "fragile's checkpoint rests before the poison event", func() (bool, error) {
		var err error
		st, err = projections.Statuses(ctx, e.pool, []string{"fragile", "streams"})
		return err == nil && st[0].Behind == 7, err
	})
	f := st[0]
	if f.FailedEventID != bad.Last().EventID || f.FailedPosition != bad.Last().Cursor.Position || f.LastError == "" {
		t.Fatalf("fragile status = %+v, want stopped at %s", f, bad.Last().EventID)
	}
	if f.Behind != 7 {
		t.Fatalf("fragile is %d events behind, want 7 (the poison event and after)", f.Behind)
	}
	if n := count(t, e.pool, `SELECT count(*) FROM fragile`); n != 6 {
		t.Fatalf("fragile applied %d events, want the 6 before the poison one", n)
	}
	if n := count(t, e.pool, `SELECT count(*) FROM fragile WHERE event_id = $1`, bad.Last().EventID); n != 0 {
		t.Fatal("the failing event left a partial write")
	}
	if st[1].State != projections.StateRunning {
		t.Fatalf("streams status = %+v", st[1])
	}
}

// A projector stopped after an event's write but before its transaction
// commits leaves, after restart, the read model of an uninterrupted run.
func TestCrashBetweenWriteAndCommit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	createApplied(t, e.pool, "crashy")
	e.appendN(t, 3, 10)
	// All 30 visible before the projector starts, so its first batch holds
	// them all (an open transaction elsewhere in the cluster could hide
	// some, and a smaller first batch would commit legitimately).
	testwait.Eventually(t, 20*time.Second, "all events visible", func() (bool, error) {
		got, err := e.store.ReadAll(ctx, eventstore.Start, 100, eventstore.Filter{})
		return len(got) == 30, err
	})

	var crashOnce sync.Once
	crashed := make(chan struct{})
	var victim string
	block := func(ctx context.Context, tx projections.Tx, ev eventstore.Recorded) error {
		// The fifth event of the first batch: four writes are in the
		// transaction already, none committed.
		if ev.StreamID != "s-1" || ev.Version != 2 {
			return nil
		}
		var first bool
		crashOnce.Do(func() { first = true })
		if !first {
			return nil
		}
		if err := tx.QueryRow(ctx, `SELECT pg_backend_pid()::text`).Scan(&victim); err != nil {
			return err
		}
		close(crashed)
		<-ctx.Done() // the process dies here
		return ctx.Err()
	}
	stop := e.start(t, applied{name: "crashy", block: block})
	select {
	case <-crashed:
	case <-time.After(20 * time.Second):
		t.Fatal("projector never reached the crash point")
	}
	if _, err := e.owner.Exec(ctx, `SELECT pg_terminate_backend($1::int)`, victim); err != nil {
		t.Fatal(err)
	}
	stop()
	if n := count(t, e.pool, `SELECT count(*) FROM crashy`); n != 0 {
		t.Fatalf("%d writes of the crashed batch survived", n)
	}

	e.start(t, applied{name: "crashy"})
	testwait.Eventually(t, 20*time.Second, "restarted projector catches up", func() (bool, error) {
		return count(t, e.pool, `SELECT count(*) FROM crashy`) == 30, nil
	})
	if n := count(t, e.pool, `SELECT count(*) FROM events e JOIN crashy c USING (event_id) WHERE c.version = e.version`); n != 30 {
		t.Fatalf("read model differs from the log: %d of 30 rows match", n)
	}
}

func TestRebuildReproducesIncrementalModel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	stop := e.start(t, projections.Streams{})
	e.appendN(t, 10, 15)
	testwait.Eventually(t, 20*time.Second, "incremental catalog complete", func() (bool, error) {
		return count(t, e.pool, `SELECT coalesce(sum(event_count), 0) FROM streams`) == 150, nil
	})
	snapshot := func() string {
		var s string
		if err := e.pool.QueryRow(ctx, `SELECT coalesce(string_agg(format('%s|%s|%s|%s|%s|%s|%s|%s', stream_id, stream_type, version,
			event_count, first_position, last_position, created_at, updated_at), ',' ORDER BY stream_id), '') FROM streams`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := snapshot()

	// The rebuild the CLI runs: a copy built up to the end of the log and
	// switched in. The incremental projector is stopped first, so that
	// nothing but the rebuild writes the catalog.
	stop()
	if _, err := e.pool.Exec(ctx, `UPDATE streams SET event_count = 0`); err != nil {
		t.Fatal(err) // damage that only a rebuild from the log repairs
	}
	cp, err := projections.NewCopy(ctx, e.pool, e.notifier, projections.Streams{}, projections.OnlineOptions{UpToLog: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Replace(ctx); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(); after != before {
		t.Fatalf("rebuild differs:\nbefore %s\nafter  %s", before, after)
	}
}

func TestEngineRefusesBadNames(t *testing.T) {
	t.Parallel()
	for _, ps := range [][]projections.Projection{
		{applied{name: "Bad-Name"}},
		{projections.Streams{}, projections.Streams{}},
	} {
		if _, err := projections.NewEngine(nil, nil, ps, projections.Config{}, quietLog()); err == nil {
			t.Errorf("NewEngine(%v) accepted", ps)
		}
	}
}

func TestWaiterReturnsOnceEveryProjectionReachedTheCursor(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	release, eng, res := e.gatedSlowpoke(t)
	w := projections.NewWaiter(e.pool, []string{"streams", "slowpoke"}, eng.Committed())
	short, stop := context.WithTimeout(ctx, 300*time.Millisecond)
	defer stop()
	if err := w.Wait(short, res.Last().Cursor); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait while slowpoke holds the event = %v, want the deadline", err)
	}
	close(release)
	long, stop2 := context.WithTimeout(ctx, 20*time.Second)
	defer stop2()
	if err := w.Wait(long, res.Last().Cursor); err != nil {
		t.Fatalf("Wait after release: %v", err)
	}
	if n := count(t, e.pool, `SELECT count(*) FROM slowpoke`); n != 1 {
		t.Fatalf("slowpoke applied %d events", n)
	}
}

// halting applies an event (a row keyed by its id) and, the first time,
// holds on until the engine stops: the subscriber then lets go of the
// event unacked while its write is queued.
type halting struct {
	name     string
	applying chan struct{}
	once     *sync.Once
}

func (h halting) Name() string     { return h.name }
func (h halting) Tables() []string { return []string{h.name} }
func (h halting) Apply(ctx context.Context, tx projections.Tx, e eventstore.Recorded) error {
	tx.Exec(`INSERT INTO `+h.name+` (event_id, stream_id, version) VALUES ($1, $2, $3)`, e.EventID, e.StreamID, e.Version)
	first := false
	h.once.Do(func() { first = true })
	if first {
		close(h.applying)
		<-ctx.Done()
	}
	return nil
}

// An engine stopped while an event is being applied leaves neither the
// event's writes nor its checkpoint: the next run applies it once. (The
// subscriber commits the events it acked; the writes of one it let go
// unacked were committed with them, and the next run failed on them.)
func TestStopWhileApplyingAppliesTheEventOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	createApplied(t, e.pool, "halted")
	h := halting{name: "halted", applying: make(chan struct{}), once: &sync.Once{}}
	_, stop := e.launch(t, projections.Config{}, h)
	if _, err := e.store.Append(context.Background(), eventstore.Stream{ID: "w", Type: "test"}, eventstore.Any(), eventstore.Event{Type: "x"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.applying:
	case <-time.After(20 * time.Second):
		t.Fatal("the event was never applied")
	}
	stop()
	// Most often the subscriber lets the event go unacked; it may also see
	// the ack come first (both ready at once) and commit the event with
	// its checkpoint. Either way the row is there exactly when the
	// checkpoint covers the event.
	st, err := projections.Statuses(context.Background(), e.pool, []string{"halted"})
	if err != nil {
		t.Fatal(err)
	}
	if n, covered := count(t, e.pool, `SELECT count(*) FROM halted`), st[0].Behind == 0; n != map[bool]int{true: 1, false: 0}[covered] {
		t.Fatalf("%d rows of the event, its checkpoint covering it: %v", n, covered)
	}
	e.runEngine(t, projections.Config{}, h) // once used up: applies at once
	testwait.Eventually(t, 20*time.Second, "the event applied once by the next run", func() (bool, error) {
		st, err := projections.Statuses(context.Background(), e.pool, []string{"halted"})
		if err != nil || st[0].State != projections.StateRunning {
			return false, fmt.Errorf("status %+v: %v", st, err)
		}
		return st[0].Behind == 0 && count(t, e.pool, `SELECT count(*) FROM halted`) == 1, nil
	})
}

// A projection whose connection dies while it applies an event (the
// server restarted, an operator ended the backend) tries the batch again
// until it goes through, however many times that takes: it never stops
// on such an error, and applies every event once.
func TestDroppedConnectionsNeverStopAProjection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	createApplied(t, e.pool, "dropped")
	e.appendN(t, 2, 3)
	if _, err := e.store.Append(ctx, eventstore.Stream{ID: "s-0", Type: "test"}, eventstore.Any(), eventstore.Event{Type: "cut"}); err != nil {
		t.Fatal(err)
	}
	e.appendN(t, 2, 3)
	const cuts = 6 // more than the attempts an event gets (3)
	var mu sync.Mutex
	done := 0
	cut := func(ctx context.Context, tx projections.Tx, ev eventstore.Recorded) error {
		if ev.Type != "cut" {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		if done == cuts {
			return nil
		}
		done++
		var pid int
		if err := tx.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
			return err
		}
		if _, err := e.owner.Exec(ctx, `SELECT pg_terminate_backend($1, 10000)`, pid); err != nil {
			return err
		}
		var one int
		return tx.QueryRow(ctx, `SELECT 1`).Scan(&one) // the connection is gone
	}
	e.startWith(t, projections.Config{RetryDelay: 5 * time.Millisecond}, applied{name: "dropped", block: cut})

	testwait.Eventually(t, 30*time.Second, "every event applied", func() (bool, error) {
		return count(t, e.pool, `SELECT count(*) FROM dropped`) == 13, nil
	})
	st, err := projections.Statuses(ctx, e.pool, []string{"dropped"})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if st[0].State != projections.StateRunning || done != cuts {
		t.Fatalf("status %+v after %d dropped connections, want running after %d", st[0], done, cuts)
	}
}
