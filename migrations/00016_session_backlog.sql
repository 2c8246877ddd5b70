-- +goose Up
-- What each session has not had summarized yet, kept by the messages
-- projection: summarized_to is the last sequence number its newest summary
-- covers, cost the tokens of its live messages after that, each counted
-- with the per-message overhead of a context window (domain.ItemOverhead,
-- 4). The summary pass reads the sessions past its threshold from the
-- cost index instead of summing every session's messages each pass.
CREATE TABLE session_backlog (
    session_id    text    PRIMARY KEY,
    user_id       text    NOT NULL,
    summarized_to integer NOT NULL DEFAULT 0,
    cost          bigint  NOT NULL DEFAULT 0
);
CREATE INDEX session_backlog_cost_idx ON session_backlog (cost);
CREATE INDEX session_backlog_user_idx ON session_backlog (user_id);

-- The backlog as the messages projection would have built it up to its
-- checkpoint, from the log up to the same event: a row for every session
-- a message was appended to (also when every message was redacted since)
-- whose user was not deleted, with the last sequence number its summaries
-- cover, and the cost of its live messages (the messages table) after
-- that. (Events the projection has not reached yet it applies when it
-- reaches them.)
INSERT INTO session_backlog (session_id, user_id, summarized_to, cost)
WITH seen AS (
    SELECT e.event_type, e.stream_id, e.data
    FROM events e
    JOIN projection_checkpoints c ON c.consumer_group = 'messages'
    WHERE e.event_type IN ('message.appended', 'session.summarized', 'user.deleted')
      AND (e.transaction_id, e.position) <= (c.last_processed_transaction_id, c.offset_acked)
), touched AS (
    SELECT DISTINCT data->>'session_id' AS session_id, data->>'user_id' AS user_id
    FROM seen WHERE event_type = 'message.appended'
), summarized AS (
    SELECT data->>'session_id' AS session_id, max((data->>'to_seq')::int) AS to_seq
    FROM seen WHERE event_type = 'session.summarized' GROUP BY 1
)
SELECT t.session_id, t.user_id, coalesce(s.to_seq, 0),
       coalesce((SELECT sum(m.tokens + 4) FROM messages m
                 WHERE m.session_id = t.session_id AND m.seq > coalesce(s.to_seq, 0)), 0)
FROM touched t
LEFT JOIN summarized s ON s.session_id = t.session_id
WHERE NOT EXISTS (SELECT 1 FROM seen d WHERE d.event_type = 'user.deleted' AND d.stream_id = 'user-' || t.user_id);

-- +goose Down
DROP TABLE session_backlog;
