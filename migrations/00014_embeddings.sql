-- +goose Up
-- Embeddings of memories and messages, as plain float4 arrays so that a
-- Postgres without the pgvector extension serves them. Similarity is
-- computed in Go over a bounded candidate list (see
-- projections/readmodel/vector.go). embedding_dim (0 without an embedding)
-- lets that list be read by index without touching the arrays, and reads
-- report it without loading them.
ALTER TABLE memories ADD COLUMN embedding real[];
ALTER TABLE memories ADD COLUMN embedding_dim integer GENERATED ALWAYS AS (coalesce(cardinality(embedding), 0)) STORED;
ALTER TABLE messages ADD COLUMN embedding real[];
ALTER TABLE messages ADD COLUMN embedding_dim integer GENERATED ALWAYS AS (coalesce(cardinality(embedding), 0)) STORED;
-- Embeddings do not compress (pglz gives up on them): spare the attempt
-- on every write.
ALTER TABLE memories ALTER COLUMN embedding SET STORAGE EXTERNAL;
ALTER TABLE messages ALTER COLUMN embedding SET STORAGE EXTERNAL;
-- A context or search with an embedding reads the user's most recently
-- updated memories that have one of the query's dimension.
CREATE INDEX memories_embedded_idx ON memories (user_id, embedding_dim, updated_at DESC) WHERE embedding_dim > 0;

-- +goose Down
DROP INDEX memories_embedded_idx;
ALTER TABLE messages DROP COLUMN embedding_dim;
ALTER TABLE messages DROP COLUMN embedding;
ALTER TABLE memories DROP COLUMN embedding_dim;
ALTER TABLE memories DROP COLUMN embedding;
