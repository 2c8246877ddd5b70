// Package keys keeps the tenants and their API keys in Postgres, a key
// hashed: its secret is shown once, when it is made, and never stored.
//
// Every key acts inside one tenant, and may be narrowed to one user of it;
// Lookup returns both, with the tenant's rate limits, so that every
// request acts in its key's tenant. Keys hold no personal data of end
// users (a narrowed key names its user by id alone), so erasing a user
// leaves them alone; a key narrowed to an erased user reaches nothing.
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
	ID     string   `json:"id"`
	Name   string   `json:"name"`
	Scopes []string `json:"scopes"`
	// Tenant is the one tenant the key acts in.
	Tenant string `json:"tenant"`
	// UserID, when set, narrows the key to that user of its tenant.
	UserID    string    `json:"user_id,omitempty"`
	Version   int       `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Limits are the rate limits of the key's tenant, as Lookup found
	// them; none set: the deployment's.
	Limits Limits `json:"-"`
}

// NewKey is what a key is made with.
type NewKey struct {
	Name   string
	Scopes []string
	// Tenant is the key's tenant; "" is domain.DefaultTenant.
	Tenant string
	// UserID, when set, narrows the key to that user; the caller checks
	// the user is one of the tenant's.
	UserID string
}

// keyCols are the columns scanKey reads.
const keyCols = `k.id, k.name, k.scopes, k.tenant, coalesce(k.user_id, ''), k.created_at, t.rate_limit, t.rate_burst`

// keyFrom is the table keyCols are read from.
const keyFrom = ` FROM api_keys k JOIN tenants t ON t.id = k.tenant `

// scanKey reads a key as keyCols list it.
func scanKey(row pgx.Row) (Key, error) {
	k := Key{Version: 1}
	if err := row.Scan(&k.ID, &k.Name, &k.Scopes, &k.Tenant, &k.UserID, &k.CreatedAt, &k.Limits.Rate, &k.Limits.Burst); err != nil {
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

// Create makes a key; the secret is returned once. A name, scope or
// tenant that is wrong is a *domain.ValidationError; a key narrowed to a
// user may not hold the admin scope (it would manage the tenant's keys).
func (s *Store) Create(ctx context.Context, nk NewKey) (Key, string, error) {
	v := &domain.ValidationError{}
	if nk.Name == "" || len(nk.Name) > 200 {
		v.Add("name", "is required, at most 200 characters")
	}
	if len(nk.Scopes) == 0 {
		v.Add("scopes", "name at least one of read, write, admin")
	}
	for _, sc := range nk.Scopes {
		if sc != ScopeRead && sc != ScopeWrite && sc != ScopeAdmin {
			v.Add("scopes", "%q is not read, write or admin", sc)
		}
		if sc == ScopeAdmin && nk.UserID != "" {
			v.Add("scopes", "a key narrowed to one user may not hold admin")
		}
	}
	if nk.Tenant == "" {
		nk.Tenant = domain.DefaultTenant
	}
	if err := v.Err(); err != nil {
		return Key{}, "", err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return Key{}, "", fmt.Errorf("make key: %w", err)
	}
	secret := "arqk_" + base64.RawURLEncoding.EncodeToString(b)
	var user *string
	if nk.UserID != "" {
		user = &nk.UserID
	}
	k, err := scanKey(s.db.QueryRow(ctx, `WITH k AS (
			INSERT INTO api_keys (id, name, key_hash, scopes, tenant, user_id)
			SELECT $1, $2, $3, $4, id, $6 FROM tenants WHERE id = $5
			RETURNING *)
		SELECT `+keyCols+` FROM k JOIN tenants t ON t.id = k.tenant`,
		ulid.Make().String(), nk.Name, hashKey(secret), slices.Compact(slices.Sorted(slices.Values(nk.Scopes))), nk.Tenant, user))
	if errors.Is(err, pgx.ErrNoRows) {
		return Key{}, "", fmt.Errorf("%w: tenant %s", domain.ErrNotFound, nk.Tenant)
	}
	if err != nil {
		return Key{}, "", fmt.Errorf("store key: %w", err)
	}
	return k, secret, nil
}

// List lists the keys not revoked of tenant, or of every tenant for "".
func (s *Store) List(ctx context.Context, tenant string) ([]Key, error) {
	rows, err := s.db.Query(ctx, `SELECT `+keyCols+keyFrom+`WHERE k.revoked_at IS NULL AND ($1 = '' OR k.tenant = $1) ORDER BY k.id`, tenant)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	keys, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Key, error) { return scanKey(row) })
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	return keys, nil
}

// Revoke revokes a key of tenant ("" any) at once; an unknown or revoked
// one, or another tenant's, is domain.ErrNotFound.
func (s *Store) Revoke(ctx context.Context, tenant, id string) error {
	tag, err := s.db.Exec(ctx, `UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL AND ($2 = '' OR tenant = $2)`, id, tenant)
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
	k, err := scanKey(s.db.QueryRow(ctx, `SELECT `+keyCols+keyFrom+`WHERE k.key_hash = $1 AND k.revoked_at IS NULL`,
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
