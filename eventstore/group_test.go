package eventstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/oklog/ulid/v2"

	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/internal/testwait"
)

// The group commit tests hold the only batch slot with an append that
// waits for a stream lock taken elsewhere, queue further appends behind
// it, and release the lock: the queued appends are then one batch.

type stalled struct {
	t       *testing.T
	s       *Store
	release func()
	done    chan error
}

// stall starts an append to stream "stall" that waits for its lock until
// release is called, and waits until that append holds the store's one
// batch slot.
func stall(t *testing.T, s *Store, pool *pgxpool.Pool) *stalled {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('stall', 0))`); err != nil {
		t.Fatal(err)
	}
	st := &stalled{t: t, s: s, done: make(chan error, 1)}
	var once sync.Once
	st.release = func() {
		once.Do(func() {
			if err := tx.Commit(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(st.release)
	go func() {
		_, err := s.Append(ctx, Stream{ID: "stall", Type: "test"}, Any(), event(`{}`))
		st.done <- err
	}()
	waitGroup(t, s, func(g *group) bool { return g.writing["stall"] < 0 })
	return st
}

// queued waits until n appends wait in the queue.
func (st *stalled) queued(n int) {
	st.t.Helper()
	waitGroup(st.t, st.s, func(g *group) bool { return len(g.queue) == n })
}

func waitGroup(t *testing.T, s *Store, cond func(*group) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.group.mu.Lock()
		ok := cond(s.group)
		s.group.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the group of appends never reached the expected state")
		}
		time.Sleep(time.Millisecond)
	}
}

func event(data string) Event { return Event{Type: "t", Data: json.RawMessage(data)} }

func groupStore(t *testing.T) (*Store, *pgxpool.Pool) {
	t.Helper()
	pool := testdb.Pool(t, testdb.New(t))
	return New(pool, WithGroupCommit(1)), pool
}

type outcome struct {
	res []AppendResult
	err error
}

// launch runs append in a goroutine and returns where its outcome arrives.
func launch(f func() ([]AppendResult, error)) chan outcome {
	c := make(chan outcome, 1)
	go func() {
		res, err := f()
		c <- outcome{res, err}
	}()
	return c
}

// appendAsync appends e to stream id (type "test") at exp, on a goroutine.
func appendAsync(ctx context.Context, s *Store, id string, exp Expected, e Event) chan outcome {
	return launch(func() ([]AppendResult, error) {
		return s.AppendMulti(ctx, StreamAppend{Stream: Stream{ID: id, Type: "test"}, Expected: exp, Events: []Event{e}})
	})
}

// guardedAsync appends to stream guard+"-w", guarded by stream guard at
// version at, on a goroutine.
func guardedAsync(ctx context.Context, s *Store, guard string, at int) chan outcome {
	return launch(func() ([]AppendResult, error) {
		return s.AppendMulti(ctx,
			StreamAppend{Stream: Stream{ID: guard, Type: "test"}, Expected: Exactly(at)},
			StreamAppend{Stream: Stream{ID: guard + "-w", Type: "test"}, Expected: Any(), Events: []Event{event(`{}`)}})
	})
}

func TestGroupCommitDecidesEachAppendAlone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, pool := groupStore(t)
	for _, id := range []string{"conflict", "guard-stale", "guard-ok"} {
		if _, err := s.Append(ctx, Stream{ID: id, Type: "test"}, NoStream(), event(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Append(ctx, Stream{ID: "typed", Type: "other"}, NoStream(), event(`{}`)); err != nil {
		t.Fatal(err)
	}
	st := stall(t, s, pool)

	var good []chan outcome
	for i := range 5 {
		good = append(good, appendAsync(ctx, s, fmt.Sprintf("new-%d", i), NoStream(), event(`{}`)))
	}
	good = append(good, guardedAsync(ctx, s, "guard-ok", 1))
	conflict := appendAsync(ctx, s, "conflict", Exactly(5), event(`{}`))
	staleGuard := guardedAsync(ctx, s, "guard-stale", 3)
	wrongType := appendAsync(ctx, s, "typed", Any(), event(`{}`))
	st.queued(9)
	st.release()
	if err := <-st.done; err != nil {
		t.Fatal(err)
	}

	txids := map[uint64]bool{}
	for i, c := range good {
		o := <-c
		if o.err != nil {
			t.Fatalf("append %d: %v", i, o.err)
		}
		last := o.res[len(o.res)-1]
		if last.Version != 1 || len(last.Events) != 1 {
			t.Fatalf("append %d: %+v", i, o.res)
		}
		txids[last.Last().Cursor.TransactionID] = true
	}
	if len(txids) != 1 {
		t.Fatalf("the queued appends took %d transactions, want one batch", len(txids))
	}
	var ce *ConflictError
	if o := <-conflict; !errors.As(o.err, &ce) || ce.Current != 1 {
		t.Fatalf("stale version: %v, want a conflict at 1", o.err)
	}
	if o := <-staleGuard; !errors.As(o.err, &ce) || ce.StreamID != "guard-stale" {
		t.Fatalf("stale guard: %v, want a conflict on the guard", o.err)
	}
	if o := <-wrongType; !errors.Is(o.err, ErrStreamType) {
		t.Fatalf("wrong stream type: %v, want ErrStreamType", o.err)
	}
	for id, want := range map[string]int{"conflict": 1, "guard-stale-w": 0, "guard-ok-w": 1, "typed": 1, "new-3": 1} {
		if got, err := s.ReadStream(ctx, id, 1); err != nil || len(got) != want {
			t.Fatalf("stream %s holds %d events (%v), want %d", id, len(got), err, want)
		}
	}
	if v, err := s.Verify(ctx, "", nil); err != nil || !v.Intact() {
		t.Fatalf("hash chain after a batch: %+v, %v", v, err)
	}
}

// An event Postgres refuses fails its own append only, and the batch's
// failure is logged.
func TestGroupCommitRefusedEventFailsAlone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t, testdb.New(t))
	var logged bytes.Buffer
	s := New(pool, WithGroupCommit(1), WithLogger(slog.New(slog.NewTextHandler(&logged, nil))))
	st := stall(t, s, pool)
	var good []chan outcome
	for i := range 3 {
		good = append(good, appendAsync(ctx, s, fmt.Sprintf("s-%d", i), NoStream(), event(`{}`)))
	}
	// Valid JSON that jsonb refuses.
	bad := appendAsync(ctx, s, "bad", NoStream(), event(`{"a":"\u0000"}`))
	st.queued(4)
	st.release()
	for i, c := range good {
		if o := <-c; o.err != nil {
			t.Fatalf("append %d: %v", i, o.err)
		}
	}
	if o := <-bad; o.err == nil || errors.Is(o.err, ErrConflict) {
		t.Fatalf("refused event: %v, want Postgres's refusal", o.err)
	}
	if got, _ := s.ReadStream(ctx, "bad", 1); len(got) != 0 {
		t.Fatal("the refused event was written")
	}
	if !strings.Contains(logged.String(), "a batch of appends failed") {
		t.Fatalf("log: %q, want the failed batch", logged.String())
	}
}

// An append whose caller gives up while it waits for a batch is never
// written.
func TestGroupCommitCancelledWhileQueued(t *testing.T) {
	t.Parallel()
	s, pool := groupStore(t)
	st := stall(t, s, pool)
	ctx, cancel := context.WithCancel(context.Background())
	c := appendAsync(ctx, s, "gave-up", NoStream(), event(`{}`))
	st.queued(1)
	cancel()
	if o := <-c; !errors.Is(o.err, context.Canceled) {
		t.Fatalf("cancelled append: %v", o.err)
	}
	st.queued(0)
	st.release()
	if err := <-st.done; err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ReadStream(context.Background(), "gave-up", 1); len(got) != 0 {
		t.Fatal("an append given up while queued was written")
	}
}

// An append whose caller gives up while its batch is being written hears
// how the batch ended: the append is written, so the caller must not be
// told it failed (a client would send it again).
func TestGroupCommitCancelledWhileWritten(t *testing.T) {
	t.Parallel()
	s, pool := groupStore(t)
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('busy', 0))`); err != nil {
		t.Fatal(err)
	}
	callerCtx, cancel := context.WithCancel(ctx)
	c := appendAsync(callerCtx, s, "busy", NoStream(), event(`{}`))
	waitGroup(t, s, func(g *group) bool { return g.writing["busy"] < 0 }) // its batch waits for the lock
	cancel()
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	o := <-c
	got, _ := s.ReadStream(ctx, "busy", 1)
	if len(got) != 1 {
		t.Fatalf("%d events written", len(got))
	}
	if o.err != nil || len(o.res) != 1 || o.res[0].Version != 1 {
		t.Fatalf("the caller was told %v, %+v; the append was written", o.err, o.res)
	}
}

// An append made on its own (no group commit) whose caller gives up once
// it was sent is seen through: the caller hears that it was written.
func TestDirectAppendCancelledWhileWritten(t *testing.T) {
	t.Parallel()
	pool := testdb.Pool(t, testdb.New(t))
	s := New(pool, WithGroupCommit(0))
	holder := lockStream(t, pool, "direct")
	callerCtx, cancel := context.WithCancel(context.Background())
	c := appendAsync(callerCtx, s, "direct", NoStream(), event(`{}`))
	waitForLockWaiter(t, pool) // sent, and waiting for the lock
	cancel()
	if err := holder.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	o := <-c
	got, _ := s.ReadStream(context.Background(), "direct", 1)
	if o.err != nil || len(got) != 1 {
		t.Fatalf("the caller was told %v; %d events written", o.err, len(got))
	}
}

// Many appenders, each to its own stream and all to one shared stream,
// through batches: every append lands once, versions stay gapless and the
// hash chains hold.
func TestGroupCommitUnderLoad(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t, testdb.New(t))
	s := New(pool) // the default number of batches
	const writers, rounds = 24, 30
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				own := StreamAppend{Stream: Stream{ID: fmt.Sprintf("own-%d", w), Type: "test"}, Expected: Exactly(r), Events: []Event{event(`{}`)}}
				if r%3 == 0 {
					_, err := s.AppendMulti(ctx, own, StreamAppend{Stream: Stream{ID: "shared", Type: "test"}, Expected: Any(), Events: []Event{event(`{}`)}})
					if err != nil {
						errs <- err
						return
					}
					continue
				}
				if _, err := s.AppendMulti(ctx, own); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	shared, err := s.ReadStream(ctx, "shared", 1)
	if err != nil || len(shared) != writers*rounds/3 {
		t.Fatalf("shared stream: %d events (%v), want %d", len(shared), err, writers*rounds/3)
	}
	for i, e := range shared {
		if e.Version != i+1 {
			t.Fatalf("shared stream: event %d has version %d", i, e.Version)
		}
	}
	v, err := s.Verify(ctx, "", nil)
	if err != nil || !v.Intact() || v.Events != writers*rounds+writers*rounds/3 {
		t.Fatalf("log after the load: %+v, %v", v, err)
	}
}

// lockStream holds stream's advisory lock in a transaction of its own, as
// a writer of another process does while it appends; the returned
// transaction commits or rolls back to let go.
func lockStream(t *testing.T, pool *pgxpool.Pool, stream string) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, stream); err != nil {
		t.Fatal(err)
	}
	return tx
}

// waitForLockWaiter waits until some session of the test's database waits
// for an advisory lock.
func waitForLockWaiter(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	testwait.Eventually(t, 10*time.Second, "a session waits for a stream lock", func() (waiting bool, err error) {
		err = pool.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))`).Scan(&waiting)
		return waiting, err
	})
}

// A writer of another process that holds a guarded stream's lock and
// moves the stream while a batch waits for that lock fails the guard: the
// batch reads the streams only once it holds their locks.
func TestGroupCommitGuardSeesWhatTheLockHolderWrote(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, pool := groupStore(t)
	if _, err := s.Append(ctx, Stream{ID: "g", Type: "test"}, NoStream(), event(`{}`)); err != nil {
		t.Fatal(err)
	}
	st := stall(t, s, pool)
	guarded := guardedAsync(ctx, s, "g", 1)
	other := appendAsync(ctx, s, "b", NoStream(), event(`{}`))
	st.queued(2)
	holder := lockStream(t, pool, "g")
	st.release()
	if err := <-st.done; err != nil {
		t.Fatal(err)
	}
	waitForLockWaiter(t, pool) // the batch of both appends waits for g
	if _, err := holder.Exec(ctx, `INSERT INTO events (event_id, stream_id, stream_type, version, event_type, data, metadata, hash)
		VALUES ($1, 'g', 'test', 2, 't', '{}', '{}', '\x00')`, ulid.Make().String()); err != nil {
		t.Fatal(err)
	}
	if err := holder.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var ce *ConflictError
	if o := <-guarded; !errors.As(o.err, &ce) || ce.StreamID != "g" || ce.Current != 2 {
		t.Fatalf("guard of a stream moved while the batch waited for it: %+v, %v; want a conflict at 2", o.res, o.err)
	}
	if o := <-other; o.err != nil {
		t.Fatal(o.err)
	}
	if got, _ := s.ReadStream(ctx, "g-w", 1); len(got) != 0 {
		t.Fatal("the guarded write went through")
	}
}

// Two appends of a batch with the same event id on different streams:
// the one written gets its result, the other is refused, not handed it.
func TestGroupCommitSameEventIDInTwoAppends(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, pool := groupStore(t)
	if _, err := s.Append(ctx, Stream{ID: "a", Type: "test"}, NoStream(), event(`{}`)); err != nil {
		t.Fatal(err)
	}
	st := stall(t, s, pool)
	id := ulid.Make().String()
	e := Event{ID: id, Type: "t", Data: json.RawMessage(`{}`)}
	stale := appendAsync(ctx, s, "a", Exactly(5), e)
	st.queued(1)
	fresh := appendAsync(ctx, s, "b", NoStream(), e)
	st.queued(2)
	st.release()
	if o := <-fresh; o.err != nil || o.res[0].StreamID != "b" {
		t.Fatalf("append written: %+v, %v", o.res, o.err)
	}
	if o := <-stale; !errors.Is(o.err, ErrEventIDReused) {
		t.Fatalf("append left out, whose event id the other took: %+v, %v; want ErrEventIDReused", o.res, o.err)
	}
	if got, _ := s.ReadStream(ctx, "a", 1); len(got) != 1 {
		t.Fatalf("stream a holds %d events, want 1", len(got))
	}
}

// A caller whose context ends while its append's batch waits for a lock
// held elsewhere returns once outcomeWait is over (told that the append
// may yet be written, or that its statement was cut short then).
func TestGroupCommitCallerReturnsWhenItGivesUp(t *testing.T) {
	t.Parallel()
	s, pool := groupStore(t)
	s.outcomeWait = 200 * time.Millisecond
	holder := lockStream(t, pool, "held")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	c := appendAsync(ctx, s, "held", Any(), event(`{}`))
	select {
	case o := <-c:
		if !errors.Is(o.err, context.DeadlineExceeded) {
			t.Fatalf("append behind a held lock: %v, want the deadline", o.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the caller still waits for a lock held elsewhere, long after its deadline")
	}
	if err := holder.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// An append whose statements run past the store's append limit (here,
// waiting for a lock held elsewhere) is cut short and told its outcome is
// unknown, also with its caller still waiting, grouped or on its own: no
// append started earlier than the limit commits later.
func TestAppendLimitCutsAStuckAppend(t *testing.T) {
	t.Parallel()
	pool := testdb.Pool(t, testdb.New(t))
	for _, s := range []*Store{New(pool, WithGroupCommit(1)), New(pool, WithGroupCommit(0))} {
		s.appendLimit = 300 * time.Millisecond
		holder := lockStream(t, pool, "stuck")
		start := time.Now()
		_, err := s.Append(context.Background(), Stream{ID: "stuck", Type: "test"}, Any(), event(`{}`))
		if !errors.Is(err, ErrOutcomeUnknown) || time.Since(start) > 20*time.Second {
			t.Fatalf("append behind a held lock: %v after %s", err, time.Since(start))
		}
		if err := holder.Commit(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.ReadStream(context.Background(), "stuck", 1); len(got) != 0 {
			t.Fatalf("the cut append was written: %d events", len(got))
		}
	}
}
