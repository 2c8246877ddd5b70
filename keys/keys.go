// Package keys keeps the API keys in Postgres, hashed: the secret is
// shown once, when a key is made, and never stored.
//
// Tenancy and erasure: a key will belong to one tenant (a tenant column,
// set at Create and returned by Lookup, so that every request acts in its
// key's tenant), and erasing a tenant revokes and then deletes its keys
// here; keys hold no personal data of end users, so erasing a user leaves
// them alone.
package keys

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/oklog/ulid/v2"

	"github.com/arq-memory/arq/domain"
)

// Scopes a key may hold.
const (
	ScopeRead  = "read"
	ScopeWrite = "write"
	ScopeAdmin = "admin"
)

// Key is an API key as listed: never its secret or hash. A key is never
// changed while it is listed (revoked, it leaves every answer): it is at
// version 1, updated when it was created.
type Key struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Scopes    []string  `json:"scopes"`
	Version   int       `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// scanKey reads a key's id, name, scopes and created_at.
func scanKey(row pgx.Row) (Key, error) {
	k := Key{Version: 1}
	if err := row.Scan(&k.ID, &k.Name, &k.Scopes, &k.CreatedAt); err != nil {
		return Key{}, err
	}
	k.UpdatedAt = k.CreatedAt
	return k, nil
}

// Store keeps API keys in the api_keys table.
type Store struct{ db *pgxpool.Pool }

// New returns a Store over db.
func New(db *pgxpool.Pool) *Store { return &Store{db: db} }

func hashKey(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Create makes a key with scopes; the secret is returned once. A name or
// scope that is wrong is a *domain.ValidationError.
func (s *Store) Create(ctx context.Context, name string, scopes []string) (Key, string, error) {
	v := &domain.ValidationError{}
	if name == "" || len(name) > 200 {
		v.Add("name", "is required, at most 200 characters")
	}
	if len(scopes) == 0 {
		v.Add("scopes", "name at least one of read, write, admin")
	}
	for _, sc := range scopes {
		if sc != ScopeRead && sc != ScopeWrite && sc != ScopeAdmin {
			v.Add("scopes", "%q is not read, write or admin", sc)
		}
	}
	if err := v.Err(); err != nil {
		return Key{}, "", err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return Key{}, "", fmt.Errorf("make key: %w", err)
	}
	secret := "arqk_" + base64.RawURLEncoding.EncodeToString(b)
	k, err := scanKey(s.db.QueryRow(ctx, `INSERT INTO api_keys (id, name, key_hash, scopes) VALUES ($1, $2, $3, $4) RETURNING id, name, scopes, created_at`,
		ulid.Make().String(), name, hashKey(secret), slices.Compact(slices.Sorted(slices.Values(scopes)))))
	if err != nil {
		return Key{}, "", fmt.Errorf("store key: %w", err)
	}
	return k, secret, nil
}

// List lists the keys not revoked.
func (s *Store) List(ctx context.Context) ([]Key, error) {
	rows, err := s.db.Query(ctx, `SELECT id, name, scopes, created_at FROM api_keys WHERE revoked_at IS NULL ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	keys, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Key, error) { return scanKey(row) })
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	return keys, nil
}

// Revoke revokes a key at once; an unknown or revoked one is
// domain.ErrNotFound.
func (s *Store) Revoke(ctx context.Context, id string) error {
	tag, err := s.db.Exec(ctx, `UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL`, id)
	if err != nil {
		return fmt.Errorf("revoke key: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: key %s", domain.ErrNotFound, id)
	}
	return nil
}

// Lookup finds the live key with this secret; none is ErrUnknown.
func (s *Store) Lookup(ctx context.Context, secret string) (Key, error) {
	k, err := scanKey(s.db.QueryRow(ctx, `SELECT id, name, scopes, created_at FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL`,
		hashKey(secret)))
	if errors.Is(err, pgx.ErrNoRows) {
		return Key{}, ErrUnknown
	}
	if err != nil {
		return Key{}, fmt.Errorf("look up key: %w", err)
	}
	return k, nil
}

// Live returns those of ids that are live keys (not revoked), in one
// query: the event streams re-check their keys with it.
func (s *Store) Live(ctx context.Context, ids []string) ([]string, error) {
	rows, err := s.db.Query(ctx, `SELECT id FROM api_keys WHERE id = ANY($1) AND revoked_at IS NULL`, ids)
	if err != nil {
		return nil, fmt.Errorf("check keys: %w", err)
	}
	live, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("check keys: %w", err)
	}
	return live, nil
}

// ErrUnknown is the answer to a secret no live key has: unknown, or
// revoked.
var ErrUnknown = errors.New("unknown or revoked key")
