package readmodel

import (
	"math"
	"math/bits"
	"slices"
	"strings"

	"gonum.org/v1/gonum/blas/blas32"
)

// A vector scan ranks candidates by cosine similarity to a query, as
// cosine computes it (in float64, from the vectors as stored), so that its
// ranking is the one the query tables alone give. Computing that for each
// of thousands of vectors of 1,536 dimensions costs more than a search may,
// so the scan first scores them in float32 with SIMD (gonum's blas32),
// keeps those whose float32 score can still be among the nearest (within
// twice its rounding bound of the last one kept), orders them by it, and
// computes the exact score only where that order could be wrong (runs of
// neighbours within twice the bound of each other): the result is the
// same as scoring all exactly.
//
// Approximate scans (search only, over more than approxAbove numbers)
// first keep the prefilterKeep candidates whose signs agree most with the
// query's (a Hamming distance over one bit a dimension, reading 1/32 of
// the floats), then rank those by their float32 cosines alone (ties
// by id, as SQL breaks them): exact cosines for near ties
// cost a third of the scan, and make no approximate ranking exact. Context windows never scan
// approximately: the window of an assistant message is recomputed later
// (WindowAt), and must be the one the client was served.
const (
	approxAbove   = 1 << 22
	prefilterKeep = 5 * maxVectorRanked
)

// scored is a candidate with its score.
type scored struct {
	id  string
	sim float64
}

// vecCand is a candidate of a scan with its float32 cosine.
type vecCand struct {
	it     *vecItem
	approx float64
}

// rankVectors ranks cands (all of q's length, non-zero) and more (any
// length) by cosine similarity to q (of norm qn): the nearest
// maxVectorRanked ids, nearest first, ties by id descending.
func rankVectors(q []float32, qn float64, cands []*vecItem, more map[string][]float32, approximate bool) []string {
	if approximate && len(cands) > maxVectorRanked && len(cands)*len(q) > approxAbove {
		// The ranking is approximate already: the float32 order serves,
		// without exact cosines for near ties (a third of the scan).
		sc := approxScores(q, qn, prefilter(q, cands, prefilterKeep))
		if len(more) == 0 {
			out := make([]string, 0, min(len(sc), maxVectorRanked))
			for _, c := range sc[:min(len(sc), maxVectorRanked)] {
				out = append(out, c.it.id)
			}
			return out
		}
		cands = make([]*vecItem, 0, len(sc))
		for _, c := range sc {
			cands = append(cands, c.it)
		}
	}
	sc := approxScores(q, qn, cands)
	bound := 2 * roundingBound(len(q))
	if len(sc) > maxVectorRanked {
		// Those that may be among the nearest: each of the first
		// maxVectorRanked has an exact cosine of at least the last one's
		// float32 cosine less the bound, so one below that by more than
		// twice the bound is below all of them exactly.
		floor := sc[maxVectorRanked-1].approx - bound
		n := maxVectorRanked
		for n < len(sc) && sc[n].approx >= floor {
			n++
		}
		sc = sc[:n]
	}
	if len(more) > 0 {
		all := make([]scored, 0, len(sc)+len(more))
		for _, c := range sc {
			all = append(all, scored{c.it.id, exactCosine(q, qn, c.it)})
		}
		for id, e := range more {
			if sim, ok := cosine(q, qn, e); ok {
				all = append(all, scored{id, sim})
			}
		}
		return topIDs(all)
	}
	// In float32 order, the exact order differs only within runs whose
	// neighbours lie within twice the bound of each other: those are
	// ordered by their exact cosines.
	out := make([]string, 0, min(len(sc), maxVectorRanked))
	for i := 0; i < len(sc) && len(out) < maxVectorRanked; {
		j := i + 1
		for j < len(sc) && sc[j-1].approx-sc[j].approx <= bound {
			j++
		}
		if j == i+1 {
			out = append(out, sc[i].it.id)
		} else {
			run := make([]scored, 0, j-i)
			for _, c := range sc[i:j] {
				run = append(run, scored{c.it.id, exactCosine(q, qn, c.it)})
			}
			for _, id := range topIDs(run) {
				if len(out) < maxVectorRanked {
					out = append(out, id)
				}
			}
		}
		i = j
	}
	return out
}

// approxScores are cands with their float32 cosines (see roundingBound),
// highest first, ties by id descending.
func approxScores(q []float32, qn float64, cands []*vecItem) []vecCand {
	qv := blas32.Vector{N: len(q), Inc: 1, Data: q}
	sc := make([]vecCand, len(cands))
	for i, it := range cands {
		d := blas32.Dot(qv, blas32.Vector{N: len(q), Inc: 1, Data: it.emb[:len(q)]})
		sc[i] = vecCand{it, float64(d) / (qn * it.norm)}
	}
	slices.SortFunc(sc, func(a, b vecCand) int {
		if a.approx > b.approx {
			return -1
		}
		if a.approx < b.approx {
			return 1
		}
		return strings.Compare(b.it.id, a.it.id)
	})
	return sc
}

// topIDs sorts all, nearest first (ties by id descending, as the SQL
// ranking breaks them), and keeps the first maxVectorRanked ids.
func topIDs(all []scored) []string {
	slices.SortFunc(all, func(a, b scored) int {
		if a.sim != b.sim {
			if a.sim > b.sim {
				return -1
			}
			return 1
		}
		return strings.Compare(b.id, a.id)
	})
	out := make([]string, 0, min(len(all), maxVectorRanked))
	for _, s := range all[:min(len(all), maxVectorRanked)] {
		out = append(out, s.id)
	}
	return out
}

// exactCosine is cosine(q, qn, it.emb) with it.norm computed once.
func exactCosine(q []float32, qn float64, it *vecItem) float64 {
	var dot float64
	e := it.emb[:len(q)]
	for i, x := range e {
		dot += float64(x) * float64(q[i])
	}
	return dot / (qn * it.norm)
}

// roundingBound bounds how far a float32 cosine of vectors of n
// dimensions lies from the exact one (and the float64 one): n+1 roundings
// of a sum of products whose absolute values add up to at most the
// product of the norms (Cauchy-Schwarz), with room to spare.
func roundingBound(n int) float64 {
	return 2 * float64(n+4) * 0x1p-24
}

// signBits are the signs of e, one bit a dimension.
func signBits(e []float32) []uint64 {
	out := make([]uint64, (len(e)+63)/64)
	for i, x := range e {
		if x > 0 {
			out[i/64] |= 1 << (i % 64)
		}
	}
	return out
}

// prefilter keeps the keep candidates whose signs differ from q's in the
// fewest dimensions (of those at the last distance kept, the first in
// cands). Distances are at most the dimension: counted, not sorted.
func prefilter(q []float32, cands []*vecItem, keep int) []*vecItem {
	if len(cands) <= keep {
		return cands
	}
	qb := signBits(q)
	dist := make([]int32, len(cands))
	count := make([]int, len(q)+1)
	for i, it := range cands {
		d := 0
		for w, x := range it.bits[:len(qb)] {
			d += bits.OnesCount64(x ^ qb[w])
		}
		dist[i] = int32(d)
		count[d]++
	}
	// The distance at which keep is reached, and how many at it fit.
	last, atLast := 0, 0
	for n := 0; ; last++ {
		if n+count[last] >= keep {
			atLast = keep - n
			break
		}
		n += count[last]
	}
	out := make([]*vecItem, 0, keep)
	for i, it := range cands {
		switch d := int(dist[i]); {
		case d < last:
			out = append(out, it)
		case d == last && atLast > 0:
			out = append(out, it)
			atLast--
		}
	}
	return out
}

// norm is the Euclidean norm of v, in float64.
func norm(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}
