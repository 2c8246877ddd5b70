package ledger

import (
	"encoding/binary"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// memHashes is a tree's stored hashes in memory, as tlog keeps them.
type memHashes []tlog.Hash

func (m memHashes) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = m[x]
	}
	return out, nil
}

// The compact tree's root is tlog's at every size.
func TestCompactRootIsTlogs(t *testing.T) {
	var c compact
	var stored memHashes
	if c.root() != (tlog.Hash{}) {
		t.Fatal("the empty tree's root is not the zero hash")
	}
	for n := int64(0); n < 300; n++ {
		leaf := tlog.RecordHash(binary.BigEndian.AppendUint64(nil, uint64(n)))
		hs, err := tlog.StoredHashesForRecordHash(n, leaf, stored)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, hs...)
		c.add(leaf)
		want, err := tlog.TreeHash(n+1, stored)
		if err != nil {
			t.Fatal(err)
		}
		if c.root() != want {
			t.Fatalf("root of %d leaves differs from tlog's", n+1)
		}
	}
}
