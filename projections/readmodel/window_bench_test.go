package readmodel

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/tokens"
)

// windowFixture fills a fresh database with what cost.py's context read
// meets (e2e/testdata/loadtest/cost.py): one session of 1,000 messages of
// 20 words and a summary, and its user's 500 memories of 12 words, the
// words drawn from 2,000, importances and update times spread; then
// ANALYZE. It returns the pool, the user and the session.
func windowFixture(tb testing.TB) (*pgxpool.Pool, string, string) {
	tb.Helper()
	ctx := context.Background()
	pool := testdb.Pool(tb, testdb.New(tb))
	words := func(n int) string {
		return fmt.Sprintf(`(SELECT string_agg('w' || floor(random() * 2000)::int, ' ') FROM generate_series(1, %d + 0 * i))`, n)
	}
	sql := `SELECT setseed(0.42);
		INSERT INTO sessions (id, user_id, tenant, title, metadata, token_hash, status, version, created_at, updated_at)
			VALUES ('s1', 'u1', 'default', '', '{}', 'h1', 'open', 1, now(), now());
		INSERT INTO messages (id, session_id, user_id, tenant, seq, role, content, name, metadata, tokens, version, created_at, updated_at)
			SELECT 'm' || lpad(i::text, 5, '0'), 's1', 'u1', 'default', i, CASE WHEN i % 2 = 1 THEN 'user' ELSE 'assistant' END,
				` + words(20) + `, CASE WHEN i % 50 = 0 THEN 'helper' ELSE '' END, '{}', 40 + i % 20, 1, now(), now()
			FROM generate_series(1, 1000) i;
		INSERT INTO session_summaries (session_id, version, user_id, content, tokens, from_seq, to_seq, method, created_at)
			VALUES ('s1', 1, 'u1', 'what was said before', 250, 1, 900, 'extractive', now());
		INSERT INTO memories (id, user_id, tenant, type, content, importance, tags, metadata, tokens, version, created_at, updated_at,
				stored_tx, stored_position)
			SELECT 'r' || lpad(i::text, 5, '0'), 'u1', 'default', 'semantic', ` + words(12) + `, round(random()::numeric, 2),
				'{}', '{}', 30, 1, now() - i * interval '1 hour', now() - (i % 97) * interval '1 hour', '1', i
			FROM generate_series(1, 500) i;
		ANALYZE;`
	if _, err := pool.Exec(ctx, sql); err != nil {
		tb.Fatal(err)
	}
	return pool, "u1", "s1"
}

// oldWindowCandidates is windowCandidates before rankIfMatched: every
// candidate ranked by ts_rank_cd, matching or not.
const oldWindowCandidates = `
		(SELECT ` + memoryCols + `, ts_rank_cd(search, arq_any_words($2)) AS text_rank, true AS matched
			FROM memories WHERE user_id = $1 AND search @@ arq_any_words($2) AND ` + windowLive + ` LIMIT $9)
		UNION ALL
		(SELECT ` + memoryCols + `, ts_rank_cd(search, arq_any_words($2)), coalesce(search @@ arq_any_words($2), false)
			FROM memories WHERE user_id = $1 AND ` + windowLive + ` ORDER BY importance DESC LIMIT $8)
		UNION ALL
		(SELECT ` + memoryCols + `, ts_rank_cd(search, arq_any_words($2)), coalesce(search @@ arq_any_words($2), false)
			FROM memories WHERE user_id = $1 AND ` + windowLive + ` ORDER BY updated_at DESC LIMIT $8)`

// TestRankIfMatchedRanksAsBefore checks that ranking only the candidates
// that match leaves every ranking as it was: the same memories, in the
// same order, with the same scores to the last bit, for texts with
// matches, without, with stop words only and with no words at all.
func TestRankIfMatchedRanksAsBefore(t *testing.T) {
	pool, user, _ := windowFixture(t)
	ctx := context.Background()
	oldSQL := strings.Replace(relevantSQL, windowCandidates, oldWindowCandidates, 1)
	if oldSQL == relevantSQL {
		t.Fatal("relevantSQL no longer holds windowCandidates")
	}
	now := time.Now()
	texts := []string{"", "the and of", "nothing-here zzz", "w5", "w5 w17 w1999", "w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12"}
	for i := 0; i < 40; i++ {
		texts = append(texts, fmt.Sprintf("w%d salt%d w%d", i*37%2000, i, i*91%2000))
	}
	var matching int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM memories WHERE search @@ arq_any_words('w5 w17 w1999')`).Scan(&matching); err != nil || matching == 0 {
		t.Fatalf("the fixture has %d memories matching w5, w17 or w1999 (%v): the test would compare nothing", matching, err)
	}
	for _, text := range texts {
		sql, args := relevantTextSQL(user, text, memoryScope{now: now}, windowMemoryLimit, nil)
		rows, err := pool.Query(ctx, sql, args...)
		got, err := scanHits(rows, err, "new")
		if err != nil {
			t.Fatal(err)
		}
		rows, err = pool.Query(ctx, oldSQL, args...)
		want, err := scanHits(rows, err, "old")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != windowMemoryLimit || !reflect.DeepEqual(got, want) {
			t.Fatalf("text %q: ranked %d memories unlike before (%d)", text, len(got), len(want))
		}
	}
}

// TestFirstRoundReadsWhatEachReadAloneDoes checks that a window's first
// reads, sent together, answer what each statement answers alone: the
// newest page within the budget, the summary and the ranking.
func TestFirstRoundReadsWhatEachReadAloneDoes(t *testing.T) {
	pool, user, session := windowFixture(t)
	ctx := context.Background()
	r := NewReader(pool)
	now := time.Now()
	for _, req := range []WindowRequest{
		{Budget: domain.DefaultBudget(), Query: "w5 w17", Now: now},
		{Budget: domain.Budget{MaxTokens: 300, SummaryShare: 0.2, MemoryShare: 0.3}, Query: "w1", Now: now, BeforeSeq: 500},
		{Budget: domain.Budget{MaxTokens: 100000, SummaryShare: 0.2, MemoryShare: 0.3}, Query: "w1999", Now: now},
		{Budget: domain.DefaultBudget(), Now: now},
	} {
		first, err := r.firstRound(ctx, session, user, req, nil)
		if err != nil {
			t.Fatal(err)
		}
		page, n, err := r.newestWithin(ctx, session, req.BeforeSeq, windowPage, req.Budget.MaxTokens, nil)
		if err != nil || !reflect.DeepEqual(first.page, page) || first.n != n {
			t.Fatalf("%+v: page of %d (n %d) against %d (n %d), %v", req, len(first.page), first.n, len(page), n, err)
		}
		sum, ok, err := r.LatestSummary(ctx, session, req.BeforeSeq)
		if err != nil || first.summary != sum || first.hasSummary != ok {
			t.Fatalf("%+v: summary %+v against %+v, %v", req, first.summary, sum, err)
		}
		if first.ranked != (req.Query != "") {
			t.Fatalf("%+v: ranked %v", req, first.ranked)
		}
		if first.ranked {
			hits, err := r.RelevantMemories(ctx, user, req.Query, nil, now, nil, windowMemoryLimit)
			if err != nil || !reflect.DeepEqual(first.hits, hits) {
				t.Fatalf("%+v: %d hits against %d, %v", req, len(first.hits), len(hits), err)
			}
		}
	}
}

// BenchmarkWindow measures a context window built and encoded as on a
// cache miss (a query no one asked before), over windowFixture: the
// Postgres statements, the scans, the fitting and the JSON, in the
// benchmark's process (Postgres's CPU is not in ns/op; cost.py counts
// both). Its figures beside the code before issue 20 are in
// BENCHMARKS.md.
func BenchmarkWindow(b *testing.B) {
	pool, _, session := windowFixture(b)
	ctx := context.Background()
	r := NewReader(pool)
	tc, err := tokens.New("cl100k_base")
	if err != nil {
		b.Fatal(err)
	}
	st, err := r.WindowStateOf(ctx, session)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := WindowRequest{Budget: domain.DefaultBudget(), Query: fmt.Sprintf("w%d salt%d", i%2000, i), Now: time.Now(), UserID: st.UserID}
		w, err := r.Window(ctx, session, req, tc)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := w.AppendJSON(nil); err != nil {
			b.Fatal(err)
		}
	}
}

// oldNewestWithin is newestWithin's statement before the page was cut on
// its sequence numbers and tokens alone.
const oldNewestWithin = `SELECT ` + messageCols + `, n FROM (
			SELECT *, sum(tokens + $4) OVER (ORDER BY seq DESC) - (tokens + $4) AS spent_before, count(*) OVER () AS n
			FROM (SELECT ` + messageCols + ` FROM messages
				WHERE session_id = $1 AND ($2 = 0 OR seq < $2) ORDER BY seq DESC LIMIT $3) newest) cut
		WHERE spent_before <= $5 ORDER BY seq DESC`

// TestNewestWithinCutsAsBefore checks that the page of newest messages is
// cut where it was, with the same rows and the same count, over budgets
// from one token to more than the session holds, below several
// sequence numbers, and with messages put back as they were (WindowAt).
func TestNewestWithinCutsAsBefore(t *testing.T) {
	pool, _, session := windowFixture(t)
	ctx := context.Background()
	past := &pastItems{messageIDs: []string{"m00990", "m00500"},
		messageRows: `[{"id":"m00990","session_id":"s1","user_id":"u1","seq":990,"role":"user","content":"as it was","name":"","metadata":{},"tokens":7,"embedding_dim":0,"version":1,"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z","embedding":null}]`}
	for _, p := range []*pastItems{nil, past} {
		for _, before := range []int{0, 1, 2, 500, 999, 1000, 1001} {
			for _, room := range []int{0, 1, 43, 44, 45, 1000, 4096, 100000} {
				for _, limit := range []int{1, 200} {
					sql, args := newestWithinSQL(session, before, limit, room, p)
					got, gotN, err := scanNewest(pool.Query(ctx, sql, args...))
					if err != nil {
						t.Fatal(err)
					}
					oldSQL, args := p.overMessages(oldNewestWithin, args[:5])
					want, wantN, err := scanNewest(pool.Query(ctx, oldSQL, args...))
					if err != nil {
						t.Fatal(err)
					}
					if !reflect.DeepEqual(got, want) || gotN != wantN {
						t.Fatalf("past %v, before %d, room %d, limit %d: %d rows (n %d) against %d (n %d)",
							p != nil, before, room, limit, len(got), gotN, len(want), wantN)
					}
				}
			}
		}
	}
}
