-- +goose Up
-- The key store (see package vault): data keys, wrapped by a master key that
-- never enters a database, and the erased units and owners no key may be kept
-- for again. It lives in the log's database unless ARQ_KEYSTORE_URL names
-- another, is versioned apart (vault_db_version), and is never exported.
--
-- Each sealed event has a data key of its own (the key's id is the event's),
-- named with the erasable unit it belongs to (domain.KeyID: "message:<id>")
-- and the user who owns that unit. A key per event, not per unit: an append
-- retried under new event ids (a lost race) never seals with a key other
-- than the one kept for its event.
--
-- vault_keep stores the data keys an append sealed its events with, in the
-- append's transaction when the key store is the log's database. It takes its
-- owners' and units' locks shared, then refuses (SQLSTATE AQ003) if any was
-- erased; vault_erase takes them exclusive, records the erasure and deletes
-- the keys. Each statement of a plpgsql function reads with a snapshot of its
-- own, taken after the locks: so a key kept while its owner is being erased is
-- either seen and deleted by the erasure or refused after it, never left behind.

CREATE TABLE vault_keys (
    id         text COLLATE "C" PRIMARY KEY,
    unit       text COLLATE "C" NOT NULL,
    owner      text COLLATE "C",
    master     text NOT NULL,
    wrapped    bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX vault_keys_unit_idx ON vault_keys (unit);
CREATE INDEX vault_keys_owner_idx ON vault_keys (owner) WHERE owner IS NOT NULL;

CREATE TABLE vault_erased (
    id        text COLLATE "C" PRIMARY KEY,
    erased_at timestamptz NOT NULL DEFAULT now()
);

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION vault_keep(ids text[], units text[], owners text[], masters text[], wrapped bytea[])
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(hashtextextended('vault:' || x, 0))
    FROM (SELECT DISTINCT x FROM unnest(owners || units) AS u (x) WHERE x <> '' ORDER BY 1) l;
    IF EXISTS (SELECT 1 FROM vault_erased WHERE id = ANY (owners || units)) THEN
        RAISE EXCEPTION USING ERRCODE = 'AQ003', MESSAGE = 'erased: no data may be kept for it again';
    END IF;
    INSERT INTO vault_keys (id, unit, owner, master, wrapped)
    SELECT i, u, nullif(o, ''), m, w FROM unnest(ids, units, owners, masters, wrapped) AS k (i, u, o, m, w)
    ON CONFLICT (id) DO NOTHING;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION vault_erase(owners text[], units text[])
RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
DECLARE n bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('vault:' || x, 0))
    FROM (SELECT DISTINCT x FROM unnest(owners || units) AS u (x) WHERE x <> '' ORDER BY 1) l;
    INSERT INTO vault_erased (id) SELECT unnest(owners || units) ON CONFLICT (id) DO NOTHING;
    DELETE FROM vault_keys WHERE owner = ANY (owners) OR unit = ANY (units);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION vault_erase(text[], text[]);
DROP FUNCTION vault_keep(text[], text[], text[], text[], bytea[]);
DROP TABLE vault_erased;
DROP TABLE vault_keys;
