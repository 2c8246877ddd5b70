package ledger_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/internal/testwait"
	"github.com/arq-memory/arq/ledger"
	"github.com/arq-memory/arq/logproof"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// appendEvents appends n events over a few streams, each append a
// transaction of its own.
func appendEvents(t *testing.T, s *eventstore.Store, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		_, err := s.Append(context.Background(), eventstore.Stream{ID: fmt.Sprintf("s-%d", i%7), Type: "test"}, eventstore.Any(),
			eventstore.Event{Type: "test.happened", Data: []byte(fmt.Sprintf(`{"i": %d}`, i))})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// Every event of the log is proved in every checkpoint signed after it,
// and every checkpoint extends each earlier one; a proof of an event
// whose hash or position differs from the log's does not verify.
func TestProofsOfEveryEventInEveryCheckpoint(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t, testdb.New(t))
	store := eventstore.New(pool)
	tree := ledger.NewTree(pool, quiet())
	skey, vkey, err := note.GenerateKey(rand.Reader, "arq-test")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	origin, err := ledger.Origin(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	var cps []logproof.Checkpoint
	var ids []string
	appended := 0
	for round := range 6 {
		appendEvents(t, store, round*37, 37+round)
		appended += 37 + round
		// An event joins the tree once no transaction older than its
		// own is open, anywhere on the server.
		testwait.Eventually(t, 30*time.Second, fmt.Sprintf("a tree of %d events", appended), func() (bool, error) {
			if _, err := tree.Build(ctx); err != nil {
				return false, err
			}
			n, err := tree.Size(ctx)
			return n == int64(appended), err
		})
		s, err := tree.SignNow(ctx, signer, origin, "")
		if err != nil {
			t.Fatal(err)
		}
		c, err := logproof.OpenCheckpoint([]byte(s.Note), vkey)
		if err != nil {
			t.Fatalf("the signed checkpoint: %v\n%s", err, s.Note)
		}
		cps = append(cps, c)
	}
	if err := store.Export(ctx, time.Time{}, func(e eventstore.Exported) error {
		ids = append(ids, e.EventID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if int64(len(ids)) != cps[len(cps)-1].Size {
		t.Fatalf("the tree holds %d leaves, the log %d events", cps[len(cps)-1].Size, len(ids))
	}
	for ci, c := range cps {
		for i, id := range ids {
			p, err := tree.Prove(ctx, id, c.Size)
			if int64(i) >= c.Size {
				if err == nil {
					t.Fatalf("event %d proved in a checkpoint of %d", i, c.Size)
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Index != int64(i) {
				t.Fatalf("event %d is leaf %d", i, p.Index)
			}
			if err := logproof.VerifyInclusion(c, p); err != nil {
				t.Fatalf("event %d in checkpoint %d: %v", i, ci, err)
			}
			bad := p
			bad.Position++
			if logproof.VerifyInclusion(c, bad) == nil {
				t.Fatalf("a proof of event %d at another position verified", i)
			}
		}
		for _, older := range cps[:ci] {
			p, err := tree.Consistency(ctx, older.Size, c.Size)
			if err != nil {
				t.Fatal(err)
			}
			if err := logproof.VerifyConsistency(older, c, p); err != nil {
				t.Fatalf("checkpoint %d from %d: %v", c.Size, older.Size, err)
			}
			wrong := older
			wrong.Root[0] ^= 1
			if logproof.VerifyConsistency(wrong, c, p) == nil {
				t.Fatalf("a consistency proof from another root verified")
			}
		}
	}
	latest, err := tree.Checkpoint(ctx, 0)
	if err != nil || latest.Size != cps[len(cps)-1].Size || latest.Root != cps[len(cps)-1].Root {
		t.Fatalf("latest checkpoint %+v, %v", latest.Checkpoint, err)
	}
}

// The verifier key read off a signing key is the one made with it.
func TestVerifierKeyOfASigningKey(t *testing.T) {
	skey, vkey, err := ledger.NewSigningKey("arq-test")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ledger.VerifierKey(skey)
	if err != nil || got != vkey {
		t.Fatalf("VerifierKey = %q, %v; want %q", got, err, vkey)
	}
	if _, err := ledger.VerifierKey(vkey); err == nil {
		t.Fatal("a verifier key read as a signing key")
	}
}

// A checkpoint written to a directory outside the database is the note
// as signed, by its size and as the latest.
func TestCheckpointWrittenToADirectory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t, testdb.New(t))
	appendEvents(t, eventstore.New(pool), 0, 3)
	tree := ledger.NewTree(pool, quiet())
	testwait.Eventually(t, 30*time.Second, "a tree of 3 events", func() (bool, error) {
		if _, err := tree.Build(ctx); err != nil {
			return false, err
		}
		n, err := tree.Size(ctx)
		return n == 3, err
	})
	signer, err := ledger.Signer(testdb.LogSigningKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s, err := tree.SignNow(ctx, signer, "arq/test", dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"3.checkpoint", "latest.checkpoint"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(b) != s.Note {
			t.Fatalf("%s: %q, %v; want the signed note", name, b, err)
		}
		if c, err := logproof.OpenCheckpoint(b, testdb.LogVerifierKey); err != nil || c.Size != 3 {
			t.Fatalf("%s: %+v, %v", name, c, err)
		}
	}
}
