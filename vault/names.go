package vault

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"sync"
)

// namesKeyID is the data key that names claims of external ids. It has
// no owner and is never erased: the names it makes reveal nothing without
// it, and an erased user's claim stream keeps its name.
const namesKeyID = "names"

// namesKey is the names key, made once per key store.
type namesKey struct {
	mu  sync.Mutex
	key []byte
}

// ExternalIDName is the name of the claim on externalID in tenant: a keyed
// hash, so that stream ids hold no personal data, and that no one without
// the master key can tell whose claim a stream is, even by guessing.
func (v *Vault) ExternalIDName(ctx context.Context, tenant, externalID string) (string, error) {
	key, err := v.names.get(ctx, v)
	if err != nil {
		return "", err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(tenant))
	mac.Write([]byte{0})
	mac.Write([]byte(externalID))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil)), nil
}

func (n *namesKey) get(ctx context.Context, v *Vault) ([]byte, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.key != nil {
		return n.key, nil
	}
	found, err := v.fetch(ctx, []string{namesKeyID})
	if err != nil {
		return nil, err
	}
	if key, ok := found[namesKeyID]; ok {
		n.key = key.raw
		return n.key, nil
	}
	// Make one; if another process made one first, its stays and is read.
	master, wrapped := v.keys.wrap(namesKeyID, newDataKey())
	if _, err := v.pool.Exec(ctx, keepSQL, []string{namesKeyID}, []string{namesKeyID}, []string{""}, []string{master}, [][]byte{wrapped}); err != nil {
		return nil, fmt.Errorf("key store: keep the names key: %w", err)
	}
	if found, err = v.fetch(ctx, []string{namesKeyID}); err != nil {
		return nil, err
	}
	key, ok := found[namesKeyID]
	if !ok {
		return nil, fmt.Errorf("key store: the names key is missing after it was kept")
	}
	n.key = key.raw
	return n.key, nil
}

// DerivedKey is a key for purpose, derived from the names key: the same
// in every process of a deployment, and useless without the master key.
// The window cache keys the hash of queries in Redis key names with one.
func (v *Vault) DerivedKey(ctx context.Context, purpose string) ([]byte, error) {
	key, err := v.names.get(ctx, v)
	if err != nil {
		return nil, err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("arq derived key\x00" + purpose))
	return mac.Sum(nil), nil
}
