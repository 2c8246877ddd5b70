package readmodel

import (
	"context"
	"fmt"
	"testing"

	"github.com/arq-memory/arq/internal/testdb"
)

// itemsOf makes vecItems of embs, as a VectorCache holds them.
func itemsOf(embs [][]float32) []*vecItem {
	out := make([]*vecItem, len(embs))
	for i, e := range embs {
		out[i] = &vecItem{id: fmt.Sprintf("m%05d", i), emb: e, norm: norm(e), bits: signBits(e)}
	}
	return out
}

// exactRanking ranks cands by the cosine of every one, as the table's
// ranking does (nearestInTable).
func exactRanking(q []float32, cands []*vecItem) []string {
	qn := norm(q)
	all := make([]scored, 0, len(cands))
	for _, it := range cands {
		if sim, ok := cosine(q, qn, it.emb); ok {
			all = append(all, scored{it.id, sim})
		}
	}
	return topIDs(all)
}

// recall is the share of want's first k that got's first k hold.
func recall(got, want []string, k int) float64 {
	in := map[string]bool{}
	for _, id := range got[:min(k, len(got))] {
		in[id] = true
	}
	n := 0
	for _, id := range want[:min(k, len(want))] {
		if in[id] {
			n++
		}
	}
	return float64(n) / float64(min(k, len(want)))
}

// The exact scan (float32 scores, exact ones within their rounding bound
// of the last kept) ranks as scoring all exactly does.
func TestExactScanRanksAsCosine(t *testing.T) {
	for _, c := range []struct{ n, dim, k int }{{150, 384, 5}, {1000, 384, 10}, {2000, 64, 3}} {
		all := clustered(uint64(c.n), c.n+20, c.dim, c.k)
		embs := append(all[:c.n:c.n], all[3], all[3]) // ties
		cands := itemsOf(embs)
		for qi, q := range all[c.n:] {
			got := rankVectors(q, norm(q), cands, nil, false)
			want := exactRanking(q, cands)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("%d×%d, query %d: scan %v, exact %v", c.n, c.dim, qi, got[:5], want[:5])
			}
		}
	}
}

// The approximate scan of a search (5,000 vectors of 1,536 dimensions,
// clustered as embeddings of texts on a few topics are) keeps recall@10
// at 0.95 or more against the exact ranking, on average and for 9 of 10
// queries; the figures are logged (go test -v).
func TestApproximateScanRecall(t *testing.T) {
	const n, dim = 5000, 1536
	for _, c := range []struct {
		k      int
		shared float64
	}{{5, 0}, {20, 0}, {100, 0}, {20, 1}, {100, 1}} {
		k := c.k
		// Queries are more points of the same clusters.
		all := clusteredAround(uint64(k), n+100, dim, k, c.shared)
		cands, queries := itemsOf(all[:n]), all[n:]
		var sum10, sum200 float64
		below := 0
		for _, q := range queries {
			got := rankVectors(q, norm(q), cands, nil, true)
			want := exactRanking(q, cands)
			r := recall(got, want, 10)
			sum10 += r
			sum200 += recall(got, want, 200)
			if r < 0.95 {
				below++
			}
		}
		mean10, mean200 := sum10/float64(len(queries)), sum200/float64(len(queries))
		t.Logf("%d clusters, shared direction %g: recall@10 %.4f (%d of %d queries below 0.95), recall@200 %.4f", k, c.shared, mean10, below, len(queries), mean200)
		if mean10 < 0.95 || below > len(queries)/10 {
			t.Errorf("%d clusters: recall@10 %.4f, %d queries below 0.95", k, mean10, below)
		}
	}
}

// BenchmarkVectorScan measures ranking a user's vectors once they are in
// memory: users=200×384 (exact), 5000×1536 exact (a context window) and
// approximate (a search).
func BenchmarkVectorScan(b *testing.B) {
	for _, c := range []struct {
		n, dim int
		approx bool
	}{{200, 384, false}, {5000, 1536, false}, {5000, 1536, true}} {
		all := clustered(7, c.n+1, c.dim, 20)
		cands, q := itemsOf(all[:c.n]), all[c.n]
		mode := "exact"
		if c.approx {
			mode = "approx"
		}
		b.Run(fmt.Sprintf("users=%dx%d/%s", c.n, c.dim, mode), func(b *testing.B) {
			for b.Loop() {
				rankVectors(q, norm(q), cands, nil, c.approx)
			}
		})
	}
}

// BenchmarkSearchWithEmbedding measures a search with a query embedding
// and no text through the Reader, vectors read from the table
// (vectors=table, the code before the VectorCache) or from the cache
// (vectors=cache), for a user of users=N memories of D dimensions.
func BenchmarkSearchWithEmbedding(b *testing.B) {
	for _, c := range []struct{ n, dim int }{{200, 384}, {5000, 1536}} {
		ctx := context.Background()
		pool := testdb.Pool(b, testdb.New(b))
		all := clustered(9, c.n+16, c.dim, 20)
		f := &vectorFixture{t: b, pool: pool, user: "u"}
		for i := 0; i < c.n; i += 500 {
			f.store(all[i:min(i+500, c.n)])
		}
		if _, err := pool.Exec(ctx, "ANALYZE"); err != nil {
			b.Fatal(err)
		}
		cached, _ := cachedReader(b, pool, 1<<30)
		for _, r := range []struct {
			name string
			r    *Reader
		}{{"table", NewReader(pool)}, {"cache", cached}} {
			b.Run(fmt.Sprintf("users=%dx%d/vectors=%s", c.n, c.dim, r.name), func(b *testing.B) {
				// The first search loads the cache: not measured.
				if _, err := r.r.SearchMemories(ctx, "u", "", all[c.n], MemoryFilter{}, 20); err != nil {
					b.Fatal(err)
				}
				i := 0
				for b.Loop() {
					i++
					if _, err := r.r.SearchMemories(ctx, "u", "", all[c.n+i%16], MemoryFilter{}, 20); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
