-- +goose Up
-- Where the live relay (package live) has published the log up to, so
-- that the next relay resumes there. One row.
CREATE TABLE live_relay (
    one            boolean PRIMARY KEY DEFAULT true CHECK (one),
    transaction_id xid8   NOT NULL,
    position       bigint NOT NULL
);

-- +goose Down
DROP TABLE live_relay;
