-- +goose Up
-- A session's message count moves from the sessions projection's table to
-- the messages projection's session_backlog: the messages projection
-- already writes that row for every appended, redacted and erased
-- message, so a message append is applied by one projection's
-- transaction, not two, and a command that appends waits for one.
-- Counted afresh from the messages the projection holds (redacted and
-- erased ones are gone from it): exact at its checkpoint, whatever the
-- sessions projection's was.
ALTER TABLE session_backlog ADD COLUMN message_count integer NOT NULL DEFAULT 0;
UPDATE session_backlog b SET message_count = c.n
FROM (SELECT session_id, count(*) AS n FROM messages GROUP BY session_id) c
WHERE c.session_id = b.session_id;
ALTER TABLE sessions DROP COLUMN message_count;
ALTER TABLE sessions DROP COLUMN last_seq;

-- +goose Down
ALTER TABLE sessions ADD COLUMN message_count integer NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN last_seq integer NOT NULL DEFAULT 0;
UPDATE sessions s SET message_count = b.message_count, last_seq = coalesce((SELECT max(seq) FROM messages m WHERE m.session_id = s.id), 0)
FROM session_backlog b WHERE b.session_id = s.id;
ALTER TABLE session_backlog DROP COLUMN message_count;
