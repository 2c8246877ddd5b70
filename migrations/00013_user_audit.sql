-- +goose Up
-- A user's audit reads every stream with an event naming the user.
CREATE INDEX events_user_id_idx ON events ((data->>'user_id')) WHERE data ? 'user_id';

-- +goose Down
DROP INDEX events_user_id_idx;
