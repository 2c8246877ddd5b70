package readmodel_test

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/oklog/ulid/v2"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/projections"
	"github.com/arq-memory/arq/projections/readmodel"
)

// sourceRows lists memory_sources as "message memory@version action
// message-version user run", sorted.
func (l *sealedLog) sourceRows() []string {
	l.t.Helper()
	rows, err := l.pool.Query(context.Background(), `SELECT concat_ws(' ', message_id, memory_id || '@' || memory_version, action,
		message_version, user_id, tenant, session_id, run_id) FROM memory_sources`)
	if err != nil {
		l.t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		l.t.Fatal(err)
	}
	slices.Sort(got)
	return got
}

// The provenance projection keeps one row per message an extraction read
// for a memory event: stored (add, or supersede when it replaced
// another), updated and superseded, each with the version of the memory
// and of the message; a memory a client stored or changed has none. A
// memory's erasure takes its rows, a user's deletion theirs; a deleted
// memory keeps them. A rebuild, and an online copy, come to the same
// rows from the sealed log.
func TestProvenanceProjectsTheMessagesBehindEachMemoryEvent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := newSealedLog(t)
	id := func() string { return ulid.Make().String() }
	alice, bob, sa, sb := id(), id(), id(), id()
	m1, m2, mb := id(), id(), id()
	client, added, replacing, deleted, erased, bobs := id(), id(), id(), id(), id(), id()
	for _, u := range []string{alice, bob} {
		l.add(domain.StreamUser, u, domain.UserRegistered, domain.UserRegisteredData{UserID: u, Tenant: "t", ExternalID: "x" + u, Name: "n"})
	}
	l.add(domain.StreamSession, sa, domain.SessionStarted, domain.SessionStartedData{SessionID: sa, UserID: alice, TokenHash: "h" + sa})
	l.add(domain.StreamSession, sb, domain.SessionStarted, domain.SessionStartedData{SessionID: sb, UserID: bob, TokenHash: "h" + sb})
	for _, m := range []struct{ session, user, id string }{{sa, alice, m1}, {sa, alice, m2}, {sb, bob, mb}} {
		l.add(domain.StreamMessageLog, m.session, domain.MessageAppended, domain.MessageAppendedData{MessageID: m.id, SessionID: m.session,
			UserID: m.user, Role: "user", Content: "I moved to Lisbon", Tokens: 4})
	}
	prov := func(session, run string, msgs ...domain.SourceMessage) *domain.Provenance {
		return &domain.Provenance{RunID: run, Extractor: "chat", Model: "m", PromptVersion: "p1", SessionID: session, Messages: msgs}
	}
	read1, read2 := domain.SourceMessage{ID: m1, Seq: 1, Version: 1}, domain.SourceMessage{ID: m2, Seq: 2, Version: 2}
	store := func(mem, user string, p *domain.Provenance, supersedes string) {
		l.add(domain.StreamMemory, mem, domain.MemoryStored, domain.MemoryStoredData{MemoryID: mem, UserID: user, Type: "semantic",
			Content: "lives in Lisbon", Importance: 0.5, Tokens: 3, Provenance: p, Reason: "the user said so", Supersedes: supersedes})
	}
	content := "lives in Porto"
	store(client, alice, nil, "")
	store(added, alice, prov(sa, "r1", read1), "")
	store(deleted, alice, prov(sa, "r1", read1), "")
	store(erased, alice, prov(sa, "r1", read1, read2), "")
	store(bobs, bob, prov(sb, "rb", domain.SourceMessage{ID: mb, Seq: 1, Version: 1}), "")
	// An extraction updates the client's memory, then supersedes it.
	l.add(domain.StreamMemory, client, domain.MemoryUpdated, domain.MemoryUpdatedData{Content: &content, Provenance: prov(sa, "r2", read2), Reason: "moved"})
	l.add(domain.StreamMemory, client, domain.MemoryUpdated, domain.MemoryUpdatedData{Content: &content}) // the client's own change
	store(replacing, alice, prov(sa, "r3", read2), client)
	l.add(domain.StreamMemory, client, domain.MemorySuperseded, domain.MemorySupersededData{SupersededBy: replacing,
		ValidUntil: time.Now().UTC(), Provenance: prov(sa, "r3", read2), Reason: "moved again"})
	l.add(domain.StreamMemory, deleted, domain.MemoryDeleted, domain.MemoryDeletedData{})
	l.add(domain.StreamMemory, erased, domain.MemoryErased, domain.MemoryErasedData{UserID: alice, Reason: domain.ErasedOnRequest})
	l.caughtUp()

	row := func(msg, mem string, version int, action string, msgVersion int, user, run string) string {
		session := sa
		if user == bob {
			session = sb
		}
		return strings.Join([]string{msg, mem + "@" + strconv.Itoa(version), action, strconv.Itoa(msgVersion), user, "t", session, run}, " ")
	}
	want := []string{
		row(m1, added, 1, "add", 1, alice, "r1"),
		row(m1, deleted, 1, "add", 1, alice, "r1"),
		row(m2, client, 2, "update", 2, alice, "r2"),
		row(m2, client, 4, "superseded", 2, alice, "r3"),
		row(m2, replacing, 1, "supersede", 2, alice, "r3"),
		row(mb, bobs, 1, "add", 1, bob, "rb"),
	}
	slices.Sort(want)
	if got := l.sourceRows(); !slices.Equal(got, want) {
		t.Fatalf("memory_sources:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// An online copy compares clean with the live rows.
	cp, err := projections.NewCopy(ctx, l.pool, l.notifier, readmodel.Provenance{}, projections.OnlineOptions{Opener: l.vault.Recent()})
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := cp.Compare(ctx, 10); err != nil || !rep.Clean() {
		t.Fatalf("an online copy of provenance differs from the live rows: %+v, %v", rep, err)
	}

	// Bob's deletion takes his rows.
	l.add(domain.StreamUser, bob, domain.UserDeleted, domain.UserDeletedData{})
	l.caughtUp()
	want = slices.DeleteFunc(want, func(r string) bool { return strings.Contains(r, bob) })
	if got := l.sourceRows(); !slices.Equal(got, want) {
		t.Fatalf("after bob's deletion, memory_sources:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	if err := projections.RebuildAll(ctx, l.pool, l.notifier, readmodel.All(), l.vault.Recent(), slog.New(slog.DiscardHandler), nil); err != nil {
		t.Fatal(err)
	}
	if got := l.sourceRows(); !slices.Equal(got, want) {
		t.Fatalf("after a rebuild, memory_sources:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
