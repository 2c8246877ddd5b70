package ledger

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/tlog"
)

// dbHashes reads stored hashes of the tree out of log_tree: each index
// from the batch row whose run of hashes holds it.
type dbHashes struct {
	ctx  context.Context
	pool *pgxpool.Pool
}

// ReadHashes returns the stored hashes at indexes, in their order.
func (r dbHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	rows, err := r.pool.Query(r.ctx, `SELECT substring(t.hashes FROM ((i.i - t.first_hash) * 32 + 1)::integer FOR 32)
		FROM unnest($1::bigint[]) WITH ORDINALITY AS i(i, n)
		LEFT JOIN LATERAL (SELECT first_hash, hashes FROM log_tree WHERE first_hash <= i.i
			ORDER BY first_hash DESC LIMIT 1) t ON true
		ORDER BY i.n`, indexes)
	if err != nil {
		return nil, fmt.Errorf("read tree hashes: %w", err)
	}
	defer rows.Close()
	out := make([]tlog.Hash, 0, len(indexes))
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, fmt.Errorf("read tree hashes: %w", err)
		}
		if len(b) != tlog.HashSize {
			return nil, fmt.Errorf("read tree hashes: stored hash %d: %w", indexes[len(out)], ErrNotInTree)
		}
		out = append(out, tlog.Hash(b))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read tree hashes: %w", err)
	}
	return out, nil
}

// edge is the right edge of a tree of size leaves: the roots of its
// complete subtrees, all that adding leaves and computing the root need.
// It answers from memory, and from the database for an index it lacks.
type edge struct {
	size   int64
	hashes map[int64]tlog.Hash
	db     tlog.HashReader
}

func (e *edge) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var miss []int64
	for i, x := range indexes {
		h, ok := e.hashes[x]
		if !ok {
			miss = append(miss, x)
		}
		out[i] = h
	}
	if len(miss) == 0 {
		return out, nil
	}
	got, err := e.db.ReadHashes(miss)
	if err != nil {
		return nil, err
	}
	for i, x := range indexes {
		if _, ok := e.hashes[x]; !ok {
			out[i], got = got[0], got[1:]
		}
	}
	return out, nil
}

// add appends the leaf with hash h, returning the hashes it stores.
func (e *edge) add(h tlog.Hash) ([]tlog.Hash, error) {
	stored, err := tlog.StoredHashesForRecordHash(e.size, h, e)
	if err != nil {
		return nil, err
	}
	first := tlog.StoredHashCount(e.size)
	for i, s := range stored {
		e.hashes[first+int64(i)] = s
	}
	e.size++
	return stored, nil
}

// trim forgets the hashes off the edge.
func (e *edge) trim() {
	keep := make(map[int64]tlog.Hash, 64)
	for level := 0; level < 63; level++ {
		if e.size>>level&1 == 1 {
			x := tlog.StoredHashIndex(level, e.size>>level-1)
			if h, ok := e.hashes[x]; ok {
				keep[x] = h
			}
		}
	}
	e.hashes = keep
}

// load reads the edge of a tree of size leaves from the database.
func (e *edge) load(size int64) error {
	e.size, e.hashes = size, map[int64]tlog.Hash{}
	var idx []int64
	for level := 0; level < 63; level++ {
		if size>>level&1 == 1 {
			idx = append(idx, tlog.StoredHashIndex(level, size>>level-1))
		}
	}
	if len(idx) == 0 {
		return nil
	}
	hs, err := e.db.ReadHashes(idx)
	if err != nil {
		return err
	}
	for i, x := range idx {
		e.hashes[x] = hs[i]
	}
	return nil
}
