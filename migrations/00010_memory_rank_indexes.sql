-- +goose Up
-- A context window ranks a user's memories from three candidate lists
-- (full-text matches, the most important, the most recent), so it never
-- ranks all of a user's memories.
CREATE INDEX memories_importance_idx ON memories (user_id, importance DESC);
CREATE INDEX memories_recent_idx ON memories (user_id, updated_at DESC);

-- arq_any_words is the query "any of these words" (plainto_tsquery asks
-- for all of them), NULL when the text has none. Immutable like the
-- to_tsvector('english', ...) it is matched against, so the planner may
-- match it against the GIN index.
CREATE FUNCTION arq_any_words(q text) RETURNS tsquery
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN nullif(replace(plainto_tsquery('english', q)::text, '&', '|'), '')::tsquery;

-- +goose Down
DROP FUNCTION arq_any_words(text);
DROP INDEX memories_recent_idx;
DROP INDEX memories_importance_idx;
