package e2e

import (
	"context"
	"fmt"
	"github.com/arq-memory/arq/internal/testserver"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// entityFixture is one database of memories served twice: by a server
// that caches entity reads in Redis and by one that does not.
type entityFixture struct {
	cached, plain *benchServer
	pool          *pgxpool.Pool
	// small and large are read over and over; cold are each read once.
	small, large, cold []string
	nextCold           atomic.Int64
}

const (
	entityHot  = 200
	entityCold = 6100 // enough for cache=cold at -benchtime 1000x -count 3
)

func newEntityFixture(b *testing.B) *entityFixture {
	s := newBenchServer(b)
	plain := testserver.StartOn(b, s.URL, map[string]string{"ARQ_CACHE_ENTITIES": "false"})
	f := &entityFixture{cached: s, plain: &benchServer{Server: plain, client: s.client}}
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "ent", "name": "Ent"})).Str("id")
	ids := make([]string, 2*entityHot+entityCold)
	var wg sync.WaitGroup
	const workers = 16
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 11))
			text := newVocabulary(r)
			for i := w; i < len(ids); i += workers {
				// A memory as an assistant stores it: a sentence or two,
				// two tags, a little metadata; the large ones hold a
				// document of about 1,000 words (6 KB).
				words := 20 + r.IntN(40)
				if i >= entityHot && i < 2*entityHot {
					words = 900 + r.IntN(200)
				}
				body := map[string]any{"type": "semantic", "content": text(words), "importance": r.Float64(),
					"tags": []string{benchWords[r.IntN(100)], benchWords[r.IntN(100)]}, "metadata": map[string]any{"source": "chat", "turn": i}}
				ids[i] = s.Must(202, s.Do("POST", "/v1/users/"+uid+"/memories", body, "Prefer", "respond-async")).Str("id")
			}
		}(w)
	}
	wg.Wait()
	last := s.Must(202, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "last"}, "Prefer", "respond-async"))
	s.Must(200, s.Do("GET", "/v1/users/"+uid+"/memories?limit=1", nil, "X-Arq-Min-Position", last.Header.Get("X-Arq-Position")))
	pool, err := pgxpool.New(context.Background(), s.URL)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	if _, err := pool.Exec(context.Background(), `ANALYZE`); err != nil {
		b.Fatal(err)
	}
	f.pool, f.small, f.large, f.cold = pool, ids[:entityHot], ids[entityHot:2*entityHot], ids[2*entityHot:]
	return f
}

func (f *entityFixture) get(s *benchServer, id string) error {
	resp, err := s.client.Get(s.Base + "/v1/memories/" + id)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var buf [4096]byte
	for {
		if _, err := resp.Body.Read(buf[:]); err != nil {
			break
		}
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET memory %s: %d", id, resp.StatusCode)
	}
	return nil
}

// BenchmarkEntityRead reads single memories by id (GET /v1/memories/{id})
// of a user of 6,500. cache=off reads from a server run with
// ARQ_CACHE_ENTITIES=false (the baseline); cache=warm from the caching
// server, of memories already in Redis; cache=cold from the caching server,
// each read a memory not read before (so it misses and fills the cache).
// size=small memories are 20 to 60 words, size=large about 1,000 words.
// Clients cycle through 200 memories of a size. For scale, the primary-key
// SELECT of a small memory's content through pgx on the same database.
func BenchmarkEntityRead(b *testing.B) {
	f := newEntityFixture(b)
	for _, id := range append(append([]string{}, f.small...), f.large...) {
		if err := f.get(f.cached, id); err != nil {
			b.Fatal(err)
		}
	}
	for _, n := range []int{1, 32} {
		b.Run(fmt.Sprintf("baseline=pk-select/clients=%d", n), func(b *testing.B) {
			var i atomic.Int64
			drive(b, n, func(int) error {
				var content string
				id := f.small[int(i.Add(1))%len(f.small)]
				return f.pool.QueryRow(context.Background(), `SELECT content FROM memories WHERE id = $1`, id).Scan(&content)
			})
		})
		for _, bc := range []struct {
			size, mode string
			s          *benchServer
			ids        []string
		}{{"small", "off", f.plain, f.small}, {"small", "warm", f.cached, f.small}, {"small", "cold", f.cached, nil},
			{"large", "off", f.plain, f.large}, {"large", "warm", f.cached, f.large}} {
			b.Run(fmt.Sprintf("size=%s/cache=%s/clients=%d", bc.size, bc.mode, n), func(b *testing.B) {
				var i atomic.Int64
				drive(b, n, func(int) error {
					if bc.ids != nil {
						return f.get(bc.s, bc.ids[int(i.Add(1))%len(bc.ids)])
					}
					k := int(f.nextCold.Add(1)) - 1
					if k >= len(f.cold) {
						return fmt.Errorf("cache=cold ran out of unread memories: %d in all for -benchtime times -count times 2", len(f.cold))
					}
					return f.get(bc.s, f.cold[k])
				})
			})
		}
	}
}
