package readmodel

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/maypok86/otter/v2"
	"golang.org/x/sync/singleflight"
)

// VectorCache keeps, in this process's memory, the embeddings of users'
// memories with what the vector ranking filters them by, so that a search
// or context window with an embedding reads them from memory rather than
// out of Postgres's TOASTed arrays each time.
//
// An entry is the user's memories as of one generation of 'user:<id>' (and
// of 'rebuilds'), which the projections move in the same transaction as
// any change to the user's memories (migrations/00008). Every read asks
// Postgres for the generations (one statement of two primary-key lookups)
// and uses an entry only when it was made at them (or, read from the pool,
// later): an entry is never served for a state older than the tables.
// A stale entry is refreshed with what changed only: ids and versions are
// read, and the embeddings of new or changed memories.
//
// What it keeps is bounded in bytes; users least recently read go first,
// and an entry not read for vectorIdle is dropped. An erased user's
// vectors are dropped by Forget (the eraser of this process calls it);
// other processes never serve them (their generation moved) and drop
// them when next read, or within vectorIdle.
type VectorCache struct {
	entries *otter.Cache[string, *userVectors]
	max     int64
	loads   singleflight.Group
	// forgets counts the calls of Forget: a load that began before one
	// is used but not kept, as it may hold what was forgotten.
	forgets atomic.Uint64
}

// vectorIdle is how long an entry not read stays; vectorLoadTimeout
// bounds a load that several reads share.
const (
	vectorIdle        = 10 * time.Minute
	vectorLoadTimeout = 30 * time.Second
)

// NewVectorCache returns a cache of about maxBytes of embeddings; 0 or
// less returns nil (no cache: vectors are read from Postgres each time).
func NewVectorCache(maxBytes int64) (*VectorCache, error) {
	if maxBytes <= 0 {
		return nil, nil
	}
	c, err := otter.New(&otter.Options[string, *userVectors]{
		MaximumWeight:    uint64(maxBytes),
		Weigher:          func(_ string, v *userVectors) uint32 { return uint32(min(v.bytes, math.MaxUint32)) },
		ExpiryCalculator: otter.ExpiryAccessing[string, *userVectors](vectorIdle),
	})
	if err != nil {
		return nil, fmt.Errorf("vector cache of %d bytes: %w", maxBytes, err)
	}
	return &VectorCache{entries: c, max: maxBytes}, nil
}

// Close stops the cache's maintenance and drops what it holds.
func (c *VectorCache) Close() {
	if c == nil {
		return
	}
	c.entries.InvalidateAll()
	c.entries.StopAllGoroutines()
}

// Forget drops the vectors of users, and the entries holding any of
// memories: what an erasure covered must not stay in memory, served or
// not.
func (c *VectorCache) Forget(users, memories []string) {
	if c == nil {
		return
	}
	c.forgets.Add(1) // before the entries go: see keep
	for _, u := range users {
		c.entries.Invalidate(u)
	}
	if len(memories) == 0 {
		return
	}
	gone := make(map[string]bool, len(memories))
	for _, m := range memories {
		gone[m] = true
	}
	var drop []string
	for u, v := range c.entries.All() {
		if slices.ContainsFunc(v.items, func(it vecItem) bool { return gone[it.id] }) {
			drop = append(drop, u)
		}
	}
	for _, u := range drop {
		c.entries.Invalidate(u)
	}
}

// Holds says whether the cache holds vectors of user (for tests of
// erasure).
func (c *VectorCache) Holds(user string) bool {
	if c == nil {
		return false
	}
	_, ok := c.entries.GetIfPresent(user)
	return ok
}

// generation is the state of a user's memories an entry was made at.
type generation struct{ user, rebuilds int64 }

func (g generation) newer(o generation) bool {
	return g.rebuilds > o.rebuilds || (g.rebuilds == o.rebuilds && g.user > o.user)
}

// userVectors are a user's memories with an embedding at a generation,
// most recently updated first (the order the vector scan's bound takes
// them in).
type userVectors struct {
	gen   generation
	items []vecItem
	bytes int64
}

// vecItem is one memory's embedding and what the vector ranking filters
// it by. Its slices are never changed once made: entries of later
// generations share those of memories that did not change.
type vecItem struct {
	id                   string
	version              int
	emb                  []float32
	norm                 float64  // as cosine computes it
	bits                 []uint64 // signs of emb, for the approximate prefilter
	expiresAt            *time.Time
	createdAt, updatedAt time.Time
	storedTx             uint64
	storedPos            int64
}

// itemOverhead is about what a vecItem costs beside its vectors.
const itemOverhead = 200

func (it *vecItem) size() int64 {
	return int64(len(it.id) + 4*len(it.emb) + 8*len(it.bits) + itemOverhead)
}

const generationSQL = `SELECT coalesce((SELECT gen FROM cache_generations WHERE key = $1), 0),
	coalesce((SELECT gen FROM cache_generations WHERE key = 'rebuilds'), 0)`

// readGeneration reads the generation of userID's memories through db.
func readGeneration(ctx context.Context, db querier, userID string) (generation, error) {
	var g generation
	if err := db.QueryRow(ctx, generationSQL, "user:"+userID).Scan(&g.user, &g.rebuilds); err != nil {
		return g, fmt.Errorf("read generation of user %s: %w", userID, err)
	}
	return g, nil
}

// vectorsOf is userID's memories with an embedding, from the cache when
// it holds them at the generation Postgres has now (through r.db: a
// Reader in a snapshot gets the entry of its snapshot's generation).
func (r *Reader) vectorsOf(ctx context.Context, userID string) (*userVectors, error) {
	c := r.vectors
	g, err := readGeneration(ctx, r.db, userID)
	if err != nil {
		return nil, err
	}
	inTx := r.db != querier(r.pool)
	old, found := c.entries.GetIfPresent(userID)
	if found && (old.gen == g || (!inTx && old.gen.newer(g))) {
		return old, nil
	}
	load := func(ctx context.Context, db querier) (*userVectors, error) {
		forgets := c.forgets.Load()
		v, err := loadVectors(ctx, db, userID, old)
		if err != nil {
			return nil, err
		}
		c.keep(userID, v, forgets)
		return v, nil
	}
	if inTx {
		// A snapshot of its own: load in it, never through a load that
		// another snapshot started.
		return load(ctx, r.db)
	}
	got, err, _ := c.loads.Do(userID, func() (any, error) {
		// Shared by the reads that wait for it: not ended by the first
		// one's end.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), vectorLoadTimeout)
		defer cancel()
		var v *userVectors
		err := pgx.BeginTxFunc(ctx, r.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
			var err error
			v, err = load(ctx, tx)
			return err
		})
		return v, err
	})
	if err != nil {
		return nil, fmt.Errorf("read embeddings of user %s: %w", userID, err)
	}
	v := got.(*userVectors)
	if v.gen.newer(g) || v.gen == g {
		return v, nil
	}
	// A load that began before this read's generation was committed.
	return r.vectorsOf(ctx, userID)
}

// keep stores v, loaded from a read that began when Forget had been
// called forgets times, unless the cache holds a newer entry; an empty v,
// one over the whole budget, or one whose read began before a Forget that
// has come since is not kept (and drops an older entry). Forget counts
// before it drops entries, and keep checks the count within the entry's
// lock: a load that raced a Forget is dropped by one or the other.
func (c *VectorCache) keep(userID string, v *userVectors, forgets uint64) {
	c.entries.Compute(userID, func(old *userVectors, found bool) (*userVectors, otter.ComputeOp) {
		if found && old.gen.newer(v.gen) {
			return old, otter.CancelOp
		}
		if len(v.items) == 0 || v.bytes > c.max || c.forgets.Load() != forgets {
			return nil, otter.InvalidateOp
		}
		return v, otter.WriteOp
	})
}

// loadVectors reads userID's memories with an embedding in tx's snapshot,
// with the generation they are at. The embeddings of memories that old
// holds at the same version (and rebuild) are taken from it.
func loadVectors(ctx context.Context, tx querier, userID string, old *userVectors) (*userVectors, error) {
	g, err := readGeneration(ctx, tx, userID)
	if err != nil {
		return nil, err
	}
	rows, err := tx.Query(ctx, `SELECT id, version, expires_at, created_at, updated_at, stored_tx::text::bigint, stored_position
		FROM memories WHERE user_id = $1 AND embedding_dim > 0 ORDER BY updated_at DESC, id DESC`, userID)
	if err != nil {
		return nil, fmt.Errorf("read embedded memories: %w", err)
	}
	var items []vecItem
	for rows.Next() {
		var it vecItem
		var tx int64
		if err := rows.Scan(&it.id, &it.version, &it.expiresAt, &it.createdAt, &it.updatedAt, &tx, &it.storedPos); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read embedded memories: %w", err)
		}
		it.storedTx = uint64(tx)
		items = append(items, it)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read embedded memories: %w", err)
	}
	known := map[string]*vecItem{}
	if old != nil && old.gen.rebuilds == g.rebuilds {
		for i := range old.items {
			known[old.items[i].id] = &old.items[i]
		}
	}
	var missing []string
	at := make(map[string]int, len(items))
	for i := range items {
		it := &items[i]
		if k, ok := known[it.id]; ok && k.version == it.version {
			it.emb, it.norm, it.bits = k.emb, k.norm, k.bits
			continue
		}
		missing = append(missing, it.id)
		at[it.id] = i
	}
	if len(missing) > 0 {
		rows, err := tx.Query(ctx, `SELECT id, embedding FROM memories WHERE id = ANY ($1)`, missing)
		if err != nil {
			return nil, fmt.Errorf("read embeddings: %w", err)
		}
		for rows.Next() {
			var id string
			var e []float32
			if err := rows.Scan(&id, &e); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read embeddings: %w", err)
			}
			if i, ok := at[id]; ok {
				items[i].emb, items[i].norm, items[i].bits = e, norm(e), signBits(e)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read embeddings: %w", err)
		}
	}
	v := &userVectors{gen: g, items: items, bytes: 64}
	for i := range items {
		v.bytes += items[i].size()
	}
	return v, nil
}
