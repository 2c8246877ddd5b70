package vault

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Schema is the key store: data keys, wrapped, and the erased units and
// owners no key may be kept for again. It lives in the database the key
// store is configured with (the event log's, unless ARQ_KEYSTORE_URL
// names another), created by Migrate, and is never exported with the log.
//
// vault_keep stores the data keys an append sealed its events with, in
// the append's transaction when the key store is the log's database. It
// takes its owners' and keys' locks shared, then refuses (SQLSTATE AQ003)
// if any was erased; vault_erase takes them exclusive, records the
// erasure and deletes the keys. Each statement of a plpgsql function reads
// with a snapshot of its own, taken after the locks: so a key kept while
// its owner is being erased is either seen and deleted by the erasure or
// refused after it, never left behind.
const Schema = `
CREATE TABLE IF NOT EXISTS vault_keys (
    id         text COLLATE "C" PRIMARY KEY,
    owner      text COLLATE "C",
    master     text NOT NULL,
    wrapped    bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS vault_keys_owner_idx ON vault_keys (owner) WHERE owner IS NOT NULL;
CREATE INDEX IF NOT EXISTS vault_keys_master_idx ON vault_keys (master);

CREATE TABLE IF NOT EXISTS vault_erased (
    id        text COLLATE "C" PRIMARY KEY,
    erased_at timestamptz NOT NULL DEFAULT now()
);

CREATE OR REPLACE FUNCTION vault_keep(owners text[], ids text[], key_owners text[], masters text[], wrapped bytea[])
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(hashtextextended('vault:' || x, 0))
    FROM (SELECT DISTINCT x FROM unnest(owners || ids) AS u (x) WHERE x <> '' ORDER BY 1) l;
    IF EXISTS (SELECT 1 FROM vault_erased WHERE id = ANY (owners || ids)) THEN
        RAISE EXCEPTION USING ERRCODE = 'AQ003', MESSAGE = 'erased: no data may be kept for it again';
    END IF;
    INSERT INTO vault_keys (id, owner, master, wrapped)
    SELECT i, nullif(o, ''), m, w FROM unnest(ids, key_owners, masters, wrapped) AS u (i, o, m, w)
    ON CONFLICT (id) DO NOTHING;
END $$;

CREATE OR REPLACE FUNCTION vault_erase(owners text[], ids text[])
RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
DECLARE n bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('vault:' || x, 0))
    FROM (SELECT DISTINCT x FROM unnest(owners || ids) AS u (x) WHERE x IS NOT NULL ORDER BY 1) l;
    INSERT INTO vault_erased (id) SELECT unnest(owners || ids) ON CONFLICT (id) DO NOTHING;
    DELETE FROM vault_keys WHERE owner = ANY (owners) OR id = ANY (ids);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;
`

// Migrate creates the key store in pool's database, or brings it up to
// date. It may run any number of times, from any number of processes.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	// Concurrent CREATE OR REPLACE FUNCTION collide ("tuple concurrently
	// updated"): one process at a time.
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("key store: migrate: %w", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('vault:migrate', 0))`); err != nil {
		return fmt.Errorf("key store: migrate: %w", err)
	}
	if _, err := tx.Exec(ctx, Schema); err != nil {
		return fmt.Errorf("key store: migrate: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("key store: migrate: %w", err)
	}
	return nil
}
