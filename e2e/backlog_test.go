package e2e

import (
	"context"
	"fmt"
	"github.com/arq-memory/arq/internal/testserver"
	"github.com/arq-memory/arq/internal/testwait"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/arq-memory/arq/internal/testdb"
)

// The session backlog the summary pass reads (the cost of each session's
// messages after its newest summary standing) is what the log says,
// through appends (alone, together, with embeddings), edits and
// redactions on both sides of a summary (a redaction below it withdraws
// the summary), and a user's deletion; a rebuild of the messages
// projection builds it again, and so do the migrations that brought it
// in, from the messages table and the log.
func TestSessionBacklogFollowsTheLog(t *testing.T) {
	t.Parallel()
	url := testdb.New(t)
	pool := testdb.Pool(t, url)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(7, 11))
	words := strings.Fields("the garden needs water before the sun is high and the soil stays cool under the mulch all day")
	text := func() string {
		out := make([]string, 3+r.IntN(25))
		for i := range out {
			out[i] = words[r.IntN(len(words))]
		}
		return strings.Join(out, " ")
	}
	var sessions, users []string
	addMessages := func(s *testserver.Server, sid string, n int) {
		batch := make([]map[string]any, n)
		for i := range batch {
			batch[i] = map[string]any{"role": []string{"user", "assistant"}[r.IntN(2)], "content": text()}
			if r.IntN(4) == 0 {
				batch[i]["embedding"] = []float64{r.Float64(), r.Float64(), 1}
			}
		}
		s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"messages": batch}))
	}
	// Every session gets summaries, by a server with a low threshold.
	t.Run("summarized", func(t *testing.T) {
		s := testserver.StartOn(t, url, map[string]string{"ARQ_BACKGROUND_INTERVAL": "50ms", "ARQ_SUMMARY_THRESHOLD_TOKENS": "40",
			"ARQ_SUMMARY_RECENT_TOKENS": "20", "ARQ_EMBEDDING_DIM": "3"})
		for u := 0; u < 2; u++ {
			uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": fmt.Sprintf("b%d", u), "name": "B"})).Str("id")
			users = append(users, uid)
			for i := 0; i < 2; i++ {
				sessions = append(sessions, s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id"))
			}
		}
		for round := 0; round < 4; round++ {
			for _, sid := range sessions {
				addMessages(s, sid, 1+r.IntN(5))
			}
		}
		testwait.Eventually(t, 20*time.Second, "a summary of every session", func() (bool, error) {
			var n int
			err := pool.QueryRow(ctx, `SELECT count(DISTINCT session_id) FROM session_summaries`).Scan(&n)
			return n == len(sessions), err
		})
	})
	// Then, with no more summaries, messages change on both sides of the
	// last summary of each session.
	s := testserver.StartOn(t, url, map[string]string{"ARQ_SUMMARY_THRESHOLD_TOKENS": "1000000", "ARQ_EMBEDDING_DIM": "3"})
	for _, sid := range sessions {
		addMessages(s, sid, 4) // at least two after the last summary
		var older, newer []string
		rows, err := pool.Query(ctx, `SELECT m.id, m.seq <= (SELECT max(to_seq) FROM session_summaries WHERE session_id = $1)
			FROM messages m WHERE m.session_id = $1 ORDER BY random()`, sid)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id string
			var summarized bool
			if err := rows.Scan(&id, &summarized); err != nil {
				t.Fatal(err)
			}
			if summarized {
				older = append(older, id)
			} else {
				newer = append(newer, id)
			}
		}
		if rows.Err() != nil || len(older) < 2 || len(newer) < 2 {
			t.Fatalf("session %s: %d messages summarized, %d not (%v): want two of each", sid, len(older), len(newer), rows.Err())
		}
		for _, ids := range [][]string{older, newer} {
			s.Must(200, s.Do("PATCH", "/v1/messages/"+ids[0], map[string]any{"content": text() + " " + text()}))
			s.Must(204, s.Do("DELETE", "/v1/messages/"+ids[1], nil))
		}
	}
	// A session whose every message is redacted keeps its row, at no cost.
	emptied := s.Must(201, s.Do("POST", "/v1/users/"+users[0]+"/sessions", map[string]any{})).Str("id")
	for _, m := range s.Must(201, s.Do("POST", "/v1/sessions/"+emptied+"/messages", map[string]any{"messages": []map[string]any{
		{"role": "user", "content": text()}, {"role": "assistant", "content": text()}}})).JSON["messages"].([]any) {
		s.Must(204, s.Do("DELETE", "/v1/messages/"+m.(map[string]any)["id"].(string), nil))
	}
	s.Must(204, s.Do("DELETE", "/v1/users/"+users[1], nil))

	backlogMatchesLog(t, url)
	withdrawnMatchesLog(t, url)
	if code, _, errOut := runCLI(t, url, "projections", "rebuild", "messages", "--quiet"); code != 0 {
		t.Fatalf("rebuild messages: exit %d: %s", code, errOut)
	}
	backlogMatchesLog(t, url)
	if code, out, errOut := runCLI(t, url, "projections", "verify", "context"); code != 0 {
		t.Fatalf("verify context: exit %d: %s %s", code, out, errOut)
	}
}

// withdrawnMatchesLog compares which summaries the context projection
// withdrew with what the migration that brought withdrawals in computes
// from the log; some must be.
func withdrawnMatchesLog(t *testing.T, url string) {
	t.Helper()
	ctx := context.Background()
	tx, err := testdb.Pool(t, url).BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	read := func() (withdrawn []string) {
		rows, err := tx.Query(ctx, `SELECT session_id || '/' || version FROM session_summaries WHERE withdrawn ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		withdrawn, err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return withdrawn
	}
	built := read()
	if _, err := tx.Exec(ctx, `UPDATE session_summaries SET withdrawn = false`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, migrationStatement(t, "00020_summary_withdrawal.sql", "UPDATE session_summaries")); err != nil {
		t.Fatalf("withdrawals: %v", err)
	}
	if want := read(); len(want) == 0 || strings.Join(built, " ") != strings.Join(want, " ") {
		t.Fatalf("withdrawn summaries %v, the log says %v", built, want)
	}
}

// backlogMatchesLog compares session_backlog, in one snapshot, with what
// the migration that brought it in computes from the messages table and
// the log up to the messages projection's checkpoint: they must be equal
// (so that `arq projections verify messages` finds an upgraded database
// as a rebuild would make it).
func backlogMatchesLog(t *testing.T, url string) {
	t.Helper()
	backfill := migrationStatement(t, "00016_session_backlog.sql", "INSERT INTO session_backlog")
	withdrawals := migrationStatement(t, "00020_summary_withdrawal.sql", "WITH applied AS")

	ctx := context.Background()
	tx, err := testdb.Pool(t, url).BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	type row struct {
		to, cost int
		tos      string
	}
	read := func() map[string]row {
		rows, err := tx.Query(ctx, `SELECT session_id, summarized_to, cost, summary_tos::text FROM session_backlog`)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]row{}
		for rows.Next() {
			var id string
			var r row
			if err := rows.Scan(&id, &r.to, &r.cost, &r.tos); err != nil {
				t.Fatal(err)
			}
			out[id] = r
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	built := read()
	if _, err := tx.Exec(ctx, `TRUNCATE session_backlog`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, backfill); err != nil {
		t.Fatalf("backfill: %v", err)
	}
	if _, err := tx.Exec(ctx, withdrawals); err != nil {
		t.Fatalf("withdrawals: %v", err)
	}
	want := read()
	if len(want) == 0 {
		t.Fatal("no backlog to compare")
	}
	for id, b := range built {
		w, ok := want[id]
		switch {
		case b.cost < 0:
			t.Errorf("session %s: backlog %+v below zero", id, b)
		case !ok:
			t.Errorf("session %s: backlog %+v, the log says none", id, b)
		case b != w:
			t.Errorf("session %s: backlog %+v, the log says %+v", id, b, w)
		}
	}
	for id, w := range want {
		if _, ok := built[id]; !ok {
			t.Errorf("session %s: no backlog, the log says %+v", id, w)
		}
	}
}

// A session's message_count leaves out the messages redacted since, as
// every read does; a rebuild counts the same, and the migration that
// moved the count to the messages projection counts afresh.
func TestMessageCountLeavesOutRedactedMessages(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "count", "name": "C"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	res := s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"messages": []map[string]any{
		{"role": "user", "content": "one"}, {"role": "assistant", "content": "two"}, {"role": "user", "content": "three"}}}))
	s.Must(204, s.Do("DELETE", "/v1/messages/"+res.JSON["messages"].([]any)[1].(map[string]any)["id"].(string), nil))
	count := func() float64 { return s.Must(200, s.Do("GET", "/v1/sessions/"+sid, nil)).Num("message_count") }
	if n := count(); n != 2 {
		t.Fatalf("message_count %v after a redaction, want 2", n)
	}
	for _, p := range []string{"sessions", "messages"} {
		if code, _, errOut := runCLI(t, s.URL, "projections", "rebuild", p, "--quiet"); code != 0 {
			t.Fatalf("rebuild %s: exit %d: %s", p, code, errOut)
		}
	}
	if n := count(); n != 2 {
		t.Fatalf("message_count %v after a rebuild, want 2", n)
	}

	// The migration that moved the count to the messages projection
	// counts the messages it holds, whatever was counted before.
	fix := migrationStatement(t, "00028_message_count_with_messages.sql", "UPDATE session_backlog")
	pool := testdb.OwnerPool(t, s.URL)
	if _, err := pool.Exec(context.Background(), `UPDATE session_backlog SET message_count = 3 WHERE session_id = $1`, sid); err != nil { // as counted before
		t.Fatal(err)
	}
	if _, err := pool.Exec(context.Background(), fix); err != nil {
		t.Fatalf("migration: %v", err)
	}
	if n := count(); n != 2 {
		t.Fatalf("message_count %v after the migration, want 2", n)
	}
}

// migrationStatement returns the statement of a migration file that
// begins with prefix, without its semicolon: a test runs it as the
// migration would.
func migrationStatement(t *testing.T, file, prefix string) string {
	t.Helper()
	migration, err := os.ReadFile("../migrations/" + file)
	if err != nil {
		t.Fatal(err)
	}
	text := string(migration)
	start := strings.Index(text, prefix)
	if start < 0 {
		t.Fatalf("%s has no statement %q", file, prefix)
	}
	return text[start : start+strings.Index(text[start:], ";")]
}
