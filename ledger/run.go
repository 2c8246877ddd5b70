package ledger

import (
	"context"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// Waker tells of new events in the log (eventstore.Notifier).
type Waker interface {
	Generation() uint64
	Wait(ctx context.Context, seen uint64, timeout time.Duration) bool
}

// Keeping is how Keep keeps the tree and its checkpoints.
type Keeping struct {
	// Signer signs the checkpoints; nil signs none (the tree is built
	// all the same).
	Signer note.Signer
	// Origin names the log in its checkpoints (see Origin).
	Origin string
	// Every is how often a checkpoint is signed while the log grows.
	Every time.Duration
	// Dir, when not "", receives each checkpoint as a file too.
	Dir string
	// Signed, if not nil, hears of each checkpoint signed.
	Signed func(Signed)
}

// Keep builds the tree as events commit and signs a checkpoint every
// k.Every while it grows, until ctx ends. A failure is logged and tried
// again after a pause; it never stops the process.
func (t *Tree) Keep(ctx context.Context, w Waker, k Keeping) {
	var signed int64
	last := time.Now() // the first checkpoint, too, after k.Every
	pause := time.Second
	for ctx.Err() == nil {
		gen := w.Generation()
		if _, err := t.Build(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			t.log.Error("the log's tree could not be built; trying again", "retry_in", pause, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(pause):
			}
			pause = min(2*pause, 30*time.Second)
			continue
		}
		pause = time.Second
		if k.Signer != nil && t.edge != nil && t.edge.size > signed && time.Since(last) >= k.Every {
			s, err := t.sign(ctx, k.Signer, k.Origin, k.Dir, time.Now())
			if err != nil {
				t.log.Error("the log's checkpoint could not be signed", "size", t.edge.size, "err", err)
			} else {
				signed, last = s.Size, time.Now()
				if k.Signed != nil {
					k.Signed(s)
				}
			}
		}
		wait := k.Every
		if k.Signer != nil && t.edge != nil && t.edge.size > signed {
			wait = max(k.Every-time.Since(last), time.Millisecond)
		}
		if w.Wait(ctx, gen, wait) {
			// Woken by an append: let the ones that follow it gather,
			// so that a busy log is built a batch at a time, not an
			// append at a time.
			select {
			case <-ctx.Done():
			case <-time.After(min(gather, k.Every)):
			}
		}
	}
}

// gather is how long Keep lets appends gather after the one that woke it
// (at most the checkpoints' interval): each build costs a few statements
// and a commit whatever it holds, which at 100 ms took some 5% of a lone
// appender's throughput (BENCHMARKS.md, "The log's Merkle tree").
const gather = time.Second
