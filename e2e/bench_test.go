package e2e

import (
	"context"
	"fmt"
	"github.com/arq-memory/arq/internal/testserver"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/arq-memory/arq/eventstore"
)

// The HTTP benchmarks drive a real `arq serve` (in-process, on loopback)
// the way assistant back ends do, beside the raw event append of the store
// measured in the same run. See BENCHMARKS.md.

// latencies records per-request durations and reports p50, p99 and rate.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) report(b *testing.B, elapsed time.Duration) {
	sort.Slice(l.d, func(i, j int) bool { return l.d[i] < l.d[j] })
	if len(l.d) == 0 {
		return
	}
	q := func(p float64) float64 { return float64(l.d[int(p*float64(len(l.d)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(len(l.d))/elapsed.Seconds(), "req/s")
}

// drive runs b.N operations over n clients; op gets the client's index.
func drive(b *testing.B, n int, op func(client int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	lat := &latencies{}
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if err := op(w); err != nil {
					failed.Store(err)
					return
				}
				lat.add(time.Since(t0))
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	lat.report(b, elapsed)
}

type benchServer struct {
	*testserver.Server
	client *http.Client
}

func newBenchServer(b *testing.B) *benchServer {
	s := testserver.Start(b, nil)
	return &benchServer{Server: s, client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
}

func (s *benchServer) post(path, body string, headers ...string) (int, error) {
	req, err := http.NewRequest("POST", s.Base+path, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var buf [4096]byte
	for {
		if _, err := resp.Body.Read(buf[:]); err != nil {
			break
		}
	}
	return resp.StatusCode, nil
}

// BenchmarkHTTPMessageAppend appends one message per request, each client
// to its own session. mode=ryw answers once the query tables hold the
// message (the default); mode=async sends Prefer: respond-async.
func BenchmarkHTTPMessageAppend(b *testing.B) {
	for _, bc := range []struct {
		mode    string
		n       int
		headers []string
	}{{"ryw", 1, nil}, {"ryw", 32, nil}, {"async", 1, []string{"Prefer", "respond-async"}}, {"async", 32, []string{"Prefer", "respond-async"}}} {
		n, want := bc.n, 201
		if bc.headers != nil {
			want = 202
		}
		b.Run(fmt.Sprintf("mode=%s/clients=%d", bc.mode, n), func(b *testing.B) {
			s := newBenchServer(b)
			u := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "bench", "name": "Bench"}))
			sessions := make([]string, n)
			for i := range sessions {
				sessions[i] = s.Must(201, s.Do("POST", "/v1/users/"+u.Str("id")+"/sessions", map[string]any{"title": "bench"})).Str("id")
			}
			body := `{"role":"user","content":"remember that I prefer short answers about gardening in the shade"}`
			drive(b, n, func(c int) error {
				status, err := s.post("/v1/sessions/"+sessions[c]+"/messages", body, bc.headers...)
				if err == nil && status != want {
					err = fmt.Errorf("append answered %d", status)
				}
				return err
			})
		})
	}
}

func BenchmarkHTTPMemorySearch(b *testing.B) {
	for _, n := range []int{1, 32} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			s := newBenchServer(b)
			uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "bench", "name": "Bench"})).Str("id")
			words := []string{"garden", "shade", "tomato", "python", "travel", "music", "coffee", "running", "books", "cooking"}
			for i := 0; i < 1000; i++ {
				content := fmt.Sprintf("note %d about %s and %s", i, words[i%10], words[(i*7)%10])
				s.Must(202, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": content}, "Prefer", "respond-async"))
			}
			// Wait until the memories are projected before searching.
			last := s.Must(202, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "last"}, "Prefer", "respond-async"))
			s.Must(200, s.Do("GET", "/v1/users/"+uid+"/memories?limit=1", nil, "X-Arq-Min-Position", last.Header.Get("X-Arq-Position")))
			drive(b, n, func(c int) error {
				status, err := s.post("/v1/users/"+uid+"/memories/search", fmt.Sprintf(`{"query":"%s %s","limit":10}`, words[c%10], words[(c+3)%10]))
				if err == nil && status != 200 {
					err = fmt.Errorf("search answered %d", status)
				}
				return err
			})
		})
	}
}

// BenchmarkRawAppend is the baseline: one eventstore.Append of one event per
// operation, each client to its own stream, on the same server.
func BenchmarkRawAppend(b *testing.B) {
	for _, n := range []int{1, 32} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			s := newBenchServer(b)
			cfg, err := pgxpool.ParseConfig(s.URL)
			if err != nil {
				b.Fatal(err)
			}
			cfg.MaxConns = 20
			pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer pool.Close()
			store := eventstore.New(pool)
			data := []byte(`{"role":"user","content":"remember that I prefer short answers about gardening in the shade"}`)
			drive(b, n, func(c int) error {
				_, err := store.Append(context.Background(), eventstore.Stream{ID: fmt.Sprintf("raw-%d", c), Type: "raw"}, eventstore.Any(),
					eventstore.Event{Type: "message.appended", Data: data})
				return err
			})
		})
	}
}
