package eventstore_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/internal/testdb"
)

// exportedLog appends n events to a fresh log, in streams of 50 written
// in turns, and exports it to a file, whose path it returns.
func exportedLog(b *testing.B, n int) string {
	b.Helper()
	ctx := context.Background()
	s := eventstore.New(testdb.Pool(b, testdb.New(b)))
	const perStream, perAppend = 50, 10
	for done := 0; done < n; {
		round := min(n-done, 200*perStream)
		for v := 0; v < perStream; v += perAppend {
			for st := 0; st < round/perStream; st++ {
				evs := make([]eventstore.Event, perAppend)
				for i := range evs {
					evs[i] = eventstore.Event{Type: "message.appended", Data: json.RawMessage(fmt.Sprintf(
						`{"content":"message number %d about the garden and the weather <ok> & so on","tokens":12,"role":"user"}`, v+i)),
						Metadata: eventstore.Metadata{CorrelationID: "bench", Actor: "bench"}}
				}
				id := "bench-" + strconv.Itoa(done/perStream+st)
				if _, err := s.Append(ctx, eventstore.Stream{ID: id, Type: "bench"}, eventstore.Exactly(v), evs...); err != nil {
					b.Fatal(err)
				}
			}
		}
		done += round
	}
	path := filepath.Join(b.TempDir(), "log.ndjson")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	if err := s.WriteNDJSON(ctx, w, time.Time{}, nil, nil); err != nil {
		b.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkImportNDJSON measures `arq import`'s reading of a file of
// ARQ_BENCH_EVENTS events (default 100,000) into an empty log, in events
// per second. Run with -benchtime 1x.
func BenchmarkImportNDJSON(b *testing.B) {
	n := 100_000
	if v := os.Getenv("ARQ_BENCH_EVENTS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	path := exportedLog(b, n)
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		s := eventstore.New(testdb.Pool(b, testdb.New(b)))
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		got, err := s.ReadNDJSON(ctx, f, eventstore.ImportOptions{})
		d := time.Since(start)
		_ = f.Close()
		if err != nil || got.Events != int64(n) {
			b.Fatalf("import: %d events, %v", got.Events, err)
		}
		b.ReportMetric(float64(n)/d.Seconds(), "events/s")
	}
}
