-- +goose Up
-- A message's first event lives in its session's log; this finds it by
-- message id, for its history after the message left the query tables.
CREATE INDEX events_message_id_idx ON events ((data->>'message_id')) WHERE event_type = 'message.appended';

-- +goose Down
DROP INDEX events_message_id_idx;
