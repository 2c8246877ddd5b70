package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/arq-memory/arq/logproof"
)

// Verifier checks, again and again, that the log still holds what its
// latest signed checkpoint (in log_checkpoints) says: the events signed
// since its last check that passed, and now and then the whole log, as
// Tree.Check does. A server runs one (Run) and hears each outcome through
// its report function, to show it as a metric and in its readiness.
//
// It trusts what it verified itself: the tree of the events up to the
// last checkpoint that passed, kept in memory. A change since to the
// events before that point only a whole check sees.
//
// Wiring it in a server:
//
//	v := ledger.NewVerifier(tree, vkey, log, func(r ledger.Result) {
//		gauge.Set(map[bool]float64{true: 1}[r.OK]) // arq_log_verified
//		if !r.OK {
//			log.Error("the log differs from its signed checkpoint", "size", r.Size, "problem", r.First)
//		}
//	})
//	go v.Run(ctx, time.Minute, 6*time.Hour)
type Verifier struct {
	tree   *Tree
	vkey   string
	log    *slog.Logger
	report func(Result)

	mu sync.Mutex // one check at a time
	// verified is the tree of the events the last passing check reached,
	// (afterXID, afterPos) the last of them; newest the largest size of a
	// checkpoint that verified.
	verified logproof.Leaves
	afterXID uint64
	afterPos int64
	newest   int64
}

// Result is the outcome of one of a Verifier's checks.
type Result struct {
	// OK says the log holds what the checkpoint signed (and, after a
	// whole check, that no stream's chain is broken).
	OK bool
	// Full says the check walked the whole log, not only the events
	// signed since the last check that passed.
	Full bool
	// Size is the checkpoint's (0: none was signed yet).
	Size int64
	// Events is how many events the check walked.
	Events int64
	// First is the first problem in the log's order, when not OK.
	First *Problem
}

// NewVerifier is a Verifier of tree's log whose checkpoints verify with
// the verifier key vkey (see VerifierKey). report, if not nil, hears the
// outcome of every check (not of a check that failed to run: that is
// logged, and says nothing of the log).
func NewVerifier(tree *Tree, vkey string, log *slog.Logger, report func(Result)) *Verifier {
	if report == nil {
		report = func(Result) {}
	}
	return &Verifier{tree: tree, vkey: vkey, log: log, report: report}
}

// Run checks the log every every, the whole log at first and then every
// fullEvery, until ctx ends.
func (v *Verifier) Run(ctx context.Context, every, fullEvery time.Duration) {
	var lastFull time.Time
	for ctx.Err() == nil {
		full := lastFull.IsZero() || time.Since(lastFull) >= fullEvery
		if _, err := v.Check(ctx, full); err != nil {
			if ctx.Err() != nil {
				return
			}
			v.log.Error("the log could not be checked against its checkpoint; trying again", "retry_in", every, "err", err)
		} else if full {
			lastFull = time.Now()
		}
		select {
		case <-ctx.Done():
		case <-time.After(every):
		}
	}
}

// Check checks the log against its latest signed checkpoint: the events
// it signed since the last check that passed, or, when full (or when
// none passed yet), the whole log. It reports the outcome and returns it;
// an error means the check could not be made.
func (v *Verifier) Check(ctx context.Context, full bool) (Result, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	r, err := v.check(ctx, full)
	if err != nil {
		return r, err
	}
	v.report(r)
	return r, nil
}

func (v *Verifier) check(ctx context.Context, full bool) (Result, error) {
	r := Result{Full: full}
	s, err := v.tree.Checkpoint(ctx, 0)
	if errors.Is(err, ErrNoCheckpoint) {
		r.OK = v.newest == 0
		if !r.OK {
			r.First = checkpointProblem(fmt.Sprintf("no checkpoint is stored, yet one of %d events verified before: checkpoints were removed", v.newest))
		}
		return r, nil
	}
	if err != nil {
		return r, err
	}
	r.Size = s.Size
	c, err := logproof.OpenCheckpoint([]byte(s.Note), v.vkey)
	if err != nil {
		r.First = checkpointProblem(fmt.Sprintf("the latest checkpoint, of %d events, does not verify with the log's key: %v", s.Size, err))
		return r, nil
	}
	origin, err := Origin(ctx, v.tree.pool)
	if err != nil {
		return r, err
	}
	if c.Origin != origin {
		r.First = checkpointProblem(fmt.Sprintf("the latest checkpoint names the log %s; this database's is %s", c.Origin, origin))
		return r, nil
	}
	if c.Size < v.newest {
		r.First = checkpointProblem(fmt.Sprintf("the latest checkpoint is of %d events, yet one of %d verified before: checkpoints were removed", c.Size, v.newest))
		return r, nil
	}
	spec := walkSpec{size: c.Size, root: c.Root}
	if full || v.verified.Size() == 0 {
		r.Full = true
	} else {
		if c.Size == v.verified.Size() {
			r.OK = true
			return r, nil
		}
		spec.start, spec.afterXID, spec.afterPos, spec.leavesOnly = v.verified, v.afterXID, v.afterPos, true
	}
	res, err := v.tree.walk(ctx, spec, nil)
	if err != nil {
		return r, err
	}
	r.Events = res.events
	r.OK = res.rootOK && res.brokenLinks == 0
	if r.OK {
		v.verified, v.afterXID, v.afterPos, v.newest = res.at, res.atXID, res.atPos, c.Size
		return r, nil
	}
	var differs *Problem
	if !res.rootOK {
		p, err := v.tree.explain(ctx, res, c.Size)
		if err != nil {
			return r, err
		}
		differs = &p
	}
	r.First = first(res.breaks, differs)
	return r, nil
}

func checkpointProblem(text string) *Problem {
	return &Problem{Index: -1, Kind: KindCheckpoint, Problem: text}
}
