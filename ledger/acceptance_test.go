package ledger_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/internal/testwait"
	"github.com/arq-memory/arq/ledger"
	"github.com/arq-memory/arq/logproof"
)

// A log of 10,000 events, signed 20 times as it grew: every event is
// proved, with the client's verifier alone, in the first checkpoint that
// holds it and in the last; every checkpoint is proved consistent with
// every earlier one; a proof of an event as someone changed it does not
// verify.
func TestEveryEventOfTenThousandAcrossTwentyCheckpoints(t *testing.T) {
	t.Parallel()
	const events, checkpoints = 10_000, 20
	ctx := context.Background()
	url := testdb.New(t)
	pool := testdb.Pool(t, url)
	tree := ledger.NewTree(pool, quiet())
	skey, vkey, err := ledger.NewSigningKey("arq-test")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ledger.Signer(skey)
	if err != nil {
		t.Fatal(err)
	}
	var cps []logproof.Checkpoint
	for c := range checkpoints {
		from, to := c*events/checkpoints, (c+1)*events/checkpoints
		if _, err := pool.Exec(ctx, `INSERT INTO events (event_id, stream_id, stream_type, version, event_type, data, metadata, hash)
			SELECT 'ev' || lpad(i::text, 24, '0'), 'accept-' || (i % 97), 'accept', i / 97 + 1, 'accept.happened',
				'{}', '{"tenant":"default"}', sha256(int8send(i))
			FROM generate_series($1::bigint, $2::bigint - 1) i`, from, to); err != nil {
			t.Fatal(err)
		}
		testwait.Eventually(t, 30*time.Second, fmt.Sprintf("a tree of %d events", to), func() (bool, error) {
			if _, err := tree.Build(ctx); err != nil {
				return false, err
			}
			n, err := tree.Size(ctx)
			return n == int64(to), err
		})
		s, err := tree.SignNow(ctx, signer, "arq/test", "")
		if err != nil {
			t.Fatal(err)
		}
		cp, err := logproof.OpenCheckpoint([]byte(s.Note), vkey)
		if err != nil {
			t.Fatal(err)
		}
		cps = append(cps, cp)
	}
	last := cps[len(cps)-1]
	for i := range events {
		id := fmt.Sprintf("ev%024d", i)
		first := cps[i*checkpoints/events]
		for _, cp := range []logproof.Checkpoint{first, last} {
			p, err := tree.Prove(ctx, id, cp.Size)
			if err != nil {
				t.Fatalf("event %d in the checkpoint of %d: %v", i, cp.Size, err)
			}
			if err := logproof.VerifyInclusion(cp, p); err != nil {
				t.Fatalf("event %d in the checkpoint of %d: %v", i, cp.Size, err)
			}
		}
	}
	for j, newer := range cps {
		for _, older := range cps[:j] {
			p, err := tree.Consistency(ctx, older.Size, newer.Size)
			if err != nil {
				t.Fatal(err)
			}
			if err := logproof.VerifyConsistency(older, newer, p); err != nil {
				t.Fatalf("from %d to %d: %v", older.Size, newer.Size, err)
			}
		}
	}

	// Someone with SQL access rewrites an event's stored hash (as an edit
	// re-hashed would): the proof the server now gives does not verify
	// against the signed checkpoint, whatever the tables say.
	if _, err := testdb.OwnerPool(t, url).Exec(ctx, `ALTER TABLE events DISABLE TRIGGER USER;
		UPDATE events SET hash = sha256(hash) WHERE event_id = 'ev000000000000000000004242';
		ALTER TABLE events ENABLE TRIGGER USER`); err != nil {
		t.Fatal(err)
	}
	p, err := tree.Prove(ctx, "ev000000000000000000004242", last.Size)
	if err != nil {
		t.Fatal(err)
	}
	if logproof.VerifyInclusion(last, p) == nil {
		t.Fatal("the proof of a changed event verified")
	}
}
