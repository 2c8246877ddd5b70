-- +goose Up
-- Generations of what context windows are made of: 'session:<id>' moves
-- with the session's messages, 'summary:<id>' with its summaries,
-- 'user:<id>' with the user's memories. Projections bump them in the transaction that changes the
-- rows, so a cache key naming the generations it read can never serve an
-- answer older than the tables. No projection owns this table: a rebuild
-- only bumps generations further.
CREATE TABLE cache_generations (
    key text PRIMARY KEY,
    gen bigint NOT NULL
);

-- +goose Down
DROP TABLE cache_generations;
