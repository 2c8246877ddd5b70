package eventstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/oklog/ulid/v2"

	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/internal/testdb"
)

// The benchmarks compare ARQ's append and log read with plain Postgres
// statements on an equivalent row, measured in the same run (see
// BENCHMARKS.md for the command and figures).

const benchData = `{"role":"user","content":"remember that I prefer short answers","tokens":7}`

// maxConns is ARQ's default pool size (ARQ_DB_MAX_CONNS): appenders beyond
// it queue for a connection, in the store and in the baselines alike, as
// they do in a running server.
const maxConns = 20

func benchPool(b *testing.B, conns int32) *pgxpool.Pool {
	b.Helper()
	conns = min(conns, maxConns)
	cfg, err := pgxpool.ParseConfig(testdb.New(b))
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = conns
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	if _, err := pool.Exec(context.Background(), `CREATE TABLE plain_events (
		position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		event_id text NOT NULL, stream_id text NOT NULL, stream_type text NOT NULL, version integer NOT NULL,
		event_type text NOT NULL, schema_version integer NOT NULL, data jsonb NOT NULL, metadata jsonb NOT NULL,
		recorded_at timestamptz NOT NULL DEFAULT now(), hash bytea)`); err != nil {
		b.Fatal(err)
	}
	return pool
}

// parallel runs op b.N times spread over n goroutines, each with its own
// index, and reports operations per second.
func parallel(b *testing.B, n int, op func(worker int, i int64) error) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				if err := op(w, i); err != nil {
					failed.Store(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
}

// BenchmarkAppend appends one event per operation, each appender to its own
// stream at the exact expected version, as commands do.
func BenchmarkAppend(b *testing.B) {
	for _, n := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("appenders=%d", n), func(b *testing.B) {
			pool := benchPool(b, int32(n))
			s := eventstore.New(pool)
			versions := make([]int, n)
			parallel(b, n, func(w int, _ int64) error {
				_, err := s.Append(context.Background(), eventstore.Stream{ID: fmt.Sprintf("bench-%d", w), Type: "session"},
					eventstore.Exactly(versions[w]), eventstore.Event{Type: "message.appended", Data: json.RawMessage(benchData),
						Metadata: eventstore.Metadata{CorrelationID: "req", Actor: "bench"}})
				versions[w]++
				return err
			})
		})
	}
}

// BenchmarkPlainInsert is the baseline for BenchmarkAppend: one autocommit
// INSERT of the same row into a table with a serial key and no other index.
func BenchmarkPlainInsert(b *testing.B) {
	for _, n := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("appenders=%d", n), func(b *testing.B) {
			pool := benchPool(b, int32(n))
			versions := make([]int, n)
			parallel(b, n, func(w int, _ int64) error {
				versions[w]++
				_, err := pool.Exec(context.Background(), `INSERT INTO plain_events
					(event_id, stream_id, stream_type, version, event_type, schema_version, data, metadata, hash)
					VALUES ($1, $2, 'session', $3, 'message.appended', 1, $4, $5, '\x0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef')`,
					ulid.Make().String(), fmt.Sprintf("bench-%d", w), versions[w], benchData, `{"correlation_id":"req","actor":"bench","tenant":"default"}`)
				return err
			})
		})
	}
}

// BenchmarkPlainInsertIndexed is a second baseline: the same INSERT into a
// table with the events table's own keys and unique constraints, so the
// difference to BenchmarkAppend is the append protocol alone (lock, version
// check, idempotency), not the indexes the log needs.
func BenchmarkPlainInsertIndexed(b *testing.B) {
	for _, n := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("appenders=%d", n), func(b *testing.B) {
			pool := benchPool(b, int32(n))
			if _, err := pool.Exec(context.Background(), `CREATE TABLE indexed_events (LIKE events INCLUDING ALL)`); err != nil {
				b.Fatal(err)
			}
			versions := make([]int, n)
			parallel(b, n, func(w int, _ int64) error {
				versions[w]++
				_, err := pool.Exec(context.Background(), `INSERT INTO indexed_events
					(event_id, stream_id, stream_type, version, event_type, schema_version, data, metadata, hash)
					VALUES ($1, $2, 'session', $3, 'message.appended', 1, $4, $5, '\x0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef')`,
					ulid.Make().String(), fmt.Sprintf("bench-%d", w), versions[w], benchData, `{"correlation_id":"req","actor":"bench","tenant":"default"}`)
				return err
			})
		})
	}
}

const readLogSize = 50_000

// fillLog writes readLogSize events into events and plain_events.
func fillLog(b *testing.B, pool *pgxpool.Pool) {
	b.Helper()
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `
		INSERT INTO events (event_id, stream_id, stream_type, version, event_type, data, metadata, hash)
		SELECT upper(gen_random_uuid()::text), 'fill-' || (g / 100), 'session', g % 100 + 1, 'message.appended', $1::jsonb, '{"tenant":"default"}', '\x00'
		FROM generate_series(0, $2 - 1) g ORDER BY g`, benchData, readLogSize); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO plain_events (event_id, stream_id, stream_type, version, event_type, schema_version, data, metadata, recorded_at)
		SELECT event_id, stream_id, stream_type, version, event_type, schema_version, data, metadata, recorded_at FROM events ORDER BY position`); err != nil {
		b.Fatal(err)
	}
	for _, t := range []string{"events", "plain_events"} {
		if _, err := pool.Exec(ctx, `VACUUM ANALYZE `+t); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadAll reads the whole log in commit-safe order, 1000 events a
// page; one operation is one event.
func BenchmarkReadAll(b *testing.B) {
	pool := benchPool(b, 4)
	fillLog(b, pool)
	s := eventstore.New(pool)
	ctx := context.Background()
	// Wait until every filled event is visible (other sessions' open
	// transactions may hide them for a moment).
	for {
		got, err := s.ReadAll(ctx, eventstore.Cursor{TransactionID: 0, Position: 0}, readLogSize, eventstore.Filter{})
		if err != nil {
			b.Fatal(err)
		}
		if len(got) == readLogSize {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.ResetTimer()
	start := time.Now()
	read := 0
	cur := eventstore.Start
	for read < b.N {
		page, err := s.ReadAll(ctx, cur, 1000, eventstore.Filter{})
		if err != nil {
			b.Fatal(err)
		}
		if len(page) == 0 {
			cur = eventstore.Start
			continue
		}
		read += len(page)
		cur = page[len(page)-1].Cursor()
	}
	b.StopTimer()
	b.ReportMetric(float64(read)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkPlainOrderedSelect is the baseline for BenchmarkReadAll: keyset
// pages of 1000 rows by position, scanned into the same struct.
func BenchmarkPlainOrderedSelect(b *testing.B) {
	pool := benchPool(b, 4)
	fillLog(b, pool)
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	read := 0
	var after int64
	for read < b.N {
		rows, err := pool.Query(ctx, `SELECT position, 0::bigint, event_id, stream_id, stream_type, version, event_type,
			schema_version, data, metadata, recorded_at FROM plain_events WHERE position > $1 ORDER BY position LIMIT 1000`, after)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for rows.Next() {
			r, err := eventstore.ScanRecorded(rows)
			if err != nil {
				b.Fatal(err)
			}
			after = r.Position
			n++
		}
		rows.Close()
		if n == 0 {
			after = 0
		}
		read += n
	}
	b.StopTimer()
	b.ReportMetric(float64(read)/time.Since(start).Seconds(), "events/s")
}
