-- +goose Up
-- The events that change a message or a memory that existed before them
-- (edits, redactions; memory updates, deletions, expiries), in log order.
-- The context behind an assistant message puts back, as they were, the
-- items these changed after it, and finds them here instead of reading
-- the whole log after it (readmodel.WindowAt spells this predicate as it
-- is). Appends and stored memories are not in it, so they cost it
-- nothing.
CREATE INDEX events_changes_idx ON events (transaction_id, position)
    WHERE stream_type = 'message' OR (stream_type = 'memory' AND version > 1);

-- +goose Down
DROP INDEX events_changes_idx;
