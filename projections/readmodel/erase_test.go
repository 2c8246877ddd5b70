package readmodel_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/oklog/ulid/v2"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/projections"
	"github.com/arq-memory/arq/projections/readmodel"
	"github.com/arq-memory/arq/vault"
)

// sealedLog is a log whose people's data is sealed by a vault, with every
// projection of the read model applying it as it comes.
type sealedLog struct {
	t        *testing.T
	pool     *pgxpool.Pool
	store    *eventstore.Store
	vault    *vault.Vault
	notifier *eventstore.Notifier
	waiter   *projections.Waiter
	ps       []projections.Projection
	last     eventstore.Cursor
}

func newSealedLog(t *testing.T) *sealedLog {
	t.Helper()
	pool := testdb.Pool(t, testdb.New(t))
	m, err := vault.ParseMaster(vault.NewMasterKey())
	if err != nil {
		t.Fatal(err)
	}
	v := vault.New(pool, vault.NewKeyring(m), true)
	log := slog.New(slog.DiscardHandler)
	n := eventstore.NewNotifier(pool, log)
	ps := append([]projections.Projection{projections.Streams{}}, readmodel.All()...)
	eng, err := projections.NewEngine(pool, n, ps, projections.Config{Opener: v.Recent()}, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { n.Run(ctx); done <- struct{}{} }()
	go func() { _ = eng.Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Name()
	}
	return &sealedLog{t: t, pool: pool, vault: v, notifier: n, ps: ps,
		store:  eventstore.New(pool, eventstore.WithSealer(v), eventstore.WithAppendHook(n.Notify)),
		waiter: projections.NewWaiter(pool, names, eng.Committed())}
}

// add appends one event of type typ with data to the stream of streamType
// and id, and returns the event's id.
func (l *sealedLog) add(streamType, id, typ string, data any) string {
	l.t.Helper()
	raw, err := json.Marshal(data)
	if err != nil {
		l.t.Fatal(err)
	}
	eventID := ulid.Make().String()
	res, err := l.store.Append(context.Background(), eventstore.Stream{ID: domain.StreamID(streamType, id), Type: streamType},
		eventstore.Any(), eventstore.Event{ID: eventID, Type: typ, Data: raw, Metadata: eventstore.Metadata{Tenant: "t", Actor: "test"}})
	if err != nil {
		l.t.Fatalf("append %s: %v", typ, err)
	}
	l.last = res.Last().Cursor
	return eventID
}

// caughtUp waits until every projection has applied the last event.
func (l *sealedLog) caughtUp() {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.waiter.Wait(ctx, l.last); err != nil {
		l.t.Fatalf("projections did not reach %s: %v", l.last, err)
	}
}

// holding lists the tables of the database (the log too) that hold text
// containing any of needles, with a row of each as an example.
func (l *sealedLog) holding(needles ...string) []string {
	l.t.Helper()
	ctx := context.Background()
	rows, err := l.pool.Query(ctx, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1`)
	if err != nil {
		l.t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		l.t.Fatal(err)
	}
	var out []string
	for _, table := range tables {
		for _, n := range needles {
			var row *string
			err := l.pool.QueryRow(ctx, `SELECT r::text FROM `+pgx.Identifier{table}.Sanitize()+` r WHERE strpos(r::text, $1) > 0 LIMIT 1`, n).Scan(&row)
			if err != nil && err != pgx.ErrNoRows {
				l.t.Fatalf("read %s: %v", table, err)
			}
			if row != nil {
				out = append(out, fmt.Sprintf("%s holds %q: %s", table, n, *row))
			}
		}
	}
	return out
}

// state is every row of the projections' tables, as text, sorted.
func (l *sealedLog) state() map[string][]string {
	l.t.Helper()
	out := map[string][]string{}
	for _, p := range l.ps {
		for _, table := range p.Tables() {
			rows, err := l.pool.Query(context.Background(), `SELECT r::text FROM `+pgx.Identifier{table}.Sanitize()+` r`)
			if err != nil {
				l.t.Fatal(err)
			}
			got, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				l.t.Fatal(err)
			}
			slices.Sort(got)
			out[table] = got
		}
	}
	return out
}

func (l *sealedLog) count(sql string, args ...any) int {
	l.t.Helper()
	var n int
	if err := l.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		l.t.Fatal(err)
	}
	return n
}

// An erasure leaves no trace of what it erased in any table: a user's
// erasure takes their profile, sessions, messages, memories, summaries
// and snapshots; a message's takes the message, the summaries it names
// (and those that fold it) and the queries of the snapshots it names; a
// memory's takes the memory. What was not erased stays. A rebuild from
// the log, which reads the erased events without their data, comes to
// the same tables.
func TestErasuresLeaveNoTraceInTheQueryTables(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := newSealedLog(t)
	// Markers are matched by their first letters, which the full-text
	// index keeps whatever the stemmer does to their ends. The embedding
	// marker is a float no other value has.
	const (
		aliceMark = "zqxalice"
		msgMark   = "zqxmsgone"
		memMark   = "zqxmemone"
		keepMark  = "zqxkeepone"
		embMark   = "0.987654"
	)
	prefix := func(m string) string { return m[:len(m)-2] }
	markers := []string{prefix(aliceMark), prefix(msgMark), prefix(memMark), embMark}
	embedding := func(content string) []float32 {
		if strings.Contains(content, keepMark) {
			return []float32{0.25, 0.5}
		}
		return []float32{0.987654, 0.5}
	}
	id := func() string { return ulid.Make().String() }
	alice, bob := id(), id()
	sa, sb := id(), id()
	a1, a2, b1, b2, b3 := id(), id(), id(), id(), id()
	ma, mb1, mb2 := id(), id(), id()
	snapA, snapB := id(), id()

	register := func(user, mark string) {
		l.add(domain.StreamUser, user, domain.UserRegistered, domain.UserRegisteredData{UserID: user, Tenant: "t",
			ExternalID: "ext-" + mark, Name: "Name " + mark, Email: mark + "@example.com", Metadata: map[string]any{"k": mark}})
	}
	start := func(session, user, mark string) {
		l.add(domain.StreamSession, session, domain.SessionStarted, domain.SessionStartedData{SessionID: session, UserID: user,
			Title: "title " + mark, Metadata: map[string]any{"k": mark}, TokenHash: "hash-" + session})
	}
	message := func(session, user, msg, role, content string) {
		l.add(domain.StreamMessageLog, session, domain.MessageAppended, domain.MessageAppendedData{MessageID: msg, SessionID: session,
			UserID: user, Role: role, Content: content, Name: "name " + content, Metadata: map[string]any{"k": content}, Tokens: 5, Embedding: embedding(content)})
	}
	memory := func(mem, user, content string) {
		l.add(domain.StreamMemory, mem, domain.MemoryStored, domain.MemoryStoredData{MemoryID: mem, UserID: user, Type: "semantic",
			Content: content, Importance: 0.5, Tags: []string{content}, Metadata: map[string]any{"k": content}, Tokens: 4, Embedding: embedding(content)})
	}
	summary := func(session, user, content string, from, to int) string {
		return l.add(domain.StreamSummary, session, domain.SessionSummarized, domain.SessionSummarizedData{SessionID: session, UserID: user,
			Content: content, Tokens: 7, FromSeq: from, ToSeq: to, Method: "extractive"})
	}
	snapshot := func(snap, session, user, msg, query string) {
		l.add(domain.StreamSnapshot, snap, domain.ContextSnapshotRecorded, domain.ContextSnapshotData{SnapshotID: snap, SessionID: session,
			UserID: user, MessageID: msg, Query: query, Budget: 1000, TotalTokens: 20,
			Items: []domain.SnapshotItem{{Kind: domain.ItemMessage, ID: msg, Version: 1, Seq: 1, Tokens: 9}}})
	}

	register(alice, aliceMark)
	start(sa, alice, aliceMark)
	message(sa, alice, a1, "user", "hello "+aliceMark)
	message(sa, alice, a2, "assistant", "reply "+aliceMark)
	memory(ma, alice, "memory "+aliceMark)
	summary(sa, alice, "summary "+aliceMark, 1, 2)
	snapshot(snapA, sa, alice, a2, "query "+aliceMark)
	name := "Renamed " + aliceMark
	l.add(domain.StreamUser, alice, domain.UserProfileUpdated, domain.UserProfileUpdatedData{Name: &name})

	register(bob, keepMark)
	start(sb, bob, keepMark)
	message(sb, bob, b1, "user", "first "+msgMark)
	message(sb, bob, b2, "assistant", "second "+keepMark)
	message(sb, bob, b3, "user", "third "+keepMark)
	sumB := summary(sb, bob, "summary "+msgMark, 1, 2)
	snapshot(snapB, sb, bob, b2, "query "+msgMark)
	memory(mb1, bob, "memory "+memMark)
	memory(mb2, bob, "memory "+keepMark)
	l.add(domain.StreamMessage, b1, domain.MessageEdited, domain.MessageEditedData{Content: "edited " + msgMark, Tokens: 6})
	l.caughtUp()

	// The projections got the events opened.
	if got := l.holding(append(markers, prefix(keepMark))...); len(got) < 4 {
		t.Fatalf("before the erasures the tables hold only: %v", got)
	}

	if _, err := l.vault.Erase(ctx, []string{alice}, nil); err != nil {
		t.Fatal(err)
	}
	l.add(domain.StreamUser, alice, domain.UserErased, domain.UserErasedData{Reason: domain.ErasedOnRequest})
	if _, err := l.vault.Erase(ctx, nil, []string{domain.KeyID(domain.UnitMessage, b1), domain.KeyID(domain.UnitSummary, sumB),
		domain.KeyID(domain.UnitSnapshot, snapB)}); err != nil {
		t.Fatal(err)
	}
	l.add(domain.StreamMessage, b1, domain.MessageErased, domain.MessageErasedData{SessionID: sb, UserID: bob, Seq: 1,
		Reason: domain.ErasedOnRequest, Summaries: []string{sumB}, Snapshots: []string{snapB}})
	if _, err := l.vault.Erase(ctx, nil, []string{domain.KeyID(domain.UnitMemory, mb1)}); err != nil {
		t.Fatal(err)
	}
	l.add(domain.StreamMemory, mb1, domain.MemoryErased, domain.MemoryErasedData{UserID: bob, Reason: domain.ErasedOnRequest})
	l.caughtUp()

	check := func(when string) {
		t.Helper()
		if got := l.holding(markers...); len(got) > 0 {
			t.Errorf("%s, erased data is left:\n%s", when, strings.Join(got, "\n"))
		}
		for _, c := range []struct {
			what string
			sql  string
			want int
		}{
			{"alice's user row", `SELECT count(*) FROM users WHERE id = $1`, 1 - 1},
			{"rows naming alice", `SELECT (SELECT count(*) FROM sessions WHERE user_id = $1) + (SELECT count(*) FROM messages WHERE user_id = $1)
				+ (SELECT count(*) FROM memories WHERE user_id = $1) + (SELECT count(*) FROM session_summaries WHERE user_id = $1)
				+ (SELECT count(*) FROM context_snapshots WHERE user_id = $1) + (SELECT count(*) FROM snapshots_due WHERE user_id = $1)
				+ (SELECT count(*) FROM session_backlog WHERE user_id = $1)`, 0},
		} {
			if got := l.count(c.sql, alice); got != c.want {
				t.Errorf("%s: %s: %d, want %d", when, c.what, got, c.want)
			}
		}
		for _, c := range []struct {
			what string
			sql  string
			want int
		}{
			{"bob's messages", `SELECT count(*) FROM messages WHERE session_id = $1`, 2},
			{"bob's session's message count", `SELECT message_count FROM session_backlog WHERE session_id = $1`, 2},
			{"bob's standing summaries", `SELECT count(*) FROM session_summaries WHERE session_id = $1 AND NOT withdrawn`, 0},
			{"bob's session's backlog (two messages of 5 tokens, 4 each over)", `SELECT cost FROM session_backlog WHERE session_id = $1 AND summarized_to = 0`, 18},
			{"bob's snapshot queries left", `SELECT count(*) FROM context_snapshots WHERE session_id = $1 AND query <> ''`, 0},
			{"bob's snapshots", `SELECT count(*) FROM context_snapshots WHERE session_id = $1`, 1},
		} {
			if got := l.count(c.sql, sb); got != c.want {
				t.Errorf("%s: %s: %d, want %d", when, c.what, got, c.want)
			}
		}
		if got := l.count(`SELECT count(*) FROM memories WHERE user_id = $1`, bob); got != 1 {
			t.Errorf("%s: bob has %d memories, want 1", when, got)
		}
		if got := l.holding(prefix(keepMark)); len(got) < 4 {
			t.Errorf("%s: what was not erased is gone too; left: %v", when, got)
		}
	}
	check("after the erasures")
	live := l.state()

	if err := projections.RebuildAll(ctx, l.pool, l.notifier, readmodel.All(), l.vault.Recent(), slog.New(slog.DiscardHandler), nil); err != nil {
		t.Fatal(err)
	}
	check("after a rebuild")
	rebuilt := l.state()
	for table, rows := range live {
		if !slices.Equal(rows, rebuilt[table]) {
			t.Errorf("table %s after a rebuild:\n%s\nlive:\n%s", table, strings.Join(rebuilt[table], "\n"), strings.Join(rows, "\n"))
		}
	}
}
