-- +goose Up
-- Summaries of sessions (projection "summaries") and context snapshots
-- (projection "context_snapshots"), both folded from the log.
CREATE TABLE session_summaries (
    session_id text        NOT NULL,
    version    integer     NOT NULL,
    user_id    text        NOT NULL,
    content    text        NOT NULL,
    tokens     integer     NOT NULL,
    from_seq   integer     NOT NULL,
    to_seq     integer     NOT NULL,
    method     text        NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (session_id, version)
);
CREATE INDEX session_summaries_user_idx ON session_summaries (user_id);

CREATE TABLE context_snapshots (
    id           text PRIMARY KEY,
    session_id   text        NOT NULL,
    user_id      text        NOT NULL,
    message_id   text UNIQUE,
    query        text        NOT NULL,
    max_tokens   integer     NOT NULL,
    total_tokens integer     NOT NULL,
    items        jsonb       NOT NULL,
    created_at   timestamptz NOT NULL
);
CREATE INDEX context_snapshots_session_idx ON context_snapshots (session_id, id);
CREATE INDEX context_snapshots_user_idx ON context_snapshots (user_id);

-- Assistant messages whose context snapshot is not recorded yet (kept by
-- the context_snapshots projection; the snapshotter works through it).
CREATE TABLE snapshots_due (
    message_id text PRIMARY KEY,
    session_id text        NOT NULL,
    user_id    text        NOT NULL,
    seq        integer     NOT NULL,
    created_at timestamptz NOT NULL
);

-- +goose Down
DROP TABLE snapshots_due;
DROP TABLE context_snapshots;
DROP TABLE session_summaries;
