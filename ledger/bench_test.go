package ledger_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/ledger"
)

// benchData is a message's event body, as eventstore's benchmarks append.
const benchData = `{"role":"user","content":"remember that I prefer short answers","tokens":7}`

// benchPool is a pool of ARQ's default size (20 connections) on a fresh
// database: appenders beyond it queue, as in a running server.
func benchPool(b *testing.B) *pgxpool.Pool {
	b.Helper()
	cfg, err := pgxpool.ParseConfig(testdb.New(b))
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = 20
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	return pool
}

// BenchmarkAppendWithTree is eventstore's BenchmarkAppend (one event per
// append, each appender to its own stream at the exact version), with the
// log's tree kept as the server keeps it (tree=on: Keep in the same
// process, on the same pool, signing a checkpoint every second) and
// without it (tree=off), alternating within each -count. The figure is
// appends a second; the ratio on/off is the tree's cost to the append.
func BenchmarkAppendWithTree(b *testing.B) {
	for _, n := range []int{1, 16, 64} {
		for _, tree := range []bool{false, true} {
			b.Run(fmt.Sprintf("appenders=%d/tree=%v", n, tree), func(b *testing.B) {
				benchAppend(b, n, tree)
			})
		}
	}
}

func benchAppend(b *testing.B, n int, withTree bool) {
	ctx, cancel := context.WithCancel(context.Background())
	pool := benchPool(b)
	notifier := eventstore.NewNotifier(pool, quiet())
	go func() { _ = notifier.Run(ctx) }()
	store := eventstore.New(pool, eventstore.WithAppendHook(notifier.Notify))
	tree := ledger.NewTree(pool, quiet())
	var kept sync.WaitGroup
	if withTree {
		skey, _, err := ledger.NewSigningKey("bench")
		if err != nil {
			b.Fatal(err)
		}
		signer, err := ledger.Signer(skey)
		if err != nil {
			b.Fatal(err)
		}
		kept.Add(1)
		go func() {
			defer kept.Done()
			tree.Keep(ctx, notifier, ledger.Keeping{Signer: signer, Origin: "bench", Every: time.Second})
		}()
	}
	defer func() { cancel(); kept.Wait() }()
	versions := make([]int, n)
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				_, err := store.Append(context.Background(), eventstore.Stream{ID: fmt.Sprintf("bench-%d", w), Type: "session"},
					eventstore.Exactly(versions[w]), eventstore.Event{Type: "message.appended", Data: json.RawMessage(benchData),
						Metadata: eventstore.Metadata{CorrelationID: "req", Actor: "bench"}})
				if err != nil {
					failed.Store(err)
					return
				}
				versions[w]++
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
}

// BenchmarkProve proves events picked at random in a tree of
// ARQ_BENCH_TREE_EVENTS events (default 1,000,000), made by SQL and built
// by Build before the timer starts; it reports the median and the 99th
// percentile of a proof's time (Tree.Prove: the event's leaf and its
// hashes, two queries).
func BenchmarkProve(b *testing.B) {
	size := 1_000_000
	if s := os.Getenv("ARQ_BENCH_TREE_EVENTS"); s != "" {
		var err error
		if size, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	pool := benchPool(b)
	if _, err := pool.Exec(ctx, `INSERT INTO events (event_id, stream_id, stream_type, version, event_type, data, metadata, hash)
		SELECT 'ev' || lpad(i::text, 24, '0'), 'bench-' || (i % 1000), 'bench', i / 1000 + 1, 'bench.happened',
			'{}', '{"tenant":"default"}', sha256(int8send(i))
		FROM generate_series(0, $1::bigint - 1) i`, size); err != nil {
		b.Fatal(err)
	}
	tree := ledger.NewTree(pool, quiet())
	built := time.Now()
	for {
		if _, err := tree.Build(ctx); err != nil {
			b.Fatal(err)
		}
		n, err := tree.Size(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if n == int64(size) {
			break
		}
		if time.Since(built) > 10*time.Minute {
			b.Fatalf("the tree holds %d of %d events after 10 minutes", n, size)
		}
	}
	buildRate := float64(size) / time.Since(built).Seconds()
	took := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		id := fmt.Sprintf("ev%024d", rand.IntN(size))
		t0 := time.Now()
		if _, err := tree.Prove(ctx, id, int64(size)); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(took)
	b.ReportMetric(buildRate, "built-events/s")
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
}
