// Package logtamper is for tests: a small log with its tree and a signed
// checkpoint, and the ways someone with SQL access to the database might
// change it, each with the event a check must name.
package logtamper

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/internal/testwait"
	"github.com/arq-memory/arq/ledger"
)

// Event is one event of the log, as the log first held it.
type Event struct {
	Index    int64 // its place in the log's commit-safe order
	ID       string
	Stream   string
	Version  int
	Position int64
}

// Log is a log of a few streams in a database of its own, its tree built
// and a checkpoint of it signed, with a few events after the checkpoint.
type Log struct {
	URL   string
	Pool  *pgxpool.Pool
	Store *eventstore.Store
	Tree  *ledger.Tree
	// Checkpoint is the signed checkpoint; File holds its note, VKey
	// verifies it.
	Checkpoint ledger.Signed
	File       string
	SKey, VKey string
	// Events are the checkpoint's events, in the log's order.
	Events []Event
}

// Streams is how many streams the checkpoint signs events of: s-0 and
// s-1 (six events each), s-2, s-4 and s-5 (five), s-3 (two), and "pair",
// whose two events one transaction appended.
const Streams = 7

// New makes a Log for t.
func New(t testing.TB) *Log {
	t.Helper()
	ctx := context.Background()
	l := &Log{URL: testdb.New(t)}
	l.Pool = testdb.Pool(t, l.URL)
	l.Store = eventstore.New(l.Pool)
	l.Tree = ledger.NewTree(l.Pool, slog.New(slog.DiscardHandler))
	for i := range 32 {
		s := fmt.Sprintf("s-%d", i%6)
		if s == "s-3" && i >= 12 {
			continue
		}
		l.append(t, s, fmt.Sprintf(`{"i": %d, "text": "event \"%d\" é\n"}`, i, i))
		if i == 9 {
			l.append(t, "pair", `{"half": 1}`, `{"half": 2}`)
		}
	}
	// The stream catalog, as the projection keeps it.
	if _, err := l.Pool.Exec(ctx, `INSERT INTO streams (stream_id, stream_type, version, event_count, first_position,
			last_position, created_at, updated_at)
		SELECT stream_id, min(stream_type), max(version), count(*), min(position), max(position), min(recorded_at), max(recorded_at)
		FROM events GROUP BY stream_id`); err != nil {
		t.Fatal(err)
	}
	BuildAll(t, l.Tree, l.Pool)
	var err error
	if l.SKey, l.VKey, err = ledger.NewSigningKey("arq-test"); err != nil {
		t.Fatal(err)
	}
	signer, err := ledger.Signer(l.SKey)
	if err != nil {
		t.Fatal(err)
	}
	origin, err := ledger.Origin(ctx, l.Pool)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if l.Checkpoint, err = l.Tree.SignNow(ctx, signer, origin, dir); err != nil {
		t.Fatal(err)
	}
	l.File = filepath.Join(dir, "latest.checkpoint")
	if _, err := os.Stat(l.File); err != nil {
		t.Fatal(err)
	}
	rows, err := l.Pool.Query(ctx, `SELECT row_number() OVER (ORDER BY transaction_id, position) - 1, event_id, stream_id, version, position
		FROM events ORDER BY transaction_id, position`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var e Event
		if err := rows.Scan(&e.Index, &e.ID, &e.Stream, &e.Version, &e.Position); err != nil {
			t.Fatal(err)
		}
		l.Events = append(l.Events, e)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if int64(len(l.Events)) != l.Checkpoint.Size {
		t.Fatalf("the checkpoint signs %d events of %d", l.Checkpoint.Size, len(l.Events))
	}
	// Events after the checkpoint, which only their chains vouch for.
	l.append(t, "s-0", `{"after": true}`)
	l.append(t, "s-9", `{"after": true}`)
	return l
}

func (l *Log) append(t testing.TB, stream string, data ...string) {
	t.Helper()
	evs := make([]eventstore.Event, len(data))
	for i, d := range data {
		evs[i] = eventstore.Event{Type: "test.happened", Data: []byte(d)}
	}
	if _, err := l.Store.Append(context.Background(), eventstore.Stream{ID: stream, Type: "test"}, eventstore.Any(), evs...); err != nil {
		t.Fatal(err)
	}
}

// BuildAll builds tree until it holds every event committed before: an
// event becomes commit-safe (and a leaf) only once every transaction
// older than its own, in any database of the server, has ended.
func BuildAll(t testing.TB, tree *ledger.Tree, pool *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	var want int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&want); err != nil {
		t.Fatal(err)
	}
	testwait.Eventually(t, 30*time.Second, "every event in the tree", func() (bool, error) {
		if _, err := tree.Build(ctx); err != nil {
			return false, err
		}
		n, err := tree.Size(ctx)
		return n >= want, err
	})
}

// Event is the checkpoint's event of stream at version.
func (l *Log) Event(t testing.TB, stream string, version int) Event {
	t.Helper()
	for _, e := range l.Events {
		if e.Stream == stream && e.Version == version {
			return e
		}
	}
	t.Fatalf("no event %s version %d", stream, version)
	return Event{}
}

// disableTriggers lets the statements after it change events whatever
// triggers guard the table, as a superuser can; a database without
// triggers on events is left as it is.
const disableTriggers = `DO $$ BEGIN
	IF EXISTS (SELECT FROM pg_trigger WHERE tgrelid = 'events'::regclass AND NOT tgisinternal) THEN
		ALTER TABLE events DISABLE TRIGGER ALL;
	END IF;
END $$`

// Tamper runs sql (statements separated by semicolons, no arguments) in
// one transaction, as an attacker with SQL access would: triggers on
// events are off while it runs.
func (l *Log) Tamper(t testing.TB, sql string) {
	t.Helper()
	ctx := context.Background()
	// The server's role may not change the log: the attacker is the
	// database's owner (here its superuser).
	tx, err := testdb.OwnerPool(t, l.URL).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	for _, q := range []string{disableTriggers, sql, `ALTER TABLE events ENABLE TRIGGER ALL`} {
		if _, err := tx.Exec(ctx, q); err != nil {
			t.Fatalf("tamper: %v\n%s", err, q)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

// Want is what a check must say first: the kind of problem, and the
// event (by id) or, for one that is gone, its position.
type Want struct {
	Kind     string
	EventID  string
	Position int64
}

// Case is one way of tampering with a Log.
type Case struct {
	Name   string
	Tamper func(testing.TB, *Log) Want
}

// rehash recomputes, with the database's own arq_event_hash, the hashes
// of stream's events from version from on, as an attacker hiding an edit
// would.
func rehash(stream string, from int) string {
	return fmt.Sprintf(`DO $$ DECLARE r events; prev bytea; BEGIN
		SELECT hash INTO prev FROM events WHERE stream_id = '%[1]s' AND version = %[2]d - 1;
		FOR r IN SELECT * FROM events WHERE stream_id = '%[1]s' AND version >= %[2]d ORDER BY version LOOP
			prev := arq_event_hash(prev, r.event_id, r.stream_id, r.stream_type, r.version, r.event_type,
				r.schema_version, r.recorded_at, r.data, r.metadata);
			UPDATE events SET hash = prev WHERE event_id = r.event_id;
		END LOOP;
	END $$`, stream, from)
}

// Cases are the ways of tampering a check must see: the four the chains
// alone miss (the first four), and those they catch.
var Cases = []Case{
	{"edit and re-hash", func(t testing.TB, l *Log) Want {
		e := l.Event(t, "s-1", 2)
		l.Tamper(t, fmt.Sprintf(`UPDATE events SET data = '{"forged": true}' WHERE event_id = '%s'; %s`, e.ID, rehash("s-1", 2)))
		return Want{ledger.KindChanged, e.ID, 0}
	}},
	{"last event of a stream removed, catalog lowered", func(t testing.TB, l *Log) Want {
		e := l.Event(t, "s-2", 5)
		l.Tamper(t, fmt.Sprintf(`DELETE FROM events WHERE event_id = '%s';
			UPDATE streams SET version = 4, event_count = 4,
				last_position = (SELECT position FROM events WHERE stream_id = 's-2' AND version = 4) WHERE stream_id = 's-2'`, e.ID))
		return Want{ledger.KindMissing, "", e.Position}
	}},
	{"stream removed with its catalog row", func(t testing.TB, l *Log) Want {
		e := l.Event(t, "s-3", 1)
		l.Tamper(t, `DELETE FROM events WHERE stream_id = 's-3'; DELETE FROM streams WHERE stream_id = 's-3'`)
		return Want{ledger.KindMissing, "", e.Position}
	}},
	{"two events' positions swapped", func(t testing.TB, l *Log) Want {
		a, b := l.Event(t, "s-4", 2), l.Event(t, "s-5", 4)
		l.Tamper(t, fmt.Sprintf(`UPDATE events SET position = CASE position WHEN %[1]d THEN %[2]d ELSE %[1]d END
			WHERE position IN (%[1]d, %[2]d)`, a.Position, b.Position))
		return Want{ledger.KindMoved, a.ID, 0}
	}},
	{"positions swapped within one transaction", func(t testing.TB, l *Log) Want {
		a, b := l.Event(t, "pair", 1), l.Event(t, "pair", 2)
		l.Tamper(t, fmt.Sprintf(`UPDATE events SET position = -position WHERE position IN (%[1]d, %[2]d);
			UPDATE events SET position = CASE position WHEN -%[1]d THEN %[2]d ELSE %[1]d END WHERE position < 0`, a.Position, b.Position))
		// Now first in the log's order, the second event comes before
		// its stream's first: its chain says so before its leaf.
		return Want{ledger.KindBroken, b.ID, 0}
	}},
	{"an event edited", func(t testing.TB, l *Log) Want {
		e := l.Event(t, "s-4", 3)
		l.Tamper(t, fmt.Sprintf(`UPDATE events SET data = jsonb_set(data, '{i}', '999') WHERE event_id = '%s'`, e.ID))
		return Want{ledger.KindBroken, e.ID, 0}
	}},
	{"an event removed from the middle", func(t testing.TB, l *Log) Want {
		e := l.Event(t, "s-5", 2)
		l.Tamper(t, fmt.Sprintf(`DELETE FROM events WHERE event_id = '%s'`, e.ID))
		return Want{ledger.KindMissing, "", e.Position}
	}},
	{"two versions swapped", func(t testing.TB, l *Log) Want {
		e := l.Event(t, "s-0", 2)
		l.Tamper(t, `UPDATE events SET version = version + 1000 WHERE stream_id = 's-0' AND version IN (2, 3);
			UPDATE events SET version = CASE version WHEN 1002 THEN 3 ELSE 2 END WHERE stream_id = 's-0' AND version > 1000`)
		return Want{ledger.KindBroken, e.ID, 0}
	}},
}

// Names reports whether p is what w wants.
func (w Want) Names(kind, eventID string, position int64) bool {
	if w.EventID != "" {
		return kind == w.Kind && eventID == w.EventID
	}
	return kind == w.Kind && position == w.Position
}
