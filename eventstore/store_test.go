package eventstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/oklog/ulid/v2"

	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/internal/testdb"
)

func newStore(t *testing.T) (*eventstore.Store, *pgxpool.Pool) {
	t.Helper()
	pool := testdb.Pool(t, testdb.New(t))
	return eventstore.New(pool), pool
}

// readAll waits until the log shows at least want events after cur and
// returns them. Transaction ids are shared by every database of the server,
// so another test's open transaction can hold a commit-safe read back for a
// moment: visibility is a condition to wait for, never to expect at once.
func readAll(t *testing.T, s *eventstore.Store, cur eventstore.Cursor, want int, f eventstore.Filter) []eventstore.Recorded {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := s.ReadAll(context.Background(), cur, 10000, f)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) >= want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ev(typ string, data string) eventstore.Event {
	return eventstore.Event{Type: typ, Data: json.RawMessage(data)}
}

func stream(id string) eventstore.Stream { return eventstore.Stream{ID: id, Type: "test"} }

func TestAppendAndReadStream(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newStore(t)

	res, err := s.Append(ctx, stream("s-1"), eventstore.NoStream(),
		ev("a", `{"n":1}`), ev("b", `{"n":2}`))
	if err != nil {
		t.Fatal(err)
	}
	if res.Version != 2 || len(res.Events) != 2 || res.Repeated {
		t.Fatalf("result = %+v, want version 2 with two events", res)
	}
	if _, err := s.Append(ctx, stream("s-1"), eventstore.Exactly(2), ev("c", `{}`)); err != nil {
		t.Fatal(err)
	}
	got, err := s.ReadStream(ctx, "s-1", 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("read %d events, want 3", len(got))
	}
	for i, r := range got {
		if r.Version != i+1 || r.StreamType != "test" || r.Metadata.Tenant != eventstore.DefaultTenant {
			t.Errorf("event %d = %+v", i, r)
		}
	}
	if string(got[0].Data) != `{"n": 1}` {
		t.Errorf("data = %s", got[0].Data)
	}
	from2, err := s.ReadStream(ctx, "s-1", 2)
	if err != nil || len(from2) != 2 || from2[0].Version != 2 {
		t.Fatalf("read from version 2 = %v, %v", from2, err)
	}
}

func TestAppendRecordsMetadata(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newStore(t)
	e := ev("a", `{}`)
	e.Metadata = eventstore.Metadata{CorrelationID: "req-1", CausationID: "cmd-1", Actor: "key:ops", Tenant: "acme"}
	if _, err := s.Append(ctx, stream("m"), eventstore.Any(), e); err != nil {
		t.Fatal(err)
	}
	got, err := s.ReadStream(ctx, "m", 1)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Metadata != e.Metadata {
		t.Fatalf("metadata = %+v, want %+v", got[0].Metadata, e.Metadata)
	}
}

func TestExpectedVersionConflicts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newStore(t)
	if _, err := s.Append(ctx, stream("c"), eventstore.NoStream(), ev("a", `{}`), ev("a", `{}`)); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		expected eventstore.Expected
	}{
		{"no stream", eventstore.NoStream()},
		{"stale", eventstore.Exactly(1)},
		{"ahead", eventstore.Exactly(5)},
	}
	for _, c := range cases {
		_, err := s.Append(ctx, stream("c"), c.expected, ev("x", `{}`))
		var ce *eventstore.ConflictError
		if !errors.As(err, &ce) || !errors.Is(err, eventstore.ErrConflict) {
			t.Fatalf("%s: err = %v, want a conflict", c.name, err)
		}
		if ce.Current != 2 || ce.StreamID != "c" {
			t.Errorf("%s: conflict = %+v, want stream c at 2", c.name, ce)
		}
	}
	got, _ := s.ReadStream(ctx, "c", 1)
	if len(got) != 2 {
		t.Fatalf("conflicting appends wrote: %d events, want 2", len(got))
	}
	if _, err := s.Append(ctx, stream("c"), eventstore.Any(), ev("x", `{}`)); err != nil {
		t.Fatalf("append with any version: %v", err)
	}
}

func TestStreamKeepsItsType(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newStore(t)
	if _, err := s.Append(ctx, stream("t"), eventstore.Any(), ev("a", `{}`)); err != nil {
		t.Fatal(err)
	}
	_, err := s.Append(ctx, eventstore.Stream{ID: "t", Type: "other"}, eventstore.Any(), ev("a", `{}`))
	if !errors.Is(err, eventstore.ErrStreamType) {
		t.Fatalf("err = %v, want ErrStreamType", err)
	}
}

func TestInvalidAppendsWriteNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, pool := newStore(t)
	bad := []struct {
		name   string
		stream eventstore.Stream
		events []eventstore.Event
	}{
		{"no events", stream("i"), nil},
		{"no stream id", eventstore.Stream{Type: "test"}, []eventstore.Event{ev("a", `{}`)}},
		{"no type", stream("i"), []eventstore.Event{ev("", `{}`)}},
		{"bad json", stream("i"), []eventstore.Event{ev("a", `{`)}},
		{"bad id", stream("i"), []eventstore.Event{{ID: "nope", Type: "a"}}},
	}
	for _, b := range bad {
		if _, err := s.Append(ctx, b.stream, eventstore.Any(), b.events...); !errors.Is(err, eventstore.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", b.name, err)
		}
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("invalid appends wrote %d events (%v)", n, err)
	}
}

func TestRepeatedAppendIsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newStore(t)
	e1 := eventstore.Event{ID: ulid.Make().String(), Type: "a"}
	e2 := eventstore.Event{ID: ulid.Make().String(), Type: "b"}
	first, err := s.Append(ctx, stream("r"), eventstore.NoStream(), e1, e2)
	if err != nil {
		t.Fatal(err)
	}
	// The retry's expected version is stale by now: a repeat must still
	// report the original result rather than a conflict.
	again, err := s.Append(ctx, stream("r"), eventstore.NoStream(), e1, e2)
	if err != nil {
		t.Fatalf("repeat: %v", err)
	}
	if !again.Repeated || again.Version != first.Version || len(again.Events) != 2 {
		t.Fatalf("repeat = %+v, want the original %+v", again, first)
	}
	for i := range first.Events {
		if again.Events[i].Cursor != first.Events[i].Cursor || again.Events[i].EventID != first.Events[i].EventID {
			t.Errorf("event %d: repeat %+v, original %+v", i, again.Events[i], first.Events[i])
		}
	}
	_, err = s.Append(ctx, stream("r"), eventstore.Any(), e1, eventstore.Event{ID: ulid.Make().String(), Type: "c"})
	if !errors.Is(err, eventstore.ErrEventIDReused) {
		t.Fatalf("partial repeat: err = %v, want ErrEventIDReused", err)
	}
	if got, _ := s.ReadStream(ctx, "r", 1); len(got) != 2 {
		t.Fatalf("stream has %d events, want 2", len(got))
	}
}

// A guarded append repeated with the same event ids (a retried command
// that guards another stream) reports the original result; an event id
// that another stream holds is no repeat.
func TestRepeatedGuardedAppendIsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newStore(t)
	if _, err := s.Append(ctx, stream("guard"), eventstore.NoStream(), ev("a", `{}`)); err != nil {
		t.Fatal(err)
	}
	e := eventstore.Event{ID: ulid.Make().String(), Type: "w"}
	guarded := func(writeTo string) ([]eventstore.AppendResult, error) {
		return s.AppendMulti(ctx,
			eventstore.StreamAppend{Stream: stream("guard"), Expected: eventstore.Exactly(1)},
			eventstore.StreamAppend{Stream: stream(writeTo), Expected: eventstore.Any(), Events: []eventstore.Event{e}})
	}
	first, err := guarded("w")
	if err != nil {
		t.Fatal(err)
	}
	again, err := guarded("w")
	if err != nil {
		t.Fatalf("repeat: %v", err)
	}
	if !again[1].Repeated || again[1].Last().Cursor != first[1].Last().Cursor || again[0].Version != 1 {
		t.Fatalf("repeat = %+v, want the original %+v", again, first)
	}
	if _, err := guarded("other"); !errors.Is(err, eventstore.ErrEventIDReused) {
		t.Fatalf("the same event id to another stream: %v, want ErrEventIDReused", err)
	}
	if _, err := s.Append(ctx, stream("other"), eventstore.Any(), e); !errors.Is(err, eventstore.ErrEventIDReused) {
		t.Fatalf("the same event id to another stream, unguarded: %v, want ErrEventIDReused", err)
	}
	if got, _ := s.ReadStream(ctx, "w", 1); len(got) != 1 {
		t.Fatalf("stream w holds %d events, want 1", len(got))
	}
}

// Fifty writers append version N+1 to one stream at the same moment: exactly
// one wins each version and the stream stays gapless.
func TestConcurrentAppendersOneWinnerPerVersion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newStore(t)
	const writers, rounds = 50, 20

	for round := 0; round < rounds; round++ {
		var wg sync.WaitGroup
		start := make(chan struct{})
		wins := make(chan int, writers)
		errs := make(chan error, writers)
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				<-start
				_, err := s.Append(ctx, stream("race"), eventstore.Exactly(round), ev("w", fmt.Sprintf(`{"w":%d}`, w)))
				switch {
				case err == nil:
					wins <- w
				case errors.Is(err, eventstore.ErrConflict):
				default:
					errs <- err
				}
			}(w)
		}
		close(start)
		wg.Wait()
		close(wins)
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: %v", round, err)
		}
		if n := len(wins); n != 1 {
			t.Fatalf("round %d: %d winners, want exactly 1", round, n)
		}
	}
	got, err := s.ReadStream(ctx, "race", 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != rounds {
		t.Fatalf("stream has %d events, want %d", len(got), rounds)
	}
	for i, r := range got {
		if r.Version != i+1 {
			t.Fatalf("event %d has version %d: gap or duplicate", i, r.Version)
		}
	}
}

// In a multi-stream append a stream of another type fails the whole
// append, also when it is the second stream and the first could be written.
func TestAppendMultiChecksStreamTypes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newStore(t)
	if _, err := s.Append(ctx, stream("typed"), eventstore.Any(), ev("a", `{}`)); err != nil {
		t.Fatal(err)
	}
	_, err := s.AppendMulti(ctx,
		eventstore.StreamAppend{Stream: stream("first"), Expected: eventstore.Any(), Events: []eventstore.Event{ev("a", `{}`)}},
		eventstore.StreamAppend{Stream: eventstore.Stream{ID: "typed", Type: "other"}, Expected: eventstore.Any(), Events: []eventstore.Event{ev("a", `{}`)}},
	)
	if !errors.Is(err, eventstore.ErrStreamType) {
		t.Fatalf("err = %v, want ErrStreamType", err)
	}
	if got, _ := s.ReadStream(ctx, "first", 1); len(got) != 0 {
		t.Fatal("stream first was written although typed failed its check")
	}
	// A lone writer beside a guard checks its own head.
	_, err = s.AppendMulti(ctx,
		eventstore.StreamAppend{Stream: stream("guard"), Expected: eventstore.Any()},
		eventstore.StreamAppend{Stream: eventstore.Stream{ID: "typed", Type: "other"}, Expected: eventstore.Any(), Events: []eventstore.Event{ev("a", `{}`)}},
	)
	if !errors.Is(err, eventstore.ErrStreamType) {
		t.Fatalf("lone writer of another type: err = %v, want ErrStreamType", err)
	}
	_, err = s.AppendMulti(ctx,
		eventstore.StreamAppend{Stream: stream("guard"), Expected: eventstore.Any()},
		eventstore.StreamAppend{Stream: stream("typed"), Expected: eventstore.Exactly(5), Events: []eventstore.Event{ev("a", `{}`)}},
	)
	var ce *eventstore.ConflictError
	if !errors.As(err, &ce) || ce.StreamID != "typed" || ce.Current != 1 {
		t.Fatalf("lone writer at a stale version: err = %v, want conflict at 1", err)
	}
}

func TestAppendMultiIsAtomic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newStore(t)
	if _, err := s.Append(ctx, stream("b"), eventstore.NoStream(), ev("a", `{}`)); err != nil {
		t.Fatal(err)
	}
	_, err := s.AppendMulti(ctx,
		eventstore.StreamAppend{Stream: stream("a"), Expected: eventstore.NoStream(), Events: []eventstore.Event{ev("a", `{}`)}},
		eventstore.StreamAppend{Stream: stream("b"), Expected: eventstore.NoStream(), Events: []eventstore.Event{ev("a", `{}`)}},
	)
	var ce *eventstore.ConflictError
	if !errors.As(err, &ce) || ce.StreamID != "b" || ce.Current != 1 {
		t.Fatalf("err = %v, want conflict on b at 1", err)
	}
	if got, _ := s.ReadStream(ctx, "a", 1); len(got) != 0 {
		t.Fatalf("stream a was written although b conflicted")
	}
	res, err := s.AppendMulti(ctx,
		eventstore.StreamAppend{Stream: stream("a"), Expected: eventstore.NoStream(), Events: []eventstore.Event{ev("a", `{}`)}},
		eventstore.StreamAppend{Stream: stream("b"), Expected: eventstore.Exactly(1), Events: []eventstore.Event{ev("a", `{}`)}},
	)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Version != 1 || res[1].Version != 2 {
		t.Fatalf("results = %+v", res)
	}
	if res[0].Last().Cursor.TransactionID != res[1].Last().Cursor.TransactionID {
		t.Fatalf("streams written in different transactions")
	}
}

// Writers append to overlapping pairs of streams in one transaction each; in
// the commit-safe read of the log every stream's versions come in order.
func TestPerStreamOrderAcrossMultiStreamAppends(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newStore(t)
	names := []string{"p", "q", "r", "u"}
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, seed))
			for i := 0; i < 25; i++ {
				a, b := rng.IntN(len(names)), rng.IntN(len(names)-1)
				if b >= a {
					b++
				}
				_, err := s.AppendMulti(ctx,
					eventstore.StreamAppend{Stream: stream(names[a]), Expected: eventstore.Any(), Events: []eventstore.Event{ev("x", `{}`)}},
					eventstore.StreamAppend{Stream: stream(names[b]), Expected: eventstore.Any(), Events: []eventstore.Event{ev("x", `{}`)}},
				)
				if err != nil {
					t.Error(err)
					return
				}
			}
		}(uint64(w))
	}
	wg.Wait()
	readAll(t, s, eventstore.Start, 16*25*2, eventstore.Filter{})
	last := map[string]int{}
	n := 0
	for cur := eventstore.Start; ; {
		page, err := s.ReadAll(ctx, cur, 37, eventstore.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, r := range page {
			if r.Version != last[r.StreamID]+1 {
				t.Fatalf("stream %s: version %d follows %d in the log", r.StreamID, r.Version, last[r.StreamID])
			}
			last[r.StreamID] = r.Version
			n++
		}
		cur = page[len(page)-1].Cursor()
	}
	if n != 16*25*2 {
		t.Fatalf("read %d events, want %d", n, 16*25*2)
	}
}

// Transaction A takes its position first and commits last; transaction B
// (with the smaller transaction id) commits in between. A reader tailing
// with the cursor sees both, B first, and never skips A.
func TestReadAllNeverSkipsLateCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, pool := newStore(t)

	txB, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer txB.Rollback(ctx)
	// B takes its transaction id first...
	if _, err := txB.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil {
		t.Fatal(err)
	}
	txA, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer txA.Rollback(ctx)
	// ...A then takes the first position...
	if _, err := txA.Exec(ctx, `INSERT INTO events (event_id, stream_id, stream_type, version, event_type, data, metadata, hash) VALUES ($1, 'a', 'test', 1, 'x', '{}', '{}', '\x00')`, ulid.Make().String()); err != nil {
		t.Fatal(err)
	}
	// ...B the second, and commits.
	if _, err := txB.Exec(ctx, `INSERT INTO events (event_id, stream_id, stream_type, version, event_type, data, metadata, hash) VALUES ($1, 'b', 'test', 1, 'x', '{}', '{}', '\x00')`, ulid.Make().String()); err != nil {
		t.Fatal(err)
	}
	if err := txB.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	first := readAll(t, s, eventstore.Start, 1, eventstore.Filter{})
	if len(first) != 1 || first[0].StreamID != "b" {
		t.Fatalf("before A commits, read %v; want only b", first)
	}
	if err := txA.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	rest := readAll(t, s, first[0].Cursor(), 1, eventstore.Filter{})
	if len(rest) != 1 || rest[0].StreamID != "a" {
		t.Fatalf("after A commits, read %v; want a", rest)
	}
	if rest[0].Position > first[0].Position {
		t.Fatalf("test did not set up a late commit: a at %d, b at %d", rest[0].Position, first[0].Position)
	}
}

func TestReadAllFilters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newStore(t)
	s.Append(ctx, eventstore.Stream{ID: "u1", Type: "user"}, eventstore.Any(), ev("user.registered", `{}`))
	s.Append(ctx, eventstore.Stream{ID: "m1", Type: "memory"}, eventstore.Any(), ev("memory.stored", `{}`), ev("memory.updated", `{}`))
	s.Append(ctx, eventstore.Stream{ID: "l1", Type: "message_log"}, eventstore.Any(),
		ev("message.appended", `{"user_id":"ada","session_id":"s1"}`), ev("message.appended", `{"user_id":"ada","session_id":"s2"}`),
		ev("message.appended", `{"user_id":"bob","session_id":"s1"}`), ev("message.appended", `{"session_id":"s1"}`))
	all := readAll(t, s, eventstore.Start, 7, eventstore.Filter{})
	count := func(f eventstore.Filter) int {
		got, err := s.ReadAll(ctx, eventstore.Start, 100, f)
		if err != nil {
			t.Fatal(err)
		}
		return len(got)
	}
	if n := count(eventstore.Filter{StreamType: "memory"}); n != 2 {
		t.Errorf("stream type filter: %d", n)
	}
	if n := count(eventstore.Filter{StreamID: "u1"}); n != 1 {
		t.Errorf("stream filter: %d", n)
	}
	if n := count(eventstore.Filter{EventTypes: []string{"memory.updated", "user.registered"}}); n != 2 {
		t.Errorf("event type filter: %d", n)
	}
	if n := count(eventstore.Filter{UserID: "ada"}); n != 2 {
		t.Errorf("user filter: %d", n)
	}
	if n := count(eventstore.Filter{SessionID: "s1"}); n != 3 {
		t.Errorf("session filter: %d", n)
	}
	if n := count(eventstore.Filter{UserID: "ada", SessionID: "s1"}); n != 1 {
		t.Errorf("user and session filter: %d", n)
	}
	head, err := s.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if head != all[len(all)-1].Cursor() {
		t.Fatalf("head %v, last event %v", head, all[len(all)-1].Cursor())
	}
}

func TestReadStreamAsOfVersionAndTime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.New(t)
	s := eventstore.New(testdb.Pool(t, url))
	for i := 0; i < 3; i++ {
		if _, err := s.Append(ctx, stream("h"), eventstore.Exactly(i), ev("x", fmt.Sprintf(`{"i":%d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	upTo2, err := s.ReadStreamToVersion(ctx, "h", 2)
	if err != nil || len(upTo2) != 2 {
		t.Fatalf("to version 2: %v %v", upTo2, err)
	}
	// Give the events distinct, known times to read as of.
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	testdb.AsOperator(t, url, "test: known times", func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE events SET recorded_at = $1::timestamptz + (version || ' hours')::interval WHERE stream_id = 'h'`, base)
		return err
	})
	asOf, err := s.ReadStreamAsOf(ctx, "h", base.Add(2*time.Hour+time.Minute))
	if err != nil || len(asOf) != 2 || asOf[1].Version != 2 {
		t.Fatalf("as of 02:01: %v %v", asOf, err)
	}
	// A version that waited for the stream's lock can carry an earlier
	// time than the one before it; a history as of its time stops before
	// the later-timed version instead of skipping it.
	testdb.AsOperator(t, url, "test: a late time", func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE events SET recorded_at = $1::timestamptz + interval '210 minutes' WHERE stream_id = 'h' AND version = 2`, base)
		return err
	})
	asOf, err = s.ReadStreamAsOf(ctx, "h", base.Add(3*time.Hour))
	if err != nil || len(asOf) != 1 {
		t.Fatalf("as of 03:00, with version 2 at 03:30 and 3 at 03:00: %d events (%v), want version 1 alone", len(asOf), err)
	}
	if asOf, err = s.ReadStreamAsOf(ctx, "h", base.Add(210*time.Minute)); err != nil || len(asOf) != 3 {
		t.Fatalf("as of 03:30: %d events (%v), want 3", len(asOf), err)
	}
}

func TestCursorRoundTrip(t *testing.T) {
	t.Parallel()
	c := eventstore.Cursor{TransactionID: 981, Position: 12}
	got, err := eventstore.ParseCursor(c.String())
	if err != nil || got != c {
		t.Fatalf("parse %q = %v, %v", c.String(), got, err)
	}
	for _, bad := range []string{"12", "a.b", "1.-1", "1."} {
		if _, err := eventstore.ParseCursor(bad); !errors.Is(err, eventstore.ErrBadCursor) {
			t.Errorf("parse %q: err = %v", bad, err)
		}
	}
	if !(eventstore.Cursor{1, 9}).Less(eventstore.Cursor{2, 1}) || (eventstore.Cursor{2, 1}).Less(eventstore.Cursor{1, 9}) {
		t.Fatal("Less orders by transaction first")
	}
}

func TestGuardStreamMustBeAtExpectedVersion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newStore(t)
	if _, err := s.Append(ctx, stream("g"), eventstore.NoStream(), ev("a", `{}`)); err != nil {
		t.Fatal(err)
	}
	guarded := func(at int) error {
		_, err := s.AppendMulti(ctx,
			eventstore.StreamAppend{Stream: stream("g"), Expected: eventstore.Exactly(at)},
			eventstore.StreamAppend{Stream: stream("w"), Expected: eventstore.Any(), Events: []eventstore.Event{ev("x", `{}`)}},
		)
		return err
	}
	var ce *eventstore.ConflictError
	if err := guarded(2); !errors.As(err, &ce) || ce.StreamID != "g" || ce.Current != 1 {
		t.Fatalf("stale guard: err = %v, want conflict on g at 1", err)
	}
	if got, _ := s.ReadStream(ctx, "w", 1); len(got) != 0 {
		t.Fatal("a failed guard let the write through")
	}
	if err := guarded(1); err != nil {
		t.Fatalf("guard at the right version: %v", err)
	}
	if got, _ := s.ReadStream(ctx, "g", 1); len(got) != 1 {
		t.Fatal("a guard wrote to its stream")
	}
	if _, err := s.AppendMulti(ctx, eventstore.StreamAppend{Stream: stream("g"), Expected: eventstore.Exactly(1)},
		eventstore.StreamAppend{Stream: stream("h"), Expected: eventstore.Any()}); !errors.Is(err, eventstore.ErrInvalid) {
		t.Fatalf("guards only: err = %v, want ErrInvalid", err)
	}
}

// Appends of one event and of several chain each event to the one before
// it; a changed event breaks the chain at that event, and only there.
func TestHashChain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.New(t)
	s := eventstore.New(testdb.Pool(t, url))
	if _, err := s.Append(ctx, stream("c"), eventstore.NoStream(), ev("a", `{"n":1}`), ev("a", `{"n":2}`), ev("a", `{"n":3}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, stream("c"), eventstore.Exactly(3), ev("a", `{"n":4}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendMulti(ctx,
		eventstore.StreamAppend{Stream: stream("c"), Expected: eventstore.Exactly(4), Events: []eventstore.Event{ev("a", `{"n":5}`)}},
		eventstore.StreamAppend{Stream: stream("d"), Expected: eventstore.Any(), Events: []eventstore.Event{ev("a", `{}`), ev("a", `{}`)}}); err != nil {
		t.Fatal(err)
	}
	v, err := s.Verify(ctx, "", nil)
	if err != nil || !v.Intact() || v.Events != 7 || v.Streams != 2 {
		t.Fatalf("intact log: %+v, %v", v, err)
	}
	testdb.AsOperator(t, url, "test: tamper", func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE events SET metadata = metadata || '{"actor":"mallory"}' WHERE stream_id = 'c' AND version = 3`)
		return err
	})
	v, err = s.Verify(ctx, "c", nil)
	if err != nil || len(v.Breaks) != 1 || v.Breaks[0].Version != 3 || v.First == nil || v.First.Version != 3 {
		t.Fatalf("after changing version 3: %+v, %v", v, err)
	}
}

// An append that expects no stream, to an existing stream, is a conflict,
// or a type error when the stream has another type, and writes nothing.
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
