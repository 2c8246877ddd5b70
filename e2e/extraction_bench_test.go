package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/arq-memory/arq/app"
	"github.com/arq-memory/arq/internal/fakellm"
	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/internal/testserver"
)

// BenchmarkExtractionPass measures, in one run, the message append (one
// client, read-your-writes, over HTTP) and the extraction pass's own cost
// per message: one run over a session's new user message, with the model
// (internal/fakellm, on loopback) answering at once, so what is measured
// is ARQ's part: reading the messages, the two calls, finding each
// candidate's known memories and recording the run and its memory in one
// append. Each run reads one message and stores one memory. See
// BENCHMARKS.md.
func BenchmarkExtractionPass(b *testing.B) {
	ctx := context.Background()
	llm := fakellm.New(b)
	url := testdb.New(b)
	// The server extracts nothing by itself (its lookback is too short
	// for any session to be due): the runs below are the only ones.
	s := testserver.StartOn(b, url, map[string]string{"ARQ_EXTRACTOR": "chat", "ARQ_EXTRACTOR_URL": llm.URL, "ARQ_EXTRACT_LOOKBACK": "1ns"})
	cfg := app.DefaultConfig()
	cfg.DatabaseURL, cfg.MasterKey = url, testserver.MasterKey
	cfg.Extractor, cfg.ExtractorURL = "chat", llm.URL
	a, err := app.Open(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), app.Options{Parts: app.PartCommands})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(a.Close)
	// As arq memories extract does: the server's projectors hear of each
	// run's events at once.
	nctx, cancel := context.WithCancel(ctx)
	wait := a.RunLog(nctx, func(error) {})
	b.Cleanup(func() { cancel(); wait() })
	client := &benchServer{Server: s, client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "bench", "name": "Bench"})).Str("id")

	b.Run("op=append", func(b *testing.B) {
		sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
		drive(b, 1, func(int) error {
			status, err := client.post("/v1/sessions/"+sid+"/messages", `{"role":"user","content":"remember that I prefer short answers about gardening in the shade"}`)
			if err == nil && status != 201 {
				err = fmt.Errorf("append answered %d", status)
			}
			return err
		})
	})
	plants := 0 // across the benchmark's rounds: each fact is new
	b.Run("op=extract", func(b *testing.B) {
		b.StopTimer()
		sids := make([]string, b.N)
		var last string
		for i := range sids {
			plants++
			sids[i] = s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
			last = s.Must(202, s.Do("POST", "/v1/sessions/"+sids[i]+"/messages",
				map[string]any{"role": "user", "content": fmt.Sprintf("My plant number %d is a fern.", plants)}, "Prefer", "respond-async")).Header.Get("X-Arq-Position")
		}
		s.Must(200, s.Do("GET", "/v1/sessions/"+sids[b.N-1]+"/messages", nil, "X-Arq-Min-Position", last))
		b.ResetTimer()
		start := time.Now()
		for _, sid := range sids {
			out, err := a.ExtractSession(ctx, sid, time.Time{})
			if err != nil {
				b.Fatal(err)
			}
			if out.Actions["add"] != 1 {
				b.Fatalf("a run decided %v; want one memory added", out.Actions)
			}
		}
		b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/message")
	})
}
