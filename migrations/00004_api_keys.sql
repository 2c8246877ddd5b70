-- +goose Up
-- API keys. Only a key's SHA-256 is kept; the key itself is shown once.
CREATE TABLE api_keys (
    id         text PRIMARY KEY,
    name       text        NOT NULL,
    key_hash   text        NOT NULL UNIQUE,
    scopes     text[]      NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);

-- +goose Down
DROP TABLE api_keys;
