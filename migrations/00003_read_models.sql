-- +goose Up
-- Query tables of the memory API, built by the projections in
-- projections/readmodel from the event log and rebuildable from it.
-- `version` is the stream version of the entity's latest event;
-- created_at and updated_at are the recorded times of its first and latest.
-- Deleted and redacted entities are removed; the log keeps their history.

CREATE TABLE users (
    id          text PRIMARY KEY,
    tenant      text        NOT NULL,
    external_id text        NOT NULL,
    name        text        NOT NULL,
    email       text        NOT NULL,
    metadata    jsonb       NOT NULL,
    version     integer     NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX users_tenant_idx ON users (tenant, id);
CREATE INDEX users_external_idx ON users (tenant, external_id);

CREATE TABLE sessions (
    id            text PRIMARY KEY,
    user_id       text        NOT NULL,
    tenant        text        NOT NULL,
    title         text        NOT NULL,
    metadata      jsonb       NOT NULL,
    token_hash    text        NOT NULL UNIQUE,
    status        text        NOT NULL CHECK (status IN ('open', 'closed', 'expired')),
    expires_at    timestamptz,
    message_count integer     NOT NULL DEFAULT 0,
    last_seq      integer     NOT NULL DEFAULT 0,
    version       integer     NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    closed_at     timestamptz
);
CREATE INDEX sessions_user_idx ON sessions (user_id, id);
CREATE INDEX sessions_due_idx ON sessions (expires_at) WHERE status = 'open';

CREATE TABLE messages (
    id         text PRIMARY KEY,
    session_id text        NOT NULL,
    user_id    text        NOT NULL,
    tenant     text        NOT NULL,
    seq        integer     NOT NULL,
    role       text        NOT NULL,
    content    text        NOT NULL,
    name       text        NOT NULL,
    metadata   jsonb       NOT NULL,
    tokens     integer     NOT NULL,
    version    integer     NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    search     tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED,
    UNIQUE (session_id, seq)
);
CREATE INDEX messages_user_idx ON messages (user_id);
CREATE INDEX messages_search_idx ON messages USING gin (search);

CREATE TABLE memories (
    id                text PRIMARY KEY,
    user_id           text             NOT NULL,
    tenant            text             NOT NULL,
    type              text             NOT NULL,
    content           text             NOT NULL,
    importance        double precision NOT NULL,
    tags              text[]           NOT NULL,
    metadata          jsonb            NOT NULL,
    source_session_id text,
    source_message_id text,
    tokens            integer          NOT NULL,
    expires_at        timestamptz,
    version           integer          NOT NULL,
    created_at        timestamptz      NOT NULL,
    updated_at        timestamptz      NOT NULL,
    search            tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED
);
CREATE INDEX memories_user_idx ON memories (user_id, id);
CREATE INDEX memories_tags_idx ON memories USING gin (tags);
CREATE INDEX memories_metadata_idx ON memories USING gin (metadata jsonb_path_ops);
CREATE INDEX memories_search_idx ON memories USING gin (search);
CREATE INDEX memories_due_idx ON memories (expires_at) WHERE expires_at IS NOT NULL;

-- +goose Down
DROP TABLE memories;
DROP TABLE messages;
DROP TABLE sessions;
DROP TABLE users;
