package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/arq-memory/arq/logproof"
)

// ErrNoEvent is returned for an event the log does not hold.
var ErrNoEvent = errors.New("no such event")

// ErrNotInTree is returned for an event or a size the tree has not
// reached yet (the event is not commit-safe, or not in the checkpoint
// asked for).
var ErrNotInTree = errors.New("not in the tree yet")

// Leaf returns the event's leaf: its index in the tree, and what it
// hashes.
func (t *Tree) Leaf(ctx context.Context, eventID string) (logproof.Inclusion, error) {
	p := logproof.Inclusion{EventID: eventID}
	var idx *int64
	err := t.pool.QueryRow(ctx, `SELECT e.position, e.hash, t.first_leaf + array_position(t.positions, e.position) - 1
		FROM events e LEFT JOIN LATERAL (SELECT first_leaf, positions FROM log_tree
			WHERE (first_xid, first_position) <= (e.transaction_id, e.position)
			ORDER BY first_xid DESC, first_position DESC LIMIT 1) t ON true
		WHERE e.event_id = $1`, eventID).Scan(&p.Position, &p.EventHash, &idx)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, fmt.Errorf("event %s: %w", eventID, ErrNoEvent)
	}
	if err != nil {
		return p, fmt.Errorf("event %s: %w", eventID, err)
	}
	if idx == nil {
		return p, fmt.Errorf("event %s: %w", eventID, ErrNotInTree)
	}
	p.Index = *idx
	return p, nil
}

// Prove proves the event in the tree of size leaves (a checkpoint's).
func (t *Tree) Prove(ctx context.Context, eventID string, size int64) (logproof.Inclusion, error) {
	p, err := t.Leaf(ctx, eventID)
	if err != nil {
		return p, err
	}
	if p.Index >= size {
		return p, fmt.Errorf("event %s is leaf %d, after a tree of %d: %w", eventID, p.Index, size, ErrNotInTree)
	}
	hs, err := tlog.ProveRecord(size, p.Index, dbHashes{ctx, t.pool})
	if err != nil {
		return p, fmt.Errorf("prove event %s: %w", eventID, err)
	}
	p.TreeSize, p.Hashes = size, hs
	return p, nil
}

// Consistency proves that the tree of to leaves extends that of from.
func (t *Tree) Consistency(ctx context.Context, from, to int64) (logproof.Consistency, error) {
	p := logproof.Consistency{From: from, To: to, Hashes: []tlog.Hash{}}
	if from < 0 || from > to {
		return p, fmt.Errorf("consistency from %d to %d: from must be between 0 and to", from, to)
	}
	if err := t.reached(ctx, to); err != nil {
		return p, err
	}
	if from == 0 || from == to {
		return p, nil
	}
	hs, err := tlog.ProveTree(to, from, dbHashes{ctx, t.pool})
	if err != nil {
		return p, fmt.Errorf("consistency from %d to %d: %w", from, to, err)
	}
	p.Hashes = hs
	return p, nil
}

// reached fails with ErrNotInTree unless the tree holds size leaves.
func (t *Tree) reached(ctx context.Context, size int64) error {
	have, err := t.Size(ctx)
	if err != nil {
		return err
	}
	if size > have {
		return fmt.Errorf("a tree of %d leaves: it holds %d: %w", size, have, ErrNotInTree)
	}
	return nil
}

// EventStream is the stream the event belongs to.
func (t *Tree) EventStream(ctx context.Context, eventID string) (string, error) {
	var s string
	err := t.pool.QueryRow(ctx, `SELECT stream_id FROM events WHERE event_id = $1`, eventID).Scan(&s)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("event %s: %w", eventID, ErrNoEvent)
	}
	if err != nil {
		return "", fmt.Errorf("event %s: %w", eventID, err)
	}
	return s, nil
}
