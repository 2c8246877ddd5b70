package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/arq-memory/arq/logproof"
)

// The kinds of Problem.
const (
	// KindBroken: a stream's hash chain is broken at the event (as
	// eventstore.Verify finds, but recomputed here without the database).
	KindBroken = "broken"
	// KindTruncated: the stream catalog saw the stream reach a version
	// the log no longer holds.
	KindTruncated = "truncated"
	// KindChanged: the event at this place of the log is not what the
	// checkpoint signed there: its content or its hash changed.
	KindChanged = "changed"
	// KindMissing: the checkpoint's event at this place is gone.
	KindMissing = "missing"
	// KindMoved: the event is at another place, or has another
	// position, than the checkpoint signed.
	KindMoved = "moved"
	// KindDiffers: the log differs from the checkpoint, and where cannot
	// be told (the stored tree was rewritten with it).
	KindDiffers = "differs"
	// KindCheckpoint: the checkpoints themselves are wrong (one does not
	// verify, or a newer one than the latest was seen before).
	KindCheckpoint = "checkpoint"
)

// ErrOtherLog is returned when a checkpoint is of another log than the
// database's (its origin differs).
var ErrOtherLog = errors.New("the checkpoint is of another log")

// Problem is one thing a check found wrong with the log.
type Problem struct {
	// Index is the event's place in the log's commit-safe order (its leaf
	// in the tree); -1 when the problem has none (a stream's end).
	Index    int64  `json:"index"`
	StreamID string `json:"stream_id,omitempty"`
	Version  int    `json:"version,omitempty"`
	EventID  string `json:"event_id,omitempty"`
	Position int64  `json:"position,omitempty"`
	Kind     string `json:"kind"`
	Problem  string `json:"problem"`
}

// Audit is what Check found.
type Audit struct {
	Origin string `json:"origin"`
	// Size is the checkpoint's: how many events it signed.
	Size    int64 `json:"checkpoint_size"`
	Events  int64 `json:"events"`
	Streams int64 `json:"streams"`
	// RootMatches says the tree recomputed from the log's first Size
	// events has the checkpoint's root: the verdict on them.
	RootMatches bool `json:"root_matches"`
	// Breaks are the broken links of the streams' chains, over the whole
	// log, at most 10,000 of BrokenLinks.
	Breaks      []Problem `json:"breaks"`
	BrokenLinks int64     `json:"broken_links"`
	// Differs is, when the root does not match, the first event (in the
	// log's order) that is changed, missing or moved against the
	// checkpoint, as far as the stored tree tells.
	Differs *Problem `json:"differs,omitempty"`
	// First is the first problem in the log's order, if any.
	First *Problem `json:"first_problem"`
}

// Intact reports whether the log holds what the checkpoint signed and no
// stream's chain is broken.
func (a Audit) Intact() bool { return a.RootMatches && a.BrokenLinks == 0 }

// Check checks the log against the checkpoint c, whose signature the
// caller has verified (logproof.OpenCheckpoint): it walks the whole log in
// its commit-safe order, recomputing in Go each event's hash from its
// content, each stream's chain, and the tree of the first c.Size events,
// whose root must be c's. Events after c.Size are only chain-checked.
// Nothing the database computes is trusted: not arq_event_hash, not the
// stored tree, whose positions serve only to name what differs.
// progress, if not nil, hears how many events were walked.
func (t *Tree) Check(ctx context.Context, c logproof.Checkpoint, progress func(done int64)) (Audit, error) {
	a := Audit{Origin: c.Origin, Size: c.Size}
	origin, err := Origin(ctx, t.pool)
	if err != nil {
		return a, err
	}
	if origin != c.Origin {
		return a, fmt.Errorf("%w: it names %s, this database's is %s", ErrOtherLog, c.Origin, origin)
	}
	res, err := t.walk(ctx, walkSpec{size: c.Size, root: c.Root}, progress)
	if err != nil {
		return a, err
	}
	if c.Size == 0 {
		res.rootOK = c.Root == (tlog.Hash{})
	}
	a.Events, a.Streams, a.RootMatches = res.events, res.streams, res.rootOK
	a.Breaks, a.BrokenLinks = res.breaks, res.brokenLinks
	if !res.rootOK {
		p, err := t.explain(ctx, res, c.Size)
		if err != nil {
			return a, err
		}
		a.Differs = &p
	}
	a.First = first(a.Breaks, a.Differs)
	return a, nil
}

// first is the problem earliest in the log's order: a broken link before
// a difference at the same event, which says more; problems without a
// place come last.
func first(breaks []Problem, differs *Problem) *Problem {
	var best *Problem
	earlier := func(p, q *Problem) bool {
		return q == nil || p.Index >= 0 && (q.Index < 0 || p.Index < q.Index)
	}
	for i := range breaks {
		if earlier(&breaks[i], best) {
			best = &breaks[i]
		}
	}
	if differs != nil && earlier(differs, best) {
		best = differs
	}
	if best == nil {
		return nil
	}
	p := *best
	return &p
}

// lookAhead is how many stored leaves after a differing one explain
// searches for the event now there, to tell an event moved from one
// changed.
const lookAhead = 64

// explain says where the log first differs from the checkpoint of size,
// from what the stored tree held there. It never decides that it does.
func (t *Tree) explain(ctx context.Context, res walkResult, size int64) (Problem, error) {
	stored := storedLeaves{ctx: ctx, t: t}
	d := res.firstDiff
	if d == nil {
		if res.leaves >= size || res.storedTreeShort {
			return Problem{Index: -1, Kind: KindDiffers, Problem: fmt.Sprintf("the tree of the log's first %d events has another root "+
				"than the checkpoint's, yet each event matches the tree stored beside the log: it was rewritten with the log, so "+
				"which event differs cannot be told here", size)}, nil
		}
		// The log ran out before the checkpoint's size.
		_, pos, ok, err := stored.at(res.leaves)
		if err != nil {
			return Problem{}, err
		}
		p := Problem{Index: res.leaves, Kind: KindMissing, Problem: fmt.Sprintf("the log holds %d of the checkpoint's %d events: "+
			"from event %d on they are missing", res.leaves, size, res.leaves)}
		if ok {
			p.Position = pos
			if err := t.holder(ctx, &p, pos); err != nil {
				return p, err
			}
		}
		return p, nil
	}
	e := *d.event
	// Is the checkpoint's event at this place still in the log?
	there := Problem{Index: d.leaf, Position: d.storedPos, Kind: KindMissing}
	if e.Position != d.storedPos {
		found, err := t.lookup(ctx, &there)
		if err != nil {
			return there, err
		}
		if !found {
			there.Problem = fmt.Sprintf("the checkpoint's event %d, at position %d, is missing from the log (%s version %d, event %s, is there now)",
				d.leaf, d.storedPos, e.StreamID, e.Version, e.EventID)
			return there, nil
		}
	}
	want, _, _, err := stored.at(d.leaf)
	if err != nil {
		return Problem{}, err
	}
	if logproof.LeafHash(d.computed[:], d.storedPos) == want {
		e.Kind = KindMoved
		e.Problem = fmt.Sprintf("the event is the checkpoint's event %d, but at position %d instead of %d: positions were changed",
			d.leaf, e.Position, d.storedPos)
		return e, nil
	}
	for m := d.leaf + 1; m < min(d.leaf+1+lookAhead, size); m++ {
		h, pos, ok, err := stored.at(m)
		if err != nil {
			return Problem{}, err
		}
		if ok && logproof.LeafHash(d.computed[:], pos) == h {
			e.Kind = KindMoved
			e.Problem = fmt.Sprintf("the event was the checkpoint's event %d, at position %d; it is event %d now, at position %d: events were moved",
				m, pos, d.leaf, e.Position)
			return e, nil
		}
	}
	if e.Position != d.storedPos {
		e.Kind = KindMoved
		e.Problem = fmt.Sprintf("the checkpoint has position %d as event %d, where this event is now, at position %d; "+
			"position %d is %s version %d (event %s) now: events were moved",
			d.storedPos, d.leaf, e.Position, d.storedPos, there.StreamID, there.Version, there.EventID)
		return e, nil
	}
	e.Kind = KindChanged
	e.Problem = fmt.Sprintf("the event is not what the checkpoint signed as event %d: its content or its hash was changed", d.leaf)
	return e, nil
}

// lookup fills in p the event at p.Position, reporting whether there is one.
func (t *Tree) lookup(ctx context.Context, p *Problem) (bool, error) {
	var version int32
	err := t.pool.QueryRow(ctx, `SELECT stream_id, version, event_id FROM events WHERE position = $1`, p.Position).
		Scan(&p.StreamID, &version, &p.EventID)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check the log: %w", err)
	}
	p.Version = int(version)
	return true, nil
}

// holder names in p the event at position pos, if the log holds one:
// moved away from the end of the checkpoint.
func (t *Tree) holder(ctx context.Context, p *Problem, pos int64) error {
	found, err := t.lookup(ctx, p)
	if err != nil || !found {
		return err
	}
	p.Kind = KindMoved
	p.Problem = fmt.Sprintf("the checkpoint's event %d, at position %d, is no longer at its place: the log holds only %d events before it",
		p.Index, pos, p.Index)
	return nil
}
