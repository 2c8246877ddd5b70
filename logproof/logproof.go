// Package logproof checks what ARQ's log proves about itself, without
// trusting the server that hands out the proofs: a signed checkpoint (the
// size and Merkle root of the log at some moment), that an event is in
// the log a checkpoint covers, and that a later checkpoint extends an
// earlier one. It depends on nothing of ARQ but this file, so a client
// can vendor it; any language can do the same with the definitions below.
//
// The tree is an RFC 6962 Merkle tree (as Certificate Transparency's and
// Go's checksum database's, whose implementation, golang.org/x/mod/sumdb/tlog,
// this package uses): leaf hash SHA-256(0x00 || leaf), interior node
// SHA-256(0x01 || left || right). Leaf i is the i-th event of the log in
// its commit-safe order, and its bytes are the event's stored hash (32
// bytes, see migrations/00011_hash_chain.sql) followed by its log
// position (8 bytes, big-endian): editing, removing or moving an event
// changes a leaf. A checkpoint is the C2SP checkpoint text
// (https://c2sp.org/tlog-checkpoint) signed as a note
// (https://c2sp.org/signed-note) with Ed25519:
//
//	<origin>
//	<tree size, decimal>
//	<root hash, base64>
//	time <RFC 3339 time the server signed it>
//
//	— <key name> <base64 of key hash and signature>
package logproof

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Hash is a SHA-256 hash: a leaf's, a node's or a tree's.
type Hash = tlog.Hash

// ErrInvalid is what every failed check wraps: the proof, the checkpoint
// or its signature does not hold.
var ErrInvalid = errors.New("logproof: does not verify")

// LeafData is the bytes of an event's leaf: its stored hash and its log
// position.
func LeafData(eventHash []byte, position int64) []byte {
	b := make([]byte, 0, len(eventHash)+8)
	b = append(b, eventHash...)
	return binary.BigEndian.AppendUint64(b, uint64(position))
}

// LeafHash is the tree's hash of an event's leaf.
func LeafHash(eventHash []byte, position int64) Hash {
	return tlog.RecordHash(LeafData(eventHash, position))
}

// Checkpoint is the log at one moment: how many events it held and the
// root of their tree.
type Checkpoint struct {
	// Origin names the log (one ARQ database).
	Origin string
	Size   int64
	Root   Hash
	// Time is when the server signed it.
	Time time.Time
}

// Text is the checkpoint's body, as signed.
func (c Checkpoint) Text() string {
	return fmt.Sprintf("%s\n%d\n%s\ntime %s\n", c.Origin, c.Size, c.Root, c.Time.UTC().Format(time.RFC3339))
}

// ParseCheckpoint reads a checkpoint's body (not checking any signature).
func ParseCheckpoint(text string) (Checkpoint, error) {
	var c Checkpoint
	lines := strings.Split(text, "\n")
	if len(lines) < 4 || lines[len(lines)-1] != "" || lines[0] == "" {
		return c, fmt.Errorf("%w: a checkpoint is an origin, a size and a root hash, a line each", ErrInvalid)
	}
	c.Origin = lines[0]
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return c, fmt.Errorf("%w: checkpoint size %q", ErrInvalid, lines[1])
	}
	c.Size = size
	if c.Root, err = tlog.ParseHash(lines[2]); err != nil {
		return c, fmt.Errorf("%w: checkpoint root %q", ErrInvalid, lines[2])
	}
	for _, ext := range lines[3 : len(lines)-1] {
		if t, ok := strings.CutPrefix(ext, "time "); ok {
			if c.Time, err = time.Parse(time.RFC3339, t); err != nil {
				return c, fmt.Errorf("%w: checkpoint time %q", ErrInvalid, t)
			}
		}
	}
	return c, nil
}

// ReadCheckpoint reads the checkpoint a signed note carries, not checking
// its signature (OpenCheckpoint does): the body is the note up to the
// blank line before its signatures.
func ReadCheckpoint(signed []byte) (Checkpoint, error) {
	text := string(signed)
	end := strings.LastIndex(text, "\n\n")
	if end < 0 {
		return Checkpoint{}, fmt.Errorf("%w: a signed checkpoint is its text, a blank line and signatures", ErrInvalid)
	}
	return ParseCheckpoint(text[:end+1])
}

// OpenCheckpoint checks the signature of a signed checkpoint against the
// verifier key vkey (as `arq log keygen` prints it) and reads it.
func OpenCheckpoint(signed []byte, vkey string) (Checkpoint, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("logproof: verifier key: %w", err)
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint signature: %v", ErrInvalid, err)
	}
	return ParseCheckpoint(n.Text)
}

// Inclusion is the proof that an event is leaf Index of the tree of
// TreeSize leaves: the hashes that, with the event's leaf, make the root.
type Inclusion struct {
	EventID   string `json:"event_id"`
	EventHash []byte `json:"event_hash"`
	Position  int64  `json:"position"`
	Index     int64  `json:"leaf_index"`
	TreeSize  int64  `json:"tree_size"`
	Hashes    []Hash `json:"hashes"`
}

// VerifyInclusion checks that p puts its event in the tree of c.
func VerifyInclusion(c Checkpoint, p Inclusion) error {
	if p.TreeSize != c.Size {
		return fmt.Errorf("%w: the proof is for a tree of %d events, the checkpoint's has %d", ErrInvalid, p.TreeSize, c.Size)
	}
	if p.Index < 0 || p.Index >= c.Size {
		return fmt.Errorf("%w: leaf %d is outside a tree of %d", ErrInvalid, p.Index, c.Size)
	}
	if err := tlog.CheckRecord(p.Hashes, c.Size, c.Root, p.Index, LeafHash(p.EventHash, p.Position)); err != nil {
		return fmt.Errorf("%w: event %s is not leaf %d of the checkpoint's tree: %v", ErrInvalid, p.EventID, p.Index, err)
	}
	return nil
}

// Consistency is the proof that the tree of To leaves extends the tree
// of From leaves: what the log held at From is still there, unchanged, at
// the same places.
type Consistency struct {
	From   int64  `json:"from"`
	To     int64  `json:"to"`
	Hashes []Hash `json:"hashes"`
}

// VerifyConsistency checks that p shows the tree of newer extending the
// tree of older.
func VerifyConsistency(older, newer Checkpoint, p Consistency) error {
	if p.From != older.Size || p.To != newer.Size {
		return fmt.Errorf("%w: the proof is from %d to %d, the checkpoints are of %d and %d", ErrInvalid, p.From, p.To, older.Size, newer.Size)
	}
	if older.Size == newer.Size {
		if older.Root != newer.Root {
			return fmt.Errorf("%w: two roots for a tree of %d", ErrInvalid, older.Size)
		}
		return nil
	}
	if older.Size == 0 {
		return nil // the empty tree is a prefix of every tree
	}
	if err := tlog.CheckTree(p.Hashes, newer.Size, newer.Root, older.Size, older.Root); err != nil {
		return fmt.Errorf("%w: the tree of %d does not extend the tree of %d: %v", ErrInvalid, newer.Size, older.Size, err)
	}
	return nil
}

// Leaves computes a tree's root as its leaves are added in order, holding
// only the roots of its complete subtrees (one per bit of its size): a
// reader of the whole log checks each checkpoint it meets in passing.
type Leaves struct {
	size int64
	// edge holds the roots of the complete subtrees, largest first.
	edge []Hash
}

// Add appends the leaf whose hash is h (see LeafHash).
func (l *Leaves) Add(h Hash) {
	l.edge = append(l.edge, h)
	for s := l.size; s&1 == 1; s >>= 1 {
		n := len(l.edge)
		l.edge[n-2] = tlog.NodeHash(l.edge[n-2], l.edge[n-1])
		l.edge = l.edge[:n-1]
	}
	l.size++
}

// Size is how many leaves were added.
func (l *Leaves) Size() int64 { return l.size }

// Clone is a copy that adding to leaves l as it is.
func (l *Leaves) Clone() Leaves {
	return Leaves{size: l.size, edge: append([]Hash(nil), l.edge...)}
}

// Root is the root of the tree of the leaves added so far, as
// tlog.TreeHash computes it (the zero Hash for no leaf).
func (l *Leaves) Root() Hash {
	if len(l.edge) == 0 {
		return Hash{}
	}
	h := l.edge[len(l.edge)-1]
	for i := len(l.edge) - 2; i >= 0; i-- {
		h = tlog.NodeHash(l.edge[i], h)
	}
	return h
}
