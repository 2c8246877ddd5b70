package logproof_test

import (
	"crypto/rand"
	"crypto/sha256"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/arq-memory/arq/logproof"
)

// memHashes is a tree's stored hashes in memory, as tlog reads them.
type memHashes []tlog.Hash

func (m memHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		out[i] = m[x]
	}
	return out, nil
}

// Leaves gives, after each leaf, the root tlog computes from the whole
// tree.
func TestLeavesRootIsTheTreeHash(t *testing.T) {
	var l logproof.Leaves
	var stored memHashes
	for n := int64(0); n < 300; n++ {
		h := sha256.Sum256([]byte{byte(n), byte(n >> 8)})
		leaf := logproof.LeafHash(h[:], n*3+1)
		hs, err := tlog.StoredHashes(n, logproof.LeafData(h[:], n*3+1), stored)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, hs...)
		l.Add(leaf)
		want, err := tlog.TreeHash(n+1, stored)
		if err != nil {
			t.Fatal(err)
		}
		if l.Size() != n+1 || l.Root() != want {
			t.Fatalf("after %d leaves: size %d, root %v; want %v", n+1, l.Size(), l.Root(), want)
		}
	}
}

// ReadCheckpoint reads a signed checkpoint as OpenCheckpoint does, without
// the key.
func TestReadCheckpointWithoutTheKey(t *testing.T) {
	skey, vkey, err := note.GenerateKey(rand.Reader, "arq-test")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	c := logproof.Checkpoint{Origin: "arq/x", Size: 7, Root: tlog.Hash{1, 2}, Time: time.Unix(1700000000, 0).UTC()}
	signed, err := note.Sign(&note.Note{Text: c.Text()}, signer)
	if err != nil {
		t.Fatal(err)
	}
	got, err := logproof.ReadCheckpoint(signed)
	if err != nil || got != c {
		t.Fatalf("read %+v, %v; want %+v", got, err, c)
	}
	if opened, err := logproof.OpenCheckpoint(signed, vkey); err != nil || opened != c {
		t.Fatalf("opened %+v, %v", opened, err)
	}
	if _, err := logproof.ReadCheckpoint([]byte(c.Text())); err == nil {
		t.Fatal("an unsigned text read as a signed checkpoint")
	}
}
