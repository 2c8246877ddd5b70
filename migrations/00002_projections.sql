-- +goose Up
-- One checkpoint per projection, in the layout of watermill-sql's Postgres
-- offsets adapter: the subscriber locks the row FOR UPDATE while it applies a
-- batch, so several processes running one projection apply each event once.
CREATE TABLE projection_checkpoints (
    consumer_group                varchar(255) NOT NULL PRIMARY KEY,
    offset_acked                  bigint,
    last_processed_transaction_id xid8 NOT NULL
);

-- What operators see of each projection beyond its checkpoint.
CREATE TABLE projection_status (
    name             text        PRIMARY KEY,
    state            text        NOT NULL CHECK (state IN ('running', 'stopped', 'rebuilding')),
    last_error       text        NOT NULL DEFAULT '',
    failed_event_id  text        NOT NULL DEFAULT '',
    failed_position  bigint      NOT NULL DEFAULT 0,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- The stream catalog: one row per stream, built by the "streams" projection.
CREATE TABLE streams (
    stream_id      text        COLLATE "C" PRIMARY KEY,
    stream_type    text        COLLATE "C" NOT NULL,
    version        integer     NOT NULL,
    event_count    integer     NOT NULL,
    first_position bigint      NOT NULL,
    last_position  bigint      NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);
CREATE INDEX streams_type_idx ON streams (stream_type, stream_id);

-- +goose Down
DROP TABLE streams;
DROP TABLE projection_status;
DROP TABLE projection_checkpoints;
