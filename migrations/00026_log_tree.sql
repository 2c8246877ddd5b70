-- +goose Up
-- The log's Merkle tree (see package ledger and logproof): leaf i is the
-- i-th event in the log's commit-safe order, (transaction_id, position).
-- The tree is stored as golang.org/x/mod/sumdb/tlog stores it: the hashes
-- a leaf completes get the next stored-hash indexes, so a batch of leaves
-- has one contiguous run of them, kept in one row. A row is appended per
-- batch, never changed.
CREATE TABLE log_tree (
    -- first_leaf is the batch's first leaf index; leaves how many.
    first_leaf     bigint  PRIMARY KEY,
    leaves         integer NOT NULL CHECK (leaves > 0),
    -- first_hash is the stored-hash index of the first 32 bytes of hashes.
    first_hash     bigint  NOT NULL,
    hashes         bytea   NOT NULL,
    -- The batch's first and last events, in the log's order: the builder
    -- resumes after the last; an event's leaf is found from the first.
    first_xid      xid8    NOT NULL,
    first_position bigint  NOT NULL,
    last_xid       xid8    NOT NULL,
    last_position  bigint  NOT NULL,
    -- positions are the leaves' events' positions, in leaf order.
    positions      bigint[] NOT NULL CHECK (cardinality(positions) = leaves)
);
CREATE UNIQUE INDEX log_tree_first_hash ON log_tree (first_hash);
CREATE UNIQUE INDEX log_tree_first_event ON log_tree (first_xid, first_position);
-- Proofs read 32 bytes at a time out of a batch's hashes: stored
-- uncompressed, a slice of them is read without the whole.
ALTER TABLE log_tree ALTER COLUMN hashes SET STORAGE EXTERNAL;

-- Signed checkpoints: the tree's size and root at a moment, as the
-- signed note the server hands out. One per size, never changed.
CREATE TABLE log_checkpoints (
    size      bigint      PRIMARY KEY CHECK (size > 0),
    root      bytea       NOT NULL,
    note      text        NOT NULL,
    signed_at timestamptz NOT NULL
);

-- +goose Down
DROP TABLE log_checkpoints;
DROP TABLE log_tree;
