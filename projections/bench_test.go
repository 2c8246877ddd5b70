package projections_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/arq-memory/arq/projections"
)

// BenchmarkProjection measures how fast the engine applies a backlog of
// b.N events to the stream catalog (one upsert per stream and batch: see
// catalogWrites), and how long its subscriber transactions hold the log's
// snapshot. Compare with BenchmarkAppend in the same run (BENCHMARKS.md).
func BenchmarkProjection(b *testing.B) {
	for _, batch := range []int{50, 200, 500} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			e := newEnvTB(b)
			ctx := context.Background()
			if _, err := e.pool.Exec(ctx, `
				INSERT INTO events (event_id, stream_id, stream_type, version, event_type, data, metadata, hash)
		SELECT upper(gen_random_uuid()::text), 'fill-' || (g / 100), 'session', g % 100 + 1, 'message.appended', '{"role":"user","content":"hello"}', '{"tenant":"default"}', '\x00'
		FROM generate_series(0, $1 - 1) g ORDER BY g`, b.N); err != nil {
				b.Fatal(err)
			}
			eng, err := projections.NewEngine(e.pool, e.notifier, []projections.Projection{projections.Streams{}},
				projections.Config{BatchSize: batch}, quietLog())
			if err != nil {
				b.Fatal(err)
			}
			runCtx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			b.ResetTimer()
			start := time.Now()
			go func() { done <- eng.Run(runCtx) }()
			for {
				var applied int
				if err := e.pool.QueryRow(ctx, `SELECT coalesce(sum(event_count), 0) FROM streams`).Scan(&applied); err != nil {
					b.Fatal(err)
				}
				if applied >= b.N {
					break
				}
				time.Sleep(2 * time.Millisecond)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			st := eng.Stats()["streams"]
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			if st.Batches > 0 {
				b.ReportMetric(float64(st.Total.Microseconds())/float64(st.Batches)/1000, "ms/batch-held")
				b.ReportMetric(float64(st.Max.Microseconds())/1000, "ms/batch-held-max")
			}
		})
	}
}
