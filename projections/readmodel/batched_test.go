package readmodel

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/internal/testdb"
)

// Many stamp reads at once, of every kind, share round trips and still
// each get the stamp of its own row: a user only in its tenant, a session
// with its message count and status, a memory only while it lives, and a
// row rewritten between two reads a new stamp.
func TestStampReadsTogetherEachGetTheirOwn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t, testdb.New(t))
	if _, err := pool.Exec(ctx, `
		INSERT INTO users (id, tenant, external_id, name, email, metadata, version, created_at, updated_at)
			VALUES ('u1', 'a', 'x1', 'U', '', '{}', 3, now(), now());
		INSERT INTO sessions (id, user_id, tenant, title, metadata, token_hash, status, version, created_at, updated_at)
			VALUES ('s1', 'u1', 'a', '', '{}', 'h1', 'open', 2, now(), now()),
			       ('s2', 'u1', 'a', '', '{}', 'h2', 'closed', 4, now(), now());
		INSERT INTO session_backlog (session_id, user_id, message_count) VALUES ('s1', 'u1', 7);
		INSERT INTO memories (id, user_id, tenant, type, content, importance, tags, metadata, tokens, version, created_at, updated_at, expires_at, stored_tx, stored_position)
			VALUES ('m1', 'u1', 'a', 'semantic', 'x', 0.5, '{}', '{}', 1, 5, now(), now(), NULL, '1', 1),
			       ('m2', 'u1', 'a', 'semantic', 'x', 0.5, '{}', '{}', 1, 1, now(), now(), now() - interval '1 second', '2', 2)`); err != nil {
		t.Fatal(err)
	}
	r := NewReader(pool)
	type read struct {
		kind       domain.Kind
		tenant, id string
		want       string // the stamp without its xmin; "" for not found
	}
	reads := []read{
		{domain.KindUser, "a", "u1", "3"},
		{domain.KindUser, "b", "u1", ""},
		{domain.KindSession, "", "s1", "2/7.open"},
		{domain.KindSession, "", "s2", "4/0.closed"},
		{domain.KindSession, "", "nope", ""},
		{domain.KindMemory, "", "m1", "5"},
		{domain.KindMemory, "", "m2", ""}, // expired
		{domain.KindMessage, "", "m1", ""},
	}
	var wg sync.WaitGroup
	errs := make(chan error, 20*len(reads))
	for i := 0; i < 20; i++ {
		for _, rd := range reads {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := r.StampOf(ctx, rd.kind, rd.tenant, rd.id)
				switch {
				case rd.want == "" && !errors.Is(err, domain.ErrNotFound):
					errs <- fmt.Errorf("%s %s/%s: %q, %v; want not found", rd.kind, rd.tenant, rd.id, got, err)
				case rd.want != "" && (err != nil || !strings.HasPrefix(got, rd.want+"@")):
					errs <- fmt.Errorf("%s %s/%s: %q, %v; want %s@<xmin>", rd.kind, rd.tenant, rd.id, got, err, rd.want)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	before, err := r.StampOf(ctx, domain.KindMemory, "", "m1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE memories SET content = 'y' WHERE id = 'm1'`); err != nil {
		t.Fatal(err)
	}
	after, err := r.StampOf(ctx, domain.KindMemory, "", "m1")
	if err != nil || after == before {
		t.Fatalf("stamp after a rewrite of the row: %q (before %q), %v", after, before, err)
	}
}

// Many reads of messages by id at once each get their own message, or
// not found; a read after a write sees the write.
func TestMessageReadsTogetherEachGetTheirOwn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t, testdb.New(t))
	if _, err := pool.Exec(ctx, `INSERT INTO messages (id, session_id, user_id, tenant, seq, role, content, name, metadata, tokens, version, created_at, updated_at)
		SELECT 'msg' || i, 's1', 'u1', 'a', i, 'user', 'text ' || i, '', '{}', i, 1, now(), now() FROM generate_series(1, 30) AS i`); err != nil {
		t.Fatal(err)
	}
	r := NewReader(pool)
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for round := 0; round < 5; round++ {
		for i := 1; i <= 32; i++ { // 31 and 32 do not exist
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprintf("msg%d", i)
				m, err := r.GetMessage(ctx, id)
				switch {
				case i > 30 && !errors.Is(err, domain.ErrNotFound):
					errs <- fmt.Errorf("%s: %+v, %v; want not found", id, m, err)
				case i <= 30 && (err != nil || m.ID != id || m.Seq != i || m.Content != fmt.Sprintf("text %d", i)):
					errs <- fmt.Errorf("%s: %+v, %v", id, m, err)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE messages SET content = 'edited', version = 2 WHERE id = 'msg7'`); err != nil {
		t.Fatal(err)
	}
	if m, err := r.GetMessage(ctx, "msg7"); err != nil || m.Content != "edited" || m.Version != 2 {
		t.Fatalf("read after an edit: %+v, %v", m, err)
	}
}

// The statements for several keys at once, called directly (under load
// the Loader picks them; here nothing is left to timing): each key gets
// its own row, kinds and tenants apart; ids Postgres cannot hold are not
// found without failing anything else.
func TestBatchStatementsMapEachKeyToItsRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t, testdb.New(t))
	if _, err := pool.Exec(ctx, `
		INSERT INTO users (id, tenant, external_id, name, email, metadata, version, created_at, updated_at)
			VALUES ('x', 'a', 'x1', 'U', '', '{}', 3, now(), now()), ('y', 'b', 'x2', 'U', '', '{}', 4, now(), now()),
			       ('u2', 'a', 'x3', 'U', '', '{}', 1, now(), now());
		INSERT INTO sessions (id, user_id, tenant, title, metadata, token_hash, status, version, created_at, updated_at)
			VALUES ('x', 'x', 'a', '', '{}', 'h1', 'open', 2, now(), now()),
			       ('s2', 'u2', 'a', '', '{}', 'h2', 'open', 5, now(), now());
		INSERT INTO session_backlog (session_id, user_id, message_count) VALUES ('x', 'x', 7), ('s2', 'u2', 1);
		INSERT INTO messages (id, session_id, user_id, tenant, seq, role, content, name, metadata, tokens, version, created_at, updated_at)
			VALUES ('x', 'x', 'x', 'a', 1, 'user', 'one', '', '{}', 1, 1, now(), now()),
			       ('m2', 'x', 'x', 'a', 2, 'user', 'two', '', '{}', 1, 3, now(), now());
		INSERT INTO cache_generations (key, gen) VALUES ('session:x', 11), ('summary:x', 12), ('user:x', 13), ('session:s2', 21), ('user:u2', 23), ('rebuilds', 9)`); err != nil {
		t.Fatal(err)
	}
	r := NewReader(pool)

	stamps, err := r.readStamps(ctx, []entityKey{
		{domain.KindUser, "a", "x"}, {domain.KindUser, "b", "x"}, {domain.KindUser, "b", "y"}, {domain.KindUser, "a", "y"}, {domain.KindUser, "a", "u2"},
		{domain.KindSession, "", "x"}, {domain.KindSession, "", "s2"}, {domain.KindMessage, "", "x"}, {domain.KindMessage, "", "m2"}, {domain.KindMemory, "", "x"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[entityKey]string{
		{domain.KindUser, "a", "x"}: "3", {domain.KindUser, "b", "y"}: "4", {domain.KindUser, "a", "u2"}: "1",
		{domain.KindSession, "", "x"}: "2/7.open", {domain.KindSession, "", "s2"}: "5/1.open",
		{domain.KindMessage, "", "x"}: "1", {domain.KindMessage, "", "m2"}: "3",
	}
	if len(stamps) != len(want) {
		t.Fatalf("stamps %v, want %v", stamps, want)
	}
	for k, w := range want {
		if !strings.HasPrefix(stamps[k], w+"@") {
			t.Fatalf("stamp of %+v = %q, want %s@<xmin> (all: %v)", k, stamps[k], w, stamps)
		}
	}

	states, err := r.readWindowStates(ctx, []string{"x", "s2", "none"})
	if err != nil {
		t.Fatal(err)
	}
	if got := states["x"]; len(states) != 2 || got != (WindowState{UserID: "x", Messages: 11, Summaries: 12, Memories: 13, Rebuilds: 9}) {
		t.Fatalf("window states %+v", states)
	}
	if got := states["s2"]; got != (WindowState{UserID: "u2", Messages: 21, Memories: 23, Rebuilds: 9}) {
		t.Fatalf("window state of s2 %+v", got)
	}

	msgs, err := r.readMessages(ctx, []string{"x", "m2", "none"})
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || msgs["x"].Content != "one" || msgs["m2"].Content != "two" || msgs["m2"].Version != 3 {
		t.Fatalf("messages %+v", msgs)
	}

	for _, bad := range []string{"\xff", "a\x00b"} {
		if _, err := r.GetMessage(ctx, bad); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("message %q: %v, want not found", bad, err)
		}
		if _, err := r.StampOf(ctx, domain.KindMemory, "", bad); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("stamp of memory %q: %v, want not found", bad, err)
		}
		if _, err := r.StampOf(ctx, domain.KindUser, bad, "x"); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("stamp of user x in tenant %q: %v, want not found", bad, err)
		}
		if _, err := r.WindowStateOf(ctx, bad); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("window state of %q: %v, want not found", bad, err)
		}
	}
}
