package commands_test

import (
	"context"
	"database/sql"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", which goose needs
	"github.com/pressly/goose/v3"

	"github.com/arq-memory/arq/commands"
	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/history"
	"github.com/arq-memory/arq/migrations"
	"github.com/arq-memory/arq/projections"
	"github.com/arq-memory/arq/projections/readmodel"
)

// The window behind an assistant message holds the memories stored by
// the message's place in the log and no later: one stored just before
// the answer is in, one stored just after is out (left out by the place
// the memories table keeps of each, with nothing folded), one updated
// after it is in at its version then, one deleted after it is in as it
// was; a summary recorded after it is not the window's, the one before
// it is. The same holds
// after the memories and context projections are rebuilt, and the
// rebuilt memories table keeps the same places as the live one did.
func TestWindowAtHoldsTheMemoriesStoredByTheMessage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newLiveEnv(t)
	meta := commands.Meta{RequestID: "test", Actor: "test", Scope: domain.Scope{Tenant: "default"}}
	u, err := e.svc.RegisterUser(ctx, meta, domain.RegisterUser{ExternalID: "moss", Name: "Moss"})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := e.svc.StartSession(ctx, meta, u.ID, domain.StartSession{Title: "moss"})
	if err != nil {
		t.Fatal(err)
	}
	store := func(content string) string {
		t.Helper()
		res, err := e.svc.StoreMemory(ctx, meta, u.ID, domain.StoreMemory{Type: "semantic", Content: content})
		if err != nil {
			t.Fatal(err)
		}
		return res.ID
	}
	// The first message is too long for the window, which takes the
	// summary of it instead.
	first := []domain.NewMessage{{Role: "user", Content: strings.Repeat("moss on the north wall, ", 1200)}}
	if _, err := e.svc.AppendMessages(ctx, meta, sess.ID, first); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.RecordSummary(ctx, meta, 0, map[string]int{first[0].MessageID.String(): 1}, domain.SessionSummarizedData{
		SessionID: sess.ID, UserID: u.ID, Content: "the user grows moss", FromSeq: 1, ToSeq: 1, Method: "test"}); err != nil {
		t.Fatal(err)
	}
	updated := store("moss likes shade and damp stone")
	deleted := store("moss dries out in full sun")
	before := store("moss, a memory stored just before the answer")
	turn := []domain.NewMessage{{Role: "user", Content: "how do I keep moss green"}, {Role: "assistant", Content: "water it"}}
	res, err := e.svc.AppendMessages(ctx, meta, sess.ID, turn)
	if err != nil {
		t.Fatal(err)
	}
	answer, question := turn[1].MessageID.String(), turn[0].MessageID.String()
	after := store("moss, a memory stored just after the answer")
	newText := "moss wants lime-free water, a note rewritten after the answer"
	if _, err := e.svc.UpdateMemory(ctx, meta, updated, nil, domain.UpdateMemory{Content: &newText}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.DeleteMemory(ctx, meta, deleted, nil); err != nil {
		t.Fatal(err)
	}
	last, err := e.svc.RecordSummary(ctx, meta, 1, map[string]int{question: 1}, domain.SessionSummarizedData{
		SessionID: sess.ID, UserID: u.ID, Content: "the user asked about moss", FromSeq: 2, ToSeq: 2, Method: "test"})
	if err != nil {
		t.Fatal(err)
	}
	e.caughtUp(t, last.Cursor)
	if !res.Cursor.Less(last.Cursor) {
		t.Fatalf("the answer at %s is not before the changes at %s", res.Cursor, last.Cursor)
	}

	check := func(t *testing.T) {
		t.Helper()
		w, err := e.reader.WindowAt(ctx, answer, domain.DefaultBudget(), e.tokens, history.New(e.store))
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]readmodel.WindowMemory{}
		for _, m := range w.Memories {
			got[m.ID] = m
		}
		want := map[string]struct {
			version int
			content string
		}{
			updated: {1, "moss likes shade and damp stone"},
			deleted: {1, "moss dries out in full sun"},
			before:  {1, "moss, a memory stored just before the answer"},
		}
		for id, x := range want {
			m, ok := got[id]
			if !ok {
				t.Errorf("memory %q is not in the window", x.content)
				continue
			}
			if m.Version != x.version || m.Content != x.content {
				t.Errorf("memory %s at version %d reads %q; want version %d, %q", id, m.Version, m.Content, x.version, x.content)
			}
		}
		if _, ok := got[after]; ok || len(got) != len(want) {
			t.Errorf("the window holds %d memories (the one stored after the answer: %v), want %d", len(got), ok, len(want))
		}
		if w.Summary == nil || w.Summary.Version != 1 {
			t.Errorf("the window's summary is %+v, want version 1 (the one recorded before the answer)", w.Summary)
		}
		if len(w.Messages) != 1 || w.Messages[0].ID != question {
			t.Errorf("the window's messages are %+v, want the question alone", w.Messages)
		}
	}
	t.Run("live", check)

	live := storedPlaces(t, e)
	for _, p := range []projections.Projection{readmodel.Memories{}, readmodel.Context{}} {
		e.rebuild(t, p)
	}
	t.Run("rebuilt", check)
	if rebuilt := storedPlaces(t, e); !slices.EqualFunc(live, rebuilt, slices.Equal) || len(live) != 3 {
		t.Errorf("stored places: live %v, rebuilt %v", live, rebuilt)
	}
	// The places are those of the stored events.
	for _, row := range live {
		recs, err := e.store.ReadStreamRange(ctx, domain.StreamID(domain.StreamMemory, row[0]), 1, 1)
		if err != nil || len(recs) != 1 {
			t.Fatalf("stored event of memory %s: %v", row[0], err)
		}
		if c := recs[0].Cursor().String(); c != strings.Join(row[1:], ".") {
			t.Errorf("memory %s kept place %s.%s, its stored event is at %s", row[0], row[1], row[2], c)
		}
	}
}

// storedPlaces lists each memory's id and stored place, as text.
func storedPlaces(t *testing.T, e *liveEnv) [][]string {
	t.Helper()
	rows, err := e.pool.Query(context.Background(), `SELECT id, stored_tx::text, stored_position::text FROM memories ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) ([]string, error) {
		var id, tx, pos string
		return []string{id, tx, pos}, row.Scan(&id, &tx, &pos)
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The migration that gave memories their stored place fills it in for
// the rows there are, as the projection sets it: taken down and up again
// under memories the projection stored, it gives each the same place.
func TestMemoryStoredPlaceMigrationMatchesTheProjection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newLiveEnv(t)
	u, err := e.svc.RegisterUser(ctx, testMeta, domain.RegisterUser{ExternalID: "fern", Name: "Fern"})
	if err != nil {
		t.Fatal(err)
	}
	var last eventstore.Cursor
	for _, content := range []string{"ferns like shade", "ferns unfurl in spring", "ferns need damp soil"} {
		res, err := e.svc.StoreMemory(ctx, testMeta, u.ID, domain.StoreMemory{Type: "semantic", Content: content})
		if err != nil {
			t.Fatal(err)
		}
		last = res.Cursor
	}
	e.caughtUp(t, last)
	projected := storedPlaces(t, e)

	db, err := sql.Open("pgx", e.url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.Files())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 22); err != nil {
		t.Fatal(err)
	}
	var cols int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM information_schema.columns
		WHERE table_name = 'memories' AND column_name IN ('stored_tx', 'stored_position')`).Scan(&cols); err != nil || cols != 0 {
		t.Fatalf("down to 22, memories has %d of the stored place's columns (%v)", cols, err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if backfilled := storedPlaces(t, e); !slices.EqualFunc(projected, backfilled, slices.Equal) || len(projected) != 3 {
		t.Errorf("stored places: projected %v, filled in by the migration %v", projected, backfilled)
	}
}
