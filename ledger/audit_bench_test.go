package ledger_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/arq-memory/arq/internal/logtamper"
	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/ledger"
	"github.com/arq-memory/arq/logproof"
)

// BenchmarkCheck measures Tree.Check over a log of ARQ_BENCH_EVENTS events
// (default 100,000): message appends of realistic size over streams of
// 100 events, written by SQL (arq_event_hash computing the chains), the
// tree built and a checkpoint of all of it signed. Run with -benchtime
// 1x; the figure is events per second.
func BenchmarkCheck(b *testing.B) {
	n := 100_000
	if s := os.Getenv("ARQ_BENCH_EVENTS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	const perStream = 100
	streams := max(n/perStream, 1)
	ctx := context.Background()
	pool := testdb.Pool(b, testdb.New(b))
	start := time.Now()
	for v := 1; v <= (n+streams-1)/streams; v++ {
		if _, err := pool.Exec(ctx, `INSERT INTO events (event_id, stream_id, stream_type, version, event_type, data, metadata, recorded_at, hash)
			SELECT id, sid, 'message_log', $1, 'message.appended', d, m, at,
				arq_event_hash((SELECT hash FROM events p WHERE p.stream_id = sid AND p.version = $1 - 1),
					id, sid, 'message_log', $1, 'message.appended', 1, at, d, m)
			FROM (SELECT 'ev-' || $1 || '-' || s AS id, 'message_log-' || s AS sid,
				jsonb_build_object('message_id', md5($1 || '/' || s), 'session_id', md5(s::text), 'user_id', md5('u' || s),
					'role', CASE WHEN $1 % 2 = 0 THEN 'user' ELSE 'assistant' END,
					'content', 'message number ' || $1 || ' about the garden and the weather', 'tokens', 12) AS d,
				jsonb_build_object('actor', 'bench', 'correlation_id', md5('c' || s), 'tenant', 'default') AS m,
				now() + make_interval(secs => $1 * 0.001 + s * 0.000001) AS at
				FROM generate_series(1, least($2::bigint, $3::bigint - ($1 - 1) * $2::bigint)) s) x`, v, streams, n); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE events`); err != nil {
		b.Fatal(err)
	}
	b.Logf("wrote %d events in %s", n, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	tree := ledger.NewTree(pool, quiet())
	logtamper.BuildAll(b, tree, pool)
	b.Logf("built the tree in %s", time.Since(start).Round(time.Millisecond))
	skey, vkey, err := ledger.NewSigningKey("arq-bench")
	if err != nil {
		b.Fatal(err)
	}
	signer, err := ledger.Signer(skey)
	if err != nil {
		b.Fatal(err)
	}
	origin, err := ledger.Origin(ctx, pool)
	if err != nil {
		b.Fatal(err)
	}
	s, err := tree.SignNow(ctx, signer, origin, "")
	if err != nil {
		b.Fatal(err)
	}
	c, err := logproof.OpenCheckpoint([]byte(s.Note), vkey)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		start := time.Now()
		a, err := tree.Check(ctx, c, nil)
		if err != nil {
			b.Fatal(err)
		}
		if !a.Intact() || a.Events != int64(n) {
			b.Fatalf("%d events checked, intact %v, first %s", a.Events, a.Intact(), describe(a.First))
		}
		b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
	}
}
