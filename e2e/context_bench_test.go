package e2e

import (
	"context"
	"fmt"
	"github.com/arq-memory/arq/internal/testwait"
	"io"
	mathrand "math/rand"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/arq-memory/arq/projections/readmodel"
)

// contextFixture is a server with one session of 10,000 messages and a
// user of 10,000 memories, made once for all context benchmarks.
type contextFixture struct {
	s             *benchServer
	uid, sid, mid string
	pool          *pgxpool.Pool
}

// newContextFixture builds the fixture; it goes when b ends.
func newContextFixture(b *testing.B) *contextFixture {
	s := newBenchServer(b)
	r := rand.New(rand.NewPCG(3, 5))
	text := newVocabulary(r)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "ctx", "name": "Ctx"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	for i := 0; i < 100; i++ {
		batch := make([]map[string]any, 100)
		for j := range batch {
			batch[j] = map[string]any{"role": []string{"user", "assistant"}[j%2], "content": text(10 + r.IntN(30))}
		}
		s.Must(202, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"messages": batch}, "Prefer", "respond-async"))
	}
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 9))
			text := newVocabulary(r)
			for i := 0; i < 10000/16+1; i++ {
				body := fmt.Sprintf(`{"type":"semantic","content":%q,"importance":%.2f}`, text(5+r.IntN(25)), r.Float64())
				if status, err := s.post("/v1/users/"+uid+"/memories", body, "Prefer", "respond-async"); err != nil || status != 202 {
					panic(fmt.Sprintf("store memory: %d %v", status, err))
				}
			}
		}(w)
	}
	wg.Wait()
	last := s.Must(202, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "what about the garden and the river"}, "Prefer", "respond-async"))
	s.Must(200, s.Do("GET", "/v1/sessions/"+sid, nil, "X-Arq-Min-Position", last.Header.Get("X-Arq-Position")))
	pool, err := pgxpool.New(context.Background(), s.URL)
	if err != nil {
		panic(err)
	}
	mid := s.Must(200, s.Do("GET", "/v1/sessions/"+sid+"/messages?limit=1", nil)).Items()[0]["id"].(string)
	b.Cleanup(pool.Close)
	// As autovacuum would have by now on a server that grew to this.
	// The fixture's 5,000 assistant messages are due a context snapshot
	// each: the snapshotter computes their windows in the background, and
	// measuring reads while it does measures both.
	testwait.Eventually(b, 5*time.Minute, "context snapshots of the fixture recorded", func() (bool, error) {
		var due int
		err := pool.QueryRow(context.Background(), `SELECT count(*) FROM snapshots_due`).Scan(&due)
		return due == 0, err
	})
	if _, err := pool.Exec(context.Background(), `ANALYZE`); err != nil {
		b.Fatal(err)
	}
	return &contextFixture{s: s, uid: uid, sid: sid, mid: mid, pool: pool}
}

func (f *contextFixture) get(path string) error {
	resp, err := f.s.client.Get(f.s.Base + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %d", path, resp.StatusCode)
	}
	return nil
}

// BenchmarkContextRead reads the context window (default budget, 4096
// tokens) of a session of 10,000 messages whose user has 10,000 memories.
// warm repeats one request, so the window comes from Redis; cold asks with
// a query no one asked before, so every read builds the window in
// Postgres (and stores it). The baseline is one indexed primary-key
// SELECT of a message row through pgx, on the same database, at the same
// client counts; ranking-alone is the memory ranking statement of a cold
// read by itself, through pgx.
func BenchmarkContextRead(b *testing.B) {
	f := newContextFixture(b)
	for _, n := range []int{1, 32} {
		b.Run(fmt.Sprintf("baseline=pk-select/clients=%d", n), func(b *testing.B) {
			drive(b, n, func(int) error {
				var content string
				return f.pool.QueryRow(context.Background(), `SELECT content FROM messages WHERE id = $1`, f.mid).Scan(&content)
			})
		})
	}
	topics := benchWords[100:1100] // words of middling frequency
	// The memory ranking of a cold read alone, straight through pgx: a
	// bound on what a cold read can do on this machine.
	reader := readmodel.NewReader(f.pool)
	for _, n := range []int{1, 32} {
		b.Run(fmt.Sprintf("ranking-alone/clients=%d", n), func(b *testing.B) {
			var seq atomicCounter
			run := time.Now().UnixNano()
			drive(b, n, func(int) error {
				i := seq.next()
				q := fmt.Sprintf("%s %s %d%d", topics[i%len(topics)], topics[(i/7)%len(topics)], run, i)
				_, err := reader.RelevantMemories(context.Background(), f.uid, q, nil, time.Now(), nil, 50)
				return err
			})
		})
	}
	for _, mode := range []string{"warm", "cold"} {
		for _, n := range []int{1, 32} {
			b.Run(fmt.Sprintf("cache=%s/clients=%d", mode, n), func(b *testing.B) {
				var seq atomicCounter
				run := time.Now().UnixNano() // cold queries never repeat
				if mode == "warm" {
					if err := f.get("/v1/sessions/" + f.sid + "/context?query=" + benchWords[300] + "+" + benchWords[700]); err != nil {
						b.Fatal(err)
					}
				}
				drive(b, n, func(int) error {
					q := benchWords[300] + "+" + benchWords[700]
					if mode == "cold" {
						i := seq.next()
						q = fmt.Sprintf("%s+%s+%d%d", topics[i%len(topics)], topics[(i/7)%len(topics)], run, i)
					}
					return f.get("/v1/sessions/" + f.sid + "/context?query=" + q)
				})
			})
		}
	}
}

type atomicCounter struct {
	mu sync.Mutex
	n  int
}

func (c *atomicCounter) next() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return c.n
}

// benchWords is a vocabulary of 5,000 made-up words; texts draw from it
// with a Zipf law, as natural language does (stop words aside), so a query
// of two words matches a small share of 10,000 memories, as it would.
var benchWords = func() []string {
	r := rand.New(rand.NewPCG(1, 1))
	syll := strings.Fields("ka lo mi ne ru sa te vo ba di fe gu ho ji ku la me no pi re si tu ve wa yo za")
	seen := map[string]bool{}
	var out []string
	for len(out) < 5000 {
		w := ""
		for n := 2 + r.IntN(3); n > 0; n-- {
			w += syll[r.IntN(len(syll))]
		}
		if !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}()

// newVocabulary returns a maker of texts of n words drawn from benchWords
// by a Zipf law.
func newVocabulary(r *rand.Rand) func(n int) string {
	z := mathrand.NewZipf(mathrand.New(mathrand.NewSource(int64(r.Uint64()))), 1.1, 2, uint64(len(benchWords)-1))
	return func(n int) string {
		out := make([]string, n)
		for i := range out {
			out[i] = benchWords[z.Uint64()]
		}
		return strings.Join(out, " ")
	}
}
