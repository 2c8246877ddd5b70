-- +goose Up
-- The key store's tables are the server's (arq_server, see the log's
-- migration 00027_append_only.sql): appends keep keys, erasures delete
-- them. The key store may be a database, even a cluster, of its own, so
-- the role is made here too when missing.
-- +goose StatementBegin
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'arq_server') THEN
        BEGIN
            CREATE ROLE arq_server NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
    IF NOT pg_has_role(current_user, 'arq_server', 'MEMBER') THEN
        BEGIN
            EXECUTE format('GRANT arq_server TO %I', current_user);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
    EXECUTE format('GRANT USAGE, CREATE ON SCHEMA %I TO arq_server', current_schema());
END
$$;
-- +goose StatementEnd
ALTER TABLE vault_keys OWNER TO arq_server;
ALTER TABLE vault_erased OWNER TO arq_server;
-- The version table may be newer than the log's default grants.
REVOKE ALL ON vault_db_version FROM arq_server;
GRANT SELECT ON vault_db_version TO arq_server;

-- +goose Down
REVOKE ALL ON vault_db_version FROM arq_server;
