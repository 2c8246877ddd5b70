-- +goose Up
-- Extraction (issue 22). The messages projection keeps, per session, the
-- newest user message's place and time, so that the sessions due for an
-- extraction are found by index among those active lately, not by a scan
-- of every session. Counted afresh from the messages the projection holds.
ALTER TABLE session_backlog ADD COLUMN last_user_seq integer NOT NULL DEFAULT 0;
ALTER TABLE session_backlog ADD COLUMN last_user_at timestamptz;
UPDATE session_backlog b SET last_user_seq = u.seq, last_user_at = u.at
FROM (SELECT session_id, max(seq) AS seq, max(created_at) AS at FROM messages WHERE role = 'user' GROUP BY session_id) u
WHERE u.session_id = b.session_id;
CREATE INDEX session_backlog_last_user_idx ON session_backlog (last_user_at) WHERE last_user_at IS NOT NULL;

-- The extractions projection: how far each session's messages are
-- extracted (the newest run's last message), and its stream's version.
CREATE TABLE extraction_progress (
    session_id    text PRIMARY KEY,
    user_id       text NOT NULL,
    tenant        text NOT NULL DEFAULT '',
    through_seq   integer NOT NULL,
    version       integer NOT NULL,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX extraction_progress_user_idx ON extraction_progress (user_id);

-- The provenance projection: which memories were made or changed from
-- which messages, for the lookup from a message to what was derived
-- from it. One row per memory event that read the message.
CREATE TABLE memory_sources (
    message_id     text NOT NULL,
    memory_id      text NOT NULL,
    memory_version integer NOT NULL,
    user_id        text NOT NULL,
    tenant         text NOT NULL DEFAULT '',
    session_id     text NOT NULL,
    run_id         text NOT NULL,
    action         text NOT NULL,
    message_version integer NOT NULL,
    recorded_at    timestamptz NOT NULL,
    PRIMARY KEY (message_id, memory_id, memory_version)
);
CREATE INDEX memory_sources_memory_idx ON memory_sources (memory_id);
CREATE INDEX memory_sources_user_idx ON memory_sources (user_id);

-- The server's role owns every query table, so that a rebuild may swap
-- a copy in (see 00027_append_only.sql).
ALTER TABLE extraction_progress OWNER TO arq_server;
ALTER TABLE memory_sources OWNER TO arq_server;

-- +goose Down
DROP TABLE memory_sources;
DROP TABLE extraction_progress;
DROP INDEX session_backlog_last_user_idx;
ALTER TABLE session_backlog DROP COLUMN last_user_at;
ALTER TABLE session_backlog DROP COLUMN last_user_seq;
