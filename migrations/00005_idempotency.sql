-- +goose Up
-- Answers to POST requests sent with an Idempotency-Key, per caller, so a
-- retry gets the first answer and appends nothing. Kept for a day.
CREATE TABLE idempotency_keys (
    actor       text        NOT NULL,
    key         text        NOT NULL,
    fingerprint text        NOT NULL,
    status      integer,
    headers     jsonb,
    body        bytea,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (actor, key)
);

-- +goose Down
DROP TABLE idempotency_keys;
