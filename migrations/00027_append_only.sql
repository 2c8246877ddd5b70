-- +goose Up
-- The log is append-only by construction, twice over:
--
-- 1. The server runs as the role arq_server (see migrations.ServerRole),
--    which may read and append to the log's tables but not change or
--    remove a row of them. Every other table is its own: online rebuilds
--    drop and replace projection tables, which only an owner may do.
--    Migrations run as the database's owner, a member of arq_server.
-- 2. Triggers refuse UPDATE, DELETE and TRUNCATE of the log's tables to
--    everyone, the owner included. An operator who must change an event
--    says why first (arq_operator_change, in the same transaction); each
--    event changed so is recorded in log_operator_changes.
--
-- The owner can still turn triggers off: the guard stops mistakes, not the
-- owner, whose credentials the server never needs.

-- Roles are the cluster's, shared by its databases, which may be migrated
-- at the same moment: a role made meanwhile by another is as good.
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
    -- The owner becomes a member (a superuser is one already): it then
    -- may hand tables to arq_server, and alter those it owns.
    IF NOT pg_has_role(current_user, 'arq_server', 'MEMBER') THEN
        BEGIN
            EXECUTE format('GRANT arq_server TO %I', current_user);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
END
$$;
-- +goose StatementEnd

-- Grants are the database's own. (CREATE on the database, for the schema of
-- a rebuild's copies, is not copied with a database; migrations.Apply grants
-- it on every run.)
-- +goose StatementBegin
DO $$
DECLARE
    t text;
BEGIN
    EXECUTE format('GRANT CREATE ON DATABASE %I TO arq_server', current_database());
    EXECUTE format('GRANT USAGE, CREATE ON SCHEMA %I TO arq_server', current_schema());
    FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = current_schema()
            AND tablename NOT IN ('events', 'log_tree', 'log_checkpoints', 'goose_db_version', 'vault_db_version')
            ORDER BY 1 LOOP
        EXECUTE format('ALTER TABLE %I OWNER TO arq_server', t);
    END LOOP;
END
$$;
-- +goose StatementEnd

GRANT SELECT, INSERT ON events, log_tree, log_checkpoints TO arq_server;
GRANT SELECT ON goose_db_version TO arq_server;
-- Tables later migrations make are the server's to use; a projection's
-- table must also be handed over (ALTER TABLE ... OWNER TO arq_server), and
-- a table of the log get SELECT, INSERT only: TestServerRights checks both.
-- +goose StatementBegin
DO $$
BEGIN
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT ALL ON TABLES TO arq_server', current_schema());
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT ALL ON SEQUENCES TO arq_server', current_schema());
END
$$;
-- +goose StatementEnd

-- What operators changed in the log: one row per event changed, with who,
-- when and why. Append-only, as the log is; the server may read it.
CREATE TABLE log_operator_changes (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id xid8        NOT NULL DEFAULT pg_current_xact_id(),
    changed_at     timestamptz NOT NULL DEFAULT now(),
    -- changed_by is the role that logged in, whatever role it set.
    changed_by     text        NOT NULL DEFAULT session_user,
    reason         text        NOT NULL,
    operation      text        NOT NULL CHECK (operation IN ('UPDATE', 'DELETE')),
    event_id       text        COLLATE "C" NOT NULL,
    stream_id      text        COLLATE "C" NOT NULL,
    version        integer     NOT NULL,
    position       bigint      NOT NULL,
    -- The event's hash before, and after (NULL: deleted): eventstore.Verify
    -- reports the chain broken at the event; this row says why.
    old_hash       bytea       NOT NULL,
    new_hash       bytea
);
REVOKE ALL ON log_operator_changes FROM arq_server;
GRANT SELECT ON log_operator_changes TO arq_server;

-- arq_operator_change lets the owner change or delete events in the
-- transaction it is called in, for reason. Nothing else may.
-- +goose StatementBegin
CREATE FUNCTION arq_operator_change(reason text) RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF reason IS NULL OR btrim(reason) = '' THEN
        RAISE EXCEPTION 'arq_operator_change: say why the log is changed';
    END IF;
    PERFORM set_config('arq.operator_reason', reason, true);
    PERFORM set_config('arq.operator_xid', pg_current_xact_id()::text, true);
END
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION arq_operator_change(text) FROM PUBLIC;

-- arq_log_refuse refuses a change of a log table. For events it lets one
-- through if arq_operator_change was called in the same transaction by a
-- role that may act as the table's owner.
-- +goose StatementBegin
CREATE FUNCTION arq_log_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'events' AND TG_OP IN ('UPDATE', 'DELETE')
            AND current_setting('arq.operator_xid', true) = pg_current_xact_id()::text
            AND pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = TG_RELID), 'USAGE') THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'AQ004',
        MESSAGE = format('%s is append-only: %s refused', TG_TABLE_NAME, TG_OP),
        HINT = CASE WHEN TG_TABLE_NAME = 'events' AND TG_OP <> 'TRUNCATE'
            THEN 'the database''s owner may, in a transaction that first calls arq_operator_change(reason)'
            ELSE 'no one changes it' END;
END
$$;
-- +goose StatementEnd

-- arq_log_record records an event an operator changed.
-- +goose StatementBegin
CREATE FUNCTION arq_log_record() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO log_operator_changes (reason, operation, event_id, stream_id, version, position, old_hash, new_hash)
    VALUES (current_setting('arq.operator_reason'), TG_OP, OLD.event_id, OLD.stream_id, OLD.version, OLD.position,
        OLD.hash, CASE WHEN TG_OP = 'UPDATE' THEN NEW.hash END);
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- Statement triggers: a change that would touch no row is refused too.
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION arq_log_refuse();
CREATE TRIGGER events_operator_changes AFTER UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION arq_log_record();
CREATE TRIGGER log_tree_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON log_tree
    FOR EACH STATEMENT EXECUTE FUNCTION arq_log_refuse();
CREATE TRIGGER log_checkpoints_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON log_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION arq_log_refuse();
CREATE TRIGGER log_operator_changes_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON log_operator_changes
    FOR EACH STATEMENT EXECUTE FUNCTION arq_log_refuse();

-- +goose Down
DROP TRIGGER log_operator_changes_append_only ON log_operator_changes;
DROP TRIGGER log_checkpoints_append_only ON log_checkpoints;
DROP TRIGGER log_tree_append_only ON log_tree;
DROP TRIGGER events_operator_changes ON events;
DROP TRIGGER events_append_only ON events;
DROP FUNCTION arq_log_record();
DROP FUNCTION arq_log_refuse();
DROP FUNCTION arq_operator_change(text);
DROP TABLE log_operator_changes;
-- +goose StatementBegin
DO $$
BEGIN
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE ALL ON SEQUENCES FROM arq_server', current_schema());
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE ALL ON TABLES FROM arq_server', current_schema());
END
$$;
-- +goose StatementEnd
REVOKE ALL ON events, log_tree, log_checkpoints, goose_db_version FROM arq_server;
-- Tables stay the server's, and the role the cluster's: other databases
-- may have it.
