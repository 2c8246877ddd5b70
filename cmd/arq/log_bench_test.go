package main

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/arq-memory/arq/app"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/projections"
)

// syntheticLog makes n events of a realistic mix: users, each with a
// session of messages and some memories, as the domain writes them.
func syntheticLog(n int) []eventstore.Exported {
	out := make([]eventstore.Exported, 0, n)
	t0 := time.Now().Add(-time.Hour)
	add := func(stream, typ string, version int, data any) {
		raw, _ := json.Marshal(data)
		out = append(out, eventstore.Exported{Recorded: eventstore.Recorded{
			EventID: ulid.Make().String(), StreamID: stream, StreamType: stream[:len(stream)-27], Version: version,
			Type: typ, SchemaVersion: 1, Data: raw, RecordedAt: t0.Add(time.Duration(len(out)) * time.Microsecond),
			Metadata: eventstore.Metadata{CorrelationID: "bench", Actor: "bench", Tenant: "default"},
		}, Hash: make([]byte, 32)})
	}
	for len(out) < n {
		uid, sid := domain.NewID().String(), domain.NewID().String()
		add("user-"+uid, domain.UserRegistered, 1, domain.UserRegisteredData{UserID: uid, Tenant: "default", ExternalID: uid, Name: "Bench"})
		add("session-"+sid, domain.SessionStarted, 1, domain.SessionStartedData{SessionID: sid, UserID: uid, Title: "bench", TokenHash: sid})
		for i := 1; i <= 90 && len(out) < n; i++ {
			add("message_log-"+sid, domain.MessageAppended, i, domain.MessageAppendedData{MessageID: domain.NewID().String(), SessionID: sid, UserID: uid,
				Role: []string{"user", "assistant"}[i%2], Content: "message number " + strconv.Itoa(i) + " about the garden and the weather", Tokens: 12})
		}
		for i := 0; i < 8 && len(out) < n; i++ {
			mid := domain.NewID().String()
			add("memory-"+mid, domain.MemoryStored, 1, domain.MemoryStoredData{MemoryID: mid, UserID: uid, Type: "semantic",
				Content: "a fact worth keeping number " + strconv.Itoa(i), Importance: 0.5, Tokens: 7})
		}
	}
	return out
}

// BenchmarkLogOperations measures, on one log of ARQ_BENCH_EVENTS events
// (default 1,000,000), in one run: a plain ordered read of the whole log
// (the baseline), export, import and a full rebuild of every projection.
// Run with -benchtime 1x; each figure is events per second.
func BenchmarkLogOperations(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("ARQ_BENCH_EVENTS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	// ARQ_BENCH_PROJECTIONS=a,b rebuilds only those, to see what each costs.
	ps := app.Projections()
	if s := os.Getenv("ARQ_BENCH_PROJECTIONS"); s != "" {
		ps = nil
		for _, name := range strings.Split(s, ",") {
			p, err := projectionNamed(name)
			if err != nil {
				b.Fatal(err)
			}
			ps = append(ps, p)
		}
	}
	ctx := context.Background()
	events := syntheticLog(n)
	url := testdb.New(b)
	cfg := app.DefaultConfig()
	cfg.DatabaseURL = url
	a, err := app.Open(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), app.Options{Projections: ps})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	rate := func(name string, d time.Duration) {
		b.ReportMetric(float64(n)/d.Seconds(), name+"-events/s")
	}
	for b.Loop() {
		start := time.Now()
		for i := 0; i < len(events); i += 10_000 {
			if err := a.Store().Import(ctx, events[i:min(i+10_000, len(events))]); err != nil {
				b.Fatal(err)
			}
		}
		rate("import", time.Since(start))
		if _, err := a.Pool().Exec(ctx, `VACUUM ANALYZE events`); err != nil {
			b.Fatal(err)
		}

		start = time.Now()
		rows, err := a.Pool().Query(ctx, `SELECT `+eventstore.Columns+` FROM events ORDER BY position`)
		if err != nil {
			b.Fatal(err)
		}
		read := 0
		for rows.Next() {
			if _, err := eventstore.ScanRecorded(rows); err != nil {
				b.Fatal(err)
			}
			read++
		}
		rows.Close()
		rate("plain-read", time.Since(start))

		start = time.Now()
		enc := json.NewEncoder(io.Discard)
		if err := a.Store().Export(ctx, time.Time{}, func(e eventstore.Exported) error { return enc.Encode(e) }); err != nil {
			b.Fatal(err)
		}
		rate("export", time.Since(start))

		start = time.Now()
		if err := a.Rebuild(ctx, ps, nil); err != nil {
			b.Fatal(err)
		}
		rate("rebuild-all", time.Since(start))
		// One projection rebuilt online: a copy built beside the live
		// tables and switched in (nothing else runs meanwhile).
		start = time.Now()
		cp, err := projections.NewCopy(ctx, a.Pool(), a.Notifier(), ps[len(ps)/2], projections.OnlineOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := cp.Replace(ctx); err != nil {
			b.Fatal(err)
		}
		rate("online-"+ps[len(ps)/2].Name(), time.Since(start))
		if read != n {
			b.Fatal(fmt.Sprintf("read %d of %d events", read, n))
		}
	}
}
