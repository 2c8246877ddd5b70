// Package vault keeps people's data erasable in a log that is never
// rewritten (crypto-shredding). The personal fields of each event (see
// domain.PersonalData) are sealed with AES-256-GCM under a data key of
// the event's own, labelled with the erasable unit the fields belong to (a
// user, a message, a memory, a summary or a snapshot) and the user who
// owns it. Data keys are kept in a key store apart from the log, each
// wrapped by a master key that never enters a database. Erasing a unit or
// a user deletes their data keys, and with them every copy of what the
// keys sealed: in the log, its exports and backups, the live topic.
package vault

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// MasterKeySize is the size of a master key in bytes (AES-256).
const MasterKeySize = 32

// Master is a master key: it wraps the data keys, and is named by an id
// derived from it, which the key store records beside each wrapped key.
type Master struct {
	id   string
	aead cipher.AEAD
}

// ID names the key without revealing it.
func (m Master) ID() string { return m.id }

// NewMasterKey is a new random master key, base64-encoded as
// ARQ_MASTER_KEY and key files hold it.
func NewMasterKey() string {
	return base64.StdEncoding.EncodeToString(newDataKey())
}

// ParseMaster reads a base64-encoded master key of MasterKeySize bytes.
func ParseMaster(encoded string) (Master, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(encoded))
	if err != nil {
		return Master{}, fmt.Errorf("master key: not base64: %w", err)
	}
	if len(raw) != MasterKeySize {
		return Master{}, fmt.Errorf("master key: %d bytes, want %d (make one with `arq keys new`)", len(raw), MasterKeySize)
	}
	aead, err := newAEAD(raw)
	if err != nil {
		return Master{}, err
	}
	mac := hmac.New(sha256.New, raw)
	mac.Write([]byte("arq master key id"))
	return Master{id: hex.EncodeToString(mac.Sum(nil)[:8]), aead: aead}, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("cipher: %w", err)
	}
	return aead, nil
}

// Keyring is the master key data keys are wrapped with, and the earlier
// ones that still unwrap keys not yet rewrapped (see Rotate).
type Keyring struct {
	current  Master
	previous []Master
}

// NewKeyring is a keyring that wraps with current and unwraps with it and
// previous.
func NewKeyring(current Master, previous ...Master) Keyring {
	return Keyring{current: current, previous: previous}
}

// Current is the master key new data keys are wrapped with.
func (k Keyring) Current() Master { return k.current }

// ErrUnknownMaster is the error of a data key wrapped by a master key the
// keyring lacks.
var ErrUnknownMaster = errors.New("data key wrapped by a master key that is not configured")

func (k Keyring) master(id string) (Master, error) {
	if k.current.id == id {
		return k.current, nil
	}
	for _, m := range k.previous {
		if m.id == id {
			return m, nil
		}
	}
	return Master{}, fmt.Errorf("%w (master key %s; this process has %s)", ErrUnknownMaster, id, k.ids())
}

func (k Keyring) ids() string {
	ids := []string{k.current.id}
	for _, m := range k.previous {
		ids = append(ids, m.id)
	}
	return strings.Join(ids, ", ")
}

// wrap seals a data key under the current master key, bound to its id.
func (k Keyring) wrap(keyID string, dataKey []byte) (master string, wrapped []byte) {
	return k.current.id, seal(k.current.aead, dataKey, []byte(keyID))
}

// unwrap opens a data key wrapped by the master key named master.
func (k Keyring) unwrap(keyID, master string, wrapped []byte) ([]byte, error) {
	m, err := k.master(master)
	if err != nil {
		return nil, fmt.Errorf("data key %s: %w", keyID, err)
	}
	key, err := open(m.aead, wrapped, []byte(keyID))
	if err != nil {
		return nil, fmt.Errorf("data key %s: unwrap: %w", keyID, err)
	}
	return key, nil
}

// seal encrypts plain with a, under a random nonce it puts in front.
func seal(a cipher.AEAD, plain, aad []byte) []byte {
	nonce := make([]byte, a.NonceSize(), a.NonceSize()+len(plain)+a.Overhead())
	rand.Read(nonce)
	return a.Seal(nonce, nonce, plain, aad)
}

// open decrypts what seal made.
func open(a cipher.AEAD, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < a.NonceSize() {
		return nil, errors.New("ciphertext too short")
	}
	return a.Open(nil, sealed[:a.NonceSize()], sealed[a.NonceSize():], aad)
}

// newDataKey is a new random data key.
func newDataKey() []byte {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}
