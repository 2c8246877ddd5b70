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
-- checkpoint: its messages table, and the summaries in the log up to the
-- same event. (Summaries the projection has not reached yet it applies
-- when it reaches them.)
INSERT INTO session_backlog (session_id, user_id, summarized_to, cost)
SELECT m.session_id, min(m.user_id), coalesce(s.to_seq, 0),
       coalesce(sum(m.tokens + 4) FILTER (WHERE m.seq > coalesce(s.to_seq, 0)), 0)
FROM messages m
LEFT JOIN (
    SELECT e.data->>'session_id' AS session_id, max((e.data->>'to_seq')::int) AS to_seq
    FROM events e
    JOIN projection_checkpoints c ON c.consumer_group = 'messages'
    WHERE e.event_type = 'session.summarized'
      AND (e.transaction_id, e.position) <= (c.last_processed_transaction_id, c.offset_acked)
    GROUP BY 1
) s ON s.session_id = m.session_id
GROUP BY m.session_id, s.to_seq;

-- +goose Down
DROP TABLE session_backlog;
