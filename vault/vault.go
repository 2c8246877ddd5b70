package vault

import (
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
)

// Vault seals and opens events (it is the event store's
// eventstore.Sealer), erases units and owners, and names external ids.
type Vault struct {
	keys Keyring
	// pool is the key store's database.
	pool *pgxpool.Pool
	// inLog: the key store is the event log's database, so new keys are
	// kept in the appending transaction (eventstore.Keep); otherwise in a
	// transaction of their own before it.
	inLog bool
	// recent remembers data keys this process made or read, for sealing
	// and for Recent's opens, for ttl.
	recent *lru.Cache[string, remembered]
	ttl    time.Duration
	names  namesKey
}

type remembered struct {
	key *dataKey
	at  time.Time
}

// dataKey is a data key and its cipher, made once per key: a cipher
// costs about what opening one event does.
type dataKey struct {
	raw  []byte
	aead cipher.AEAD
}

func newKey(raw []byte) (*dataKey, error) {
	aead, err := newAEAD(raw)
	if err != nil {
		return nil, err
	}
	return &dataKey{raw: raw, aead: aead}, nil
}

// DefaultKeyTTL is how long a Vault remembers a data key it made or read
// (see Recent).
const DefaultKeyTTL = time.Minute

// rememberedKeys bounds how many data keys a Vault remembers.
const rememberedKeys = 1 << 16

// New returns a Vault over the key store in pool's database (see
// migrations.ApplyKeyStore), wrapping data keys with keys. inLog says
// that it is the event log's database too.
func New(pool *pgxpool.Pool, keys Keyring, inLog bool) *Vault {
	recent, _ := lru.New[string, remembered](rememberedKeys) // fails only for a size below 1
	return &Vault{keys: keys, pool: pool, inLog: inLog, recent: recent, ttl: DefaultKeyTTL}
}

// Keyring is the vault's master keys.
func (v *Vault) Keyring() Keyring { return v.keys }

// refused is the error of an append whose unit or owner was erased.
var refused = fmt.Errorf("%w: no data may be kept for it again", domain.ErrErased)

// keepSQL keeps new data keys (see vault_keep in migrations/keystore).
const keepSQL = `SELECT vault_keep($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[])`

// keeping collects the data keys a Seal made, one per sealed event.
type keeping struct {
	ids, units, owners, masters []string
	wrapped                     [][]byte
}

func (k *keeping) add(id, unit, owner, master string, wrapped []byte) {
	k.ids, k.units, k.owners = append(k.ids, id), append(k.units, unit), append(k.owners, owner)
	k.masters, k.wrapped = append(k.masters, master), append(k.wrapped, wrapped)
}

// keep stores what k collected: as the append's Keep when the key store
// is the log's database, at once otherwise.
func (v *Vault) keep(ctx context.Context, k *keeping) (*eventstore.Keep, error) {
	if len(k.ids) == 0 {
		return nil, nil
	}
	stmt := &eventstore.Keep{SQL: keepSQL, Args: []any{k.ids, k.units, k.owners, k.masters, k.wrapped}, Refused: refused}
	if v.inLog {
		return stmt, nil
	}
	if _, err := v.pool.Exec(ctx, stmt.SQL, stmt.Args...); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == eventstore.RefusedCode {
			return nil, refused
		}
		return nil, fmt.Errorf("key store: keep data keys: %w", err)
	}
	return nil, nil
}

// fetch reads and unwraps the data keys ids from the key store; a key
// that is gone (erased) is missing from the result.
func (v *Vault) fetch(ctx context.Context, ids []string) (map[string]*dataKey, error) {
	rows, err := v.pool.Query(ctx, `SELECT id, master, wrapped FROM vault_keys WHERE id = ANY ($1::text[])`, ids)
	if err != nil {
		return nil, fmt.Errorf("key store: read data keys: %w", err)
	}
	out := make(map[string]*dataKey, len(ids))
	var id, master string
	var wrapped []byte
	_, err = pgx.ForEachRow(rows, []any{&id, &master, &wrapped}, func() error {
		raw, err := v.keys.unwrap(id, master, wrapped)
		if err != nil {
			return err
		}
		key, err := newKey(raw)
		if err != nil {
			return err
		}
		out[id] = key
		v.remember(id, key)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("key store: read data keys: %w", err)
	}
	return out, nil
}

func (v *Vault) remember(id string, key *dataKey) {
	v.recent.Add(id, remembered{key: key, at: time.Now()})
}

// remembered is a data key this process made or read within ttl.
func (v *Vault) remembered(id string) (*dataKey, bool) {
	r, ok := v.recent.Get(id)
	if !ok || time.Since(r.at) > v.ttl {
		return nil, false
	}
	return r.key, true
}

// Erase deletes the data keys of owners (users: every key of everything
// they own) and of units (see domain.KeyID), and records them erased, so
// that no key is kept for them again: what those keys sealed is
// unreadable from then on, wherever a copy of it is. It says how many
// keys it deleted.
func (v *Vault) Erase(ctx context.Context, owners, units []string) (int64, error) {
	if owners == nil {
		owners = []string{}
	}
	if units == nil {
		units = []string{}
	}
	var n int64
	if err := v.pool.QueryRow(ctx, `SELECT vault_erase($1::text[], $2::text[])`, owners, units).Scan(&n); err != nil {
		return 0, fmt.Errorf("key store: erase: %w", err)
	}
	// The keys this process remembers are by event: forget them all, the
	// store has the rest.
	v.recent.Purge()
	return n, nil
}

// Check reports an error when the key store holds data keys that none of
// the configured master keys unwraps (the wrong key configured): every
// read of people's data would fail. Every process runs it when it opens,
// so it looks at a thousand keys, not the whole store; a key missed here
// fails its own read with ErrUnknownMaster, and `arq keys rotate` reads
// them all.
func (v *Vault) Check(ctx context.Context) error {
	rows, err := v.pool.Query(ctx, `SELECT DISTINCT master FROM (SELECT master FROM vault_keys LIMIT 1000) k`)
	if err != nil {
		return fmt.Errorf("key store: %w", err)
	}
	masters, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("key store: %w", err)
	}
	for _, m := range masters {
		if _, err := v.keys.master(m); err != nil {
			return fmt.Errorf("key store: %w", err)
		}
	}
	return nil
}
