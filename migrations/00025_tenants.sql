-- +goose Up
-- Tenants: every API key acts inside one, and sees that tenant's users,
-- sessions, messages, memories and events alone. The data that existed
-- before tenants belongs to tenant 'default'. rate_limit and rate_burst,
-- when set, replace the deployment's per-key limit for the tenant's keys.
CREATE TABLE tenants (
    id         text        COLLATE "C" PRIMARY KEY,
    name       text        NOT NULL,
    rate_limit integer     CHECK (rate_limit >= 0),
    rate_burst integer     CHECK (rate_burst >= 0),
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO tenants (id, name) VALUES ('default', 'Default tenant');

-- A key's tenant, and the one user it is narrowed to (NULL: every user of
-- the tenant). Existing keys act in tenant 'default'.
ALTER TABLE api_keys
    ADD COLUMN tenant  text NOT NULL DEFAULT 'default' REFERENCES tenants (id),
    ADD COLUMN user_id text;
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant, id);

-- A tenant's event feed (GET /v1/events, its stream and audit tooling)
-- reads the log in commit-safe order, keeping that tenant's events: this
-- serves it without reading the other tenants' events.
CREATE INDEX events_tenant_idx ON events ((metadata->>'tenant'), transaction_id, position);

-- +goose Down
DROP INDEX events_tenant_idx;
DROP INDEX api_keys_tenant_idx;
ALTER TABLE api_keys DROP COLUMN user_id, DROP COLUMN tenant;
DROP TABLE tenants;
