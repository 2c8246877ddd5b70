-- +goose Up
-- Each memory's place in the log: the cursor (transaction id, position)
-- of its stored event, set by the memories projection from the event it
-- applies. The context behind an assistant message (readmodel.WindowAt)
-- leaves out the memories stored after the message by it, exactly, with
-- no need to read them from the log. Existing rows take it from their
-- stored event (version 1 of their stream), as a rebuild would.
ALTER TABLE memories ADD COLUMN stored_tx xid8, ADD COLUMN stored_position bigint;
UPDATE memories m SET stored_tx = e.transaction_id, stored_position = e.position
FROM events e WHERE e.stream_id = 'memory-' || m.id AND e.version = 1;
ALTER TABLE memories ALTER COLUMN stored_tx SET NOT NULL, ALTER COLUMN stored_position SET NOT NULL;

-- +goose Down
ALTER TABLE memories DROP COLUMN stored_position, DROP COLUMN stored_tx;
