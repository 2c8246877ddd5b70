package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/arq-memory/arq/logproof"
)

// batchLeaves bounds the leaves one row of log_tree holds.
const batchLeaves = 4096

// treeLock is the advisory lock a builder holds while it appends a batch,
// so that builders of several processes never interleave theirs.
const treeLock = 0x6c6f677472656500 // "logtree\0"

// Tree is the log's Merkle tree in Postgres: it appends the events that
// have become commit-safe as leaves, and proves what it holds. Build,
// SignNow and Keep keep the tree's edge in memory and are for one
// goroutine at a time; the reads (Checkpoint, Prove, Consistency, Check)
// may run beside them.
type Tree struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	// edge is the builder's own, touched by Build alone.
	edge  *edge
	after struct {
		xid uint64
		pos int64
	}
}

// NewTree is the tree stored in the database of pool.
func NewTree(pool *pgxpool.Pool, log *slog.Logger) *Tree {
	return &Tree{pool: pool, log: log}
}

// Size is how many leaves the tree holds.
func (t *Tree) Size(ctx context.Context) (int64, error) {
	var n int64
	err := t.pool.QueryRow(ctx, `SELECT coalesce((SELECT first_leaf + leaves FROM log_tree ORDER BY first_leaf DESC LIMIT 1), 0)`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("tree size: %w", err)
	}
	return n, nil
}

// Build appends to the tree every event that is commit-safe and not in
// it yet, up to batchLeaves at a time; it returns how many it appended.
func (t *Tree) Build(ctx context.Context) (int64, error) {
	var total int64
	for {
		n, err := t.step(ctx)
		total += n
		if err != nil || n < batchLeaves {
			return total, err
		}
	}
}

type leaf struct {
	xid  uint64
	pos  int64
	hash []byte
}

// step appends one batch, in a transaction holding treeLock; it reloads
// the edge when another process appended since its last.
func (t *Tree) step(ctx context.Context) (int64, error) {
	tx, err := t.pool.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		return 0, fmt.Errorf("build tree: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(treeLock)); err != nil {
		return 0, fmt.Errorf("build tree: %w", err)
	}
	var size int64
	var lastXID uint64
	var lastPos int64
	err = tx.QueryRow(ctx, `SELECT first_leaf + leaves, last_xid, last_position FROM log_tree
		ORDER BY first_leaf DESC LIMIT 1`).Scan(&size, &lastXID, &lastPos)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("build tree: %w", err)
	}
	if t.edge == nil || t.edge.size != size {
		e := &edge{db: dbHashes{ctx, t.pool}}
		if err := e.load(size); err != nil {
			return 0, fmt.Errorf("build tree: %w", err)
		}
		t.edge = e
		t.after.xid, t.after.pos = lastXID, lastPos
	}
	rows, err := tx.Query(ctx, `SELECT transaction_id, position, hash FROM events
		WHERE (transaction_id, position) > ($1::xid8, $2::bigint)
		  AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
		ORDER BY transaction_id, position LIMIT $3`, t.after.xid, t.after.pos, batchLeaves)
	if err != nil {
		return 0, fmt.Errorf("build tree: read the log: %w", err)
	}
	leaves, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (leaf, error) {
		var l leaf
		return l, r.Scan(&l.xid, &l.pos, &l.hash)
	})
	if err != nil {
		return 0, fmt.Errorf("build tree: read the log: %w", err)
	}
	if len(leaves) == 0 {
		return 0, nil
	}
	e := t.edge
	t.edge = nil // until the batch commits: a failure reloads it
	firstHash := tlog.StoredHashCount(size)
	hashes := make([]byte, 0, 2*len(leaves)*tlog.HashSize)
	positions := make([]int64, len(leaves))
	for i, l := range leaves {
		stored, err := e.add(logproof.LeafHash(l.hash, l.pos))
		if err != nil {
			return 0, fmt.Errorf("build tree: leaf %d: %w", size+int64(i), err)
		}
		for _, h := range stored {
			hashes = append(hashes, h[:]...)
		}
		positions[i] = l.pos
	}
	first, last := leaves[0], leaves[len(leaves)-1]
	if _, err := tx.Exec(ctx, `INSERT INTO log_tree (first_leaf, leaves, first_hash, hashes,
			first_xid, first_position, last_xid, last_position, positions)
		VALUES ($1, $2, $3, $4, $5::xid8, $6, $7::xid8, $8, $9)`,
		size, len(leaves), firstHash, hashes, first.xid, first.pos, last.xid, last.pos, positions); err != nil {
		return 0, fmt.Errorf("build tree: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("build tree: %w", err)
	}
	e.trim()
	t.edge = e
	t.after.xid, t.after.pos = last.xid, last.pos
	return int64(len(leaves)), nil
}
