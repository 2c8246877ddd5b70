-- +goose Up
-- A claim of an Idempotency-Key notes the transaction it was taken in.
-- The events of the request that took it come after that transaction and
-- carry the key in their metadata, so a claim left unanswered by a server
-- that stopped mid-request can be told applied (its events are in the
-- log) or not, instead of being run again.
ALTER TABLE idempotency_keys ADD COLUMN claimed_in xid8 NOT NULL DEFAULT pg_current_xact_id();

-- +goose Down
ALTER TABLE idempotency_keys DROP COLUMN claimed_in;
