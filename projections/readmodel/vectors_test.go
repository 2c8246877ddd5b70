package readmodel

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/internal/testdb"
)

// clustered makes n vectors of dim numbers around k random centres, as
// embeddings of texts on a few topics lie (seeded: the same each run).
func clustered(seed uint64, n, dim, k int) [][]float32 {
	return clusteredAround(seed, n, dim, k, 0)
}

// clusteredAround is clustered with every centre moved by one shared
// random vector of shared times their spread: real embeddings have such a
// common direction, which unrelated texts' cosines show (about 0.5 for
// shared 1, 0 for shared 0).
func clusteredAround(seed uint64, n, dim, k int, shared float64) [][]float32 {
	rnd := rand.New(rand.NewPCG(seed, 1))
	common := make([]float64, dim)
	for j := range common {
		common[j] = shared * rnd.NormFloat64()
	}
	centres := make([][]float32, k)
	for i := range centres {
		centres[i] = make([]float32, dim)
		for j := range centres[i] {
			centres[i][j] = float32(common[j] + rnd.NormFloat64())
		}
	}
	out := make([][]float32, n)
	for i := range out {
		c := centres[rnd.IntN(k)]
		out[i] = make([]float32, dim)
		for j := range out[i] {
			out[i][j] = c[j] + 0.6*float32(rnd.NormFloat64())
		}
	}
	return out
}

// vectorFixture is a user's memories with embeddings written as the
// projection writes them: rows and the user's generation in one
// transaction.
type vectorFixture struct {
	t    testing.TB
	pool *pgxpool.Pool
	user string
	n    int
}

// id is the id of the user's i-th memory: m00000 on for user u, the
// user's id before it for others.
func (f *vectorFixture) id(i int) string {
	if f.user == "u" {
		return fmt.Sprintf("m%05d", i)
	}
	return fmt.Sprintf("%sm%05d", f.user, i)
}

// store writes memories with embs, each with the attributes i gives it:
// every seventh expired, every fifth tagged, created a minute apart, and
// stored at position i in the log.
func (f *vectorFixture) store(embs [][]float32) {
	f.t.Helper()
	ctx := context.Background()
	tx, err := f.pool.Begin(ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, e := range embs {
		i := f.n
		f.n++
		var expires *time.Time
		if i%7 == 3 {
			x := time.Now().Add(-time.Minute)
			expires = &x
		}
		tags := []string{}
		if i%5 == 0 {
			tags = []string{"five"}
		}
		at := base.Add(time.Duration(i) * time.Minute)
		if _, err := tx.Exec(ctx, `INSERT INTO memories (id, user_id, tenant, type, content, importance, tags, metadata, tokens, version,
				created_at, updated_at, expires_at, embedding, stored_tx, stored_position)
			VALUES ($1, $2, 't', 'semantic', $3, 0.5, $4, '{}', 3, 1, $5, $5, $6, $7, '10', $8)`,
			f.id(i), f.user, fmt.Sprintf("memory number %d", i), tags, at, expires, e, i); err != nil {
			f.t.Fatal(err)
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO cache_generations (key, gen) VALUES ($1, 1)`+bumpSQL, "user:"+f.user); err != nil {
		f.t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		f.t.Fatal(err)
	}
}

// cachedReader is a Reader of pool with a VectorCache of maxBytes.
func cachedReader(t testing.TB, pool *pgxpool.Pool, maxBytes int64) (*Reader, *VectorCache) {
	t.Helper()
	vc, err := NewVectorCache(maxBytes)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(vc.Close)
	return NewReader(pool, CacheVectorsIn(vc)), vc
}

// A search or window ranked from the VectorCache is the one ranked from
// the table: for searches with and without filters, windows live now and
// at a place in the log, with memories put back as they were, over
// clustered vectors of which many lie within rounding of each other.
func TestVectorCacheRanksAsTheTable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t, testdb.New(t))
	f := &vectorFixture{t: t, pool: pool, user: "u"}
	const dim = 48
	embs := clustered(1, 700, dim, 6)
	// Duplicates: ties broken by id.
	embs = append(embs, embs[10], embs[11], embs[10])
	f.store(embs)
	other := &vectorFixture{t: t, pool: pool, user: "other"}
	other.store(clustered(2, 50, dim, 3))
	// Another length never matches.
	f.store([][]float32{make([]float32, 7), {1, 2, 3}})

	cached, vc := cachedReader(t, pool, 64<<20)
	table := NewReader(pool)
	queries := clustered(3, 8, dim, 6)
	queries = append(queries, embs[10])
	five := 0.0
	before := time.Date(2026, 1, 1, 5, 0, 0, 0, time.UTC)
	for qi, q := range queries {
		for _, filter := range []MemoryFilter{{}, {Tag: "five"}, {MinImportance: &five, CreatedBefore: &before}} {
			want, err := table.SearchMemories(ctx, "u", "memory", q, filter, 100)
			if err != nil {
				t.Fatal(err)
			}
			got, err := cached.SearchMemories(ctx, "u", "memory", q, filter, 100)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(got, want, func(a, b MemoryHit) bool { return a.ID == b.ID && a.Score == b.Score }) {
				t.Fatalf("query %d, filter %+v: search from the cache %v, from the table %v", qi, filter, ids(got), ids(want))
			}
			// Without a text, as searchFusedSQL ranks with an empty one.
			near, err := table.nearestInTable(ctx, q, norm(q), vectorScope{cond: cond(filter), args: condArgs(filter)})
			if err != nil {
				t.Fatal(err)
			}
			c, args := filter.where([]any{"u", "", near, RRFK, 20, maxTextCandidates})
			rows, err := pool.Query(ctx, fmt.Sprintf(searchFusedSQL, c), args...)
			want, err = scanHits(rows, err, "search")
			if err != nil {
				t.Fatal(err)
			}
			got, err = cached.SearchMemories(ctx, "u", " ", q, filter, 20)
			if err != nil {
				t.Fatal(err)
			}
			if len(want) != 20 || !slices.EqualFunc(got, want, func(a, b MemoryHit) bool { return a.ID == b.ID && a.Score == b.Score }) {
				t.Fatalf("query %d, filter %+v: search without text %v, fused with none %v", qi, filter, ids(got), ids(want))
			}
		}
		for _, sc := range []memoryScope{
			{now: time.Now()},
			{now: time.Now(), createdBefore: &before},
			{now: time.Now(), storedBy: &eventstore.Cursor{TransactionID: 10, Position: 300}},
		} {
			for _, past := range []*pastItems{nil, pastOf(t, embs[:40:40], q)} {
				want, err := table.relevantMemories(ctx, "u", "memory", q, sc, 50, past)
				if err != nil {
					t.Fatal(err)
				}
				got, err := cached.relevantMemories(ctx, "u", "memory", q, sc, 50, past)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.EqualFunc(got, want, func(a, b MemoryHit) bool { return a.ID == b.ID && a.Score == b.Score }) {
					t.Fatalf("query %d, scope %+v, past %v: window from the cache %v, from the table %v", qi, sc, past != nil, ids(got), ids(want))
				}
				near, err := cached.nearestAmong(ctx, q, vectorScope{userID: "u", keep: sc.keeps(past), more: past.memoryEmbeddings(sc.now, sc.createdBefore)})
				if err != nil {
					t.Fatal(err)
				}
				if len(near) != maxVectorRanked {
					t.Fatalf("nearest: %d ids", len(near))
				}
			}
		}
	}
	if !vc.Holds("u") || vc.Holds("other") {
		t.Fatal("the cache holds what no ranking read")
	}
}

// pastOf puts back, as they were, memories m00001, m00003, ... with
// embeddings near q's: the rows the table holds for them are left out.
func pastOf(t *testing.T, embs [][]float32, q []float32) *pastItems {
	t.Helper()
	p := &pastItems{}
	for i := 1; i < len(embs); i += 2 {
		e := slices.Clone(q)
		e[i%len(e)] += float32(i) / 10
		id := fmt.Sprintf("m%05d", i)
		p.memoryIDs = append(p.memoryIDs, id)
		p.memories = append(p.memories, pastMemory{Memory: Memory{ID: id, UserID: "u", Type: "semantic", Content: "memory as it was",
			Importance: 0.5, Tags: []string{}, Metadata: map[string]any{}, Tokens: 3, EmbeddingDim: len(e), Version: 1,
			CreatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), UpdatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, Embedding: e})
	}
	rows, err := jsonRows(p.memories)
	if err != nil {
		t.Fatal(err)
	}
	p.memoryRows = rows
	return p
}

// cond and condArgs are filter's condition for user u.
func cond(filter MemoryFilter) string {
	c, _ := filter.where([]any{"u"})
	return c
}

func condArgs(filter MemoryFilter) []any {
	_, args := filter.where([]any{"u"})
	return args
}

func ids(hits []MemoryHit) []string {
	out := make([]string, len(hits))
	for i, h := range hits {
		out[i] = h.ID
	}
	return out
}

// The cache never serves vectors older than the tables: a memory stored,
// changed or deleted (with its user's generation moved in the same
// transaction, as the projection does) shows in the next ranking, also
// while other readers rank at once; only what changed is read again.
func TestVectorCacheFollowsGenerations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t, testdb.New(t))
	f := &vectorFixture{t: t, pool: pool, user: "u"}
	const dim = 16
	f.store(clustered(4, 300, dim, 4))
	r, vc := cachedReader(t, pool, 64<<20)
	q := clustered(5, 1, dim, 1)[0]
	scope := func() vectorScope { return vectorScope{userID: "u", keep: memoryScope{now: time.Now()}.keeps(nil)} }
	first, err := r.nearestAmong(ctx, q, scope())
	if err != nil {
		t.Fatal(err)
	}
	before, _ := vc.entries.GetIfPresent("u")

	// A new memory equal to the query comes first at once.
	f.store([][]float32{q})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			near, err := r.nearestAmong(ctx, q, scope())
			if err != nil {
				t.Error(err)
				return
			}
			if near[0] != "m00300" {
				t.Errorf("after a store the nearest is %s", near[0])
			}
		})
		// A search ranks from what the cache holds and reads the
		// generation with its query: it finds the entry stale.
		wg.Go(func() {
			hits, err := r.SearchMemories(ctx, "u", "", q, MemoryFilter{}, 5)
			if err != nil {
				t.Error(err)
				return
			}
			if hits[0].ID != "m00300" {
				t.Errorf("after a store the first hit is %s", hits[0].ID)
			}
		})
	}
	wg.Wait()
	after, _ := vc.entries.GetIfPresent("u")
	if &after.items[1].emb[0] != &before.items[0].emb[0] {
		t.Error("an unchanged memory's embedding was read again")
	}

	// Changed and deleted in one transaction with the generation.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	far := make([]float32, dim)
	for i := range far {
		far[i] = -q[i]
	}
	for _, s := range []struct {
		sql  string
		args []any
	}{
		{`UPDATE memories SET embedding = $2, version = 2 WHERE id = $1`, []any{"m00300", far}},
		{`DELETE FROM memories WHERE id = $1`, []any{first[0]}},
		{`INSERT INTO cache_generations (key, gen) VALUES ('user:u', 1)` + bumpSQL, nil},
	} {
		if _, err := tx.Exec(ctx, s.sql, s.args...); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// The search first: it ranks from the stale entry, finds the
	// generation moved, and ranks again.
	hits, err := r.SearchMemories(ctx, "u", "", q, MemoryFilter{}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(hits); got[0] != first[1] || slices.Contains(got, first[0]) {
		t.Fatalf("a search after an update and a delete: %v (before: %v)", got, first[:3])
	}
	near, err := r.nearestAmong(ctx, q, scope())
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(near, first[0]) || near[0] == "m00300" || near[0] != first[1] {
		t.Fatalf("after an update and a delete: %v (before: %v)", near[:3], first[:3])
	}
	// A rebuild moves every user's state.
	if _, err := pool.Exec(ctx, `INSERT INTO cache_generations (key, gen) VALUES ('rebuilds', 1)`+bumpSQL); err != nil {
		t.Fatal(err)
	}
	if _, err := r.nearestAmong(ctx, q, scope()); err != nil {
		t.Fatal(err)
	}
	if v, _ := vc.entries.GetIfPresent("u"); v.gen.rebuilds != 1 || &v.items[1].emb[0] == &after.items[1].emb[0] {
		t.Fatal("after a rebuild the cache kept its vectors")
	}
}

// Forget drops the vectors of erased users, and every entry holding an
// erased memory; other users' stay.
func TestVectorCacheForgetsTheErased(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t, testdb.New(t))
	for _, u := range []string{"a", "b", "c"} {
		f := &vectorFixture{t: t, pool: pool, user: u}
		f.store(clustered(6, 10, 8, 2))
	}
	r, vc := cachedReader(t, pool, 1<<20)
	for _, u := range []string{"a", "b", "c"} {
		if _, err := r.nearestAmong(ctx, []float32{1, 2, 3, 4, 5, 6, 7, 8}, vectorScope{userID: u}); err != nil {
			t.Fatal(err)
		}
		if !vc.Holds(u) {
			t.Fatalf("%s not cached", u)
		}
	}
	vc.Forget([]string{"a"}, []string{"bm00004"})
	for u, want := range map[string]bool{"a": false, "b": false, "c": true} {
		if vc.Holds(u) != want {
			t.Errorf("after Forget, holds %s: %v", u, !want)
		}
	}
	// A load that began before a Forget is not kept: it may hold what
	// was erased meanwhile.
	forgets := vc.forgets.Load()
	v, err := loadVectors(ctx, pool, "c", nil)
	if err != nil {
		t.Fatal(err)
	}
	vc.Forget([]string{"c"}, nil)
	vc.keep("c", v, forgets)
	if vc.Holds("c") {
		t.Error("a load from before a Forget was kept")
	}
	vc.keep("c", v, vc.forgets.Load())
	if !vc.Holds("c") {
		t.Error("a load from after the last Forget was not kept")
	}
	// Nothing at all is kept of a user without embeddings, nor of one
	// over the budget.
	r, small := cachedReader(t, pool, 100)
	for _, u := range []string{"a", "nobody"} {
		if _, err := r.nearestAmong(ctx, []float32{1, 2, 3, 4, 5, 6, 7, 8}, vectorScope{userID: u}); err != nil {
			t.Fatal(err)
		}
		if small.Holds(u) {
			t.Errorf("holds %s", u)
		}
	}
}
