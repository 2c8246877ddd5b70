package ledger_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/arq-memory/arq/internal/logtamper"
	"github.com/arq-memory/arq/ledger"
	"github.com/arq-memory/arq/logproof"
)

// reports keeps what a Verifier reports.
type reports struct {
	mu   sync.Mutex
	seen []ledger.Result
}

func (r *reports) add(res ledger.Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, res)
}

func (r *reports) last() ledger.Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[len(r.seen)-1]
}

func openCheckpoint(t *testing.T, l *logtamper.Log) logproof.Checkpoint {
	t.Helper()
	c, err := logproof.OpenCheckpoint([]byte(l.Checkpoint.Note), l.VKey)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func describe(p *ledger.Problem) string {
	if p == nil {
		return "no problem"
	}
	return fmt.Sprintf("%+v", *p)
}

// An intact log passes, events after the checkpoint included, and so
// does the verifier's first (whole) check.
func TestCheckPassesAnIntactLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := logtamper.New(t)
	a, err := l.Tree.Check(ctx, openCheckpoint(t, l), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Intact() || a.First != nil || a.Events != a.Size+2 || a.Streams != logtamper.Streams+1 {
		t.Fatalf("intact log: %+v, first %s", a, describe(a.First))
	}
	var got reports
	v := ledger.NewVerifier(l.Tree, l.VKey, quiet(), got.add)
	r, err := v.Check(ctx, false)
	if err != nil || !r.OK || !r.Full || r.Size != a.Size || got.last().OK != true {
		t.Fatalf("verifier on an intact log: %+v, %v", r, err)
	}
}

// Each way of tampering is found, by Check and by the verifier, and the
// first problem names the event: the ones the chains alone miss (an
// edit hidden by re-hashing, a stream's end or a whole stream removed
// with the catalog, positions swapped) and the ones they catch.
func TestCheckNamesEachTampering(t *testing.T) {
	t.Parallel()
	for _, c := range logtamper.Cases {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			l := logtamper.New(t)
			var got reports
			v := ledger.NewVerifier(l.Tree, l.VKey, quiet(), got.add)
			if r, err := v.Check(ctx, true); err != nil || !r.OK {
				t.Fatalf("before tampering: %+v, %v", r, err)
			}
			want := c.Tamper(t, l)

			a, err := l.Tree.Check(ctx, openCheckpoint(t, l), nil)
			if err != nil {
				t.Fatal(err)
			}
			if a.Intact() || a.First == nil || !want.Names(a.First.Kind, a.First.EventID, a.First.Position) {
				t.Fatalf("want %+v first; the check found %s (differs: %s, %d broken links)", want, describe(a.First), describe(a.Differs), a.BrokenLinks)
			}
			t.Logf("first: %s", describe(a.First))
			if a.RootMatches {
				t.Fatalf("the root matches the checkpoint's after tampering: %+v", a)
			}
			r, err := v.Check(ctx, true)
			if err != nil {
				t.Fatal(err)
			}
			if r.OK || r.First == nil || !want.Names(r.First.Kind, r.First.EventID, r.First.Position) || got.last().OK {
				t.Fatalf("want %+v first; the verifier found %s", want, describe(r.First))
			}
		})
	}
}

// Between whole checks the verifier walks only the events signed since
// its last check that passed, and finds a change among them.
func TestVerifierChecksTheNewEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := logtamper.New(t)
	signer, err := ledger.Signer(l.SKey)
	if err != nil {
		t.Fatal(err)
	}
	origin, err := ledger.Origin(ctx, l.Pool)
	if err != nil {
		t.Fatal(err)
	}
	grow := func(n int) ledger.Signed {
		t.Helper()
		appendEvents(t, l.Store, 1000, n)
		logtamper.BuildAll(t, l.Tree, l.Pool)
		s, err := l.Tree.SignNow(ctx, signer, origin, "")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	var got reports
	v := ledger.NewVerifier(l.Tree, l.VKey, quiet(), got.add)
	if r, err := v.Check(ctx, true); err != nil || !r.OK {
		t.Fatalf("whole check: %+v, %v", r, err)
	}
	s := grow(10)
	r, err := v.Check(ctx, false)
	if err != nil || !r.OK || r.Full || r.Size != s.Size || r.Events != 12 { // the 2 after the first checkpoint, and 10
		t.Fatalf("check of the new events: %+v, %v", r, err)
	}
	if r, err := v.Check(ctx, false); err != nil || !r.OK || r.Events != 0 {
		t.Fatalf("check with nothing new: %+v, %v", r, err)
	}

	grow(5)
	var id string
	if err := l.Pool.QueryRow(ctx, `SELECT event_id FROM events WHERE stream_id = 's-2' ORDER BY version DESC LIMIT 1`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	var stream string
	var version int
	if err := l.Pool.QueryRow(ctx, `SELECT stream_id, version FROM events WHERE event_id = $1`, id).Scan(&stream, &version); err != nil {
		t.Fatal(err)
	}
	l.Tamper(t, fmt.Sprintf(`UPDATE events SET data = '{"forged": 1}' WHERE event_id = '%s';
		UPDATE events SET hash = arq_event_hash((SELECT hash FROM events WHERE stream_id = '%s' AND version = %d), event_id, stream_id,
			stream_type, version, event_type, schema_version, recorded_at, data, metadata) WHERE event_id = '%s'`, id, stream, version-1, id))
	r, err = v.Check(ctx, false)
	if err != nil || r.OK || r.Full || r.Events != 5 || r.First == nil || r.First.EventID != id || r.First.Kind != ledger.KindChanged {
		t.Fatalf("check of new events, one changed: %+v (first %s), %v", r, describe(r.First), err)
	}
	if last := got.last(); last.OK || last.First.EventID != id {
		t.Fatalf("reported %+v", last)
	}
}

// Checkpoints removed, or one whose signature does not verify, fail the
// verifier's check.
func TestVerifierDistrustsTheCheckpoints(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := logtamper.New(t)
	v := ledger.NewVerifier(l.Tree, l.VKey, quiet(), nil)
	if r, err := v.Check(ctx, true); err != nil || !r.OK {
		t.Fatalf("whole check: %+v, %v", r, err)
	}
	l.Tamper(t, `ALTER TABLE log_checkpoints DISABLE TRIGGER USER; DELETE FROM log_checkpoints; ALTER TABLE log_checkpoints ENABLE TRIGGER USER`)
	if r, err := v.Check(ctx, false); err != nil || r.OK || r.First == nil || r.First.Kind != ledger.KindCheckpoint {
		t.Fatalf("checkpoints removed: %+v, %v", r, err)
	}
	_, otherKey, err := ledger.NewSigningKey("arq-test")
	if err != nil {
		t.Fatal(err)
	}
	v = ledger.NewVerifier(l.Tree, otherKey, quiet(), nil)
	if _, err := l.Pool.Exec(ctx, `INSERT INTO log_checkpoints (size, root, note, signed_at) VALUES ($1, $2, $3, now())`,
		l.Checkpoint.Size, l.Checkpoint.Root[:], l.Checkpoint.Note); err != nil {
		t.Fatal(err)
	}
	if r, err := v.Check(ctx, true); err != nil || r.OK || r.First == nil || r.First.Kind != ledger.KindCheckpoint {
		t.Fatalf("a checkpoint of another key: %+v, %v", r, err)
	}
}
