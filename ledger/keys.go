package ledger

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// algEd25519 is the note format's first byte of an Ed25519 key.
const algEd25519 = 1

// NewSigningKey makes a signing key for checkpoints, named name, and its
// verifier key, in the note format ("PRIVATE+KEY+name+..." and
// "name+..."): the first stays with the server, outside the database;
// the second goes to whoever checks checkpoints.
func NewSigningKey(name string) (skey, vkey string, err error) {
	skey, vkey, err = note.GenerateKey(rand.Reader, name)
	if err != nil {
		return "", "", fmt.Errorf("log signing key: %w", err)
	}
	return skey, vkey, nil
}

// Signer reads a signing key as NewSigningKey makes it.
func Signer(skey string) (note.Signer, error) {
	s, err := note.NewSigner(strings.TrimSpace(skey))
	if err != nil {
		return nil, fmt.Errorf("log signing key: %w", err)
	}
	return s, nil
}

// VerifierKey is the verifier key of the signing key skey.
func VerifierKey(skey string) (string, error) {
	parts := strings.SplitN(strings.TrimSpace(skey), "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" {
		return "", errors.New("log signing key: not a note signing key (PRIVATE+KEY+name+hash+key)")
	}
	b, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(b) != 1+ed25519.SeedSize || b[0] != algEd25519 {
		return "", errors.New("log signing key: not an Ed25519 note signing key")
	}
	pub := ed25519.NewKeyFromSeed(b[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(parts[2], pub)
	if err != nil {
		return "", fmt.Errorf("log signing key: %w", err)
	}
	return vkey, nil
}
