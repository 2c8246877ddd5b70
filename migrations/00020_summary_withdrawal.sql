-- +goose Up
-- A deleted message is gone from every read, also from the summaries that
-- hold its text. Summaries fold the one before them, so when a message is
-- redacted every summary of its session that reaches its sequence number
-- is withdrawn: the context projection marks it and empties its content
-- (the log keeps it, as it keeps the message), and windows take the newest
-- summary left. The messages projection moves the session's backlog back
-- to that summary (summary_tos: the last sequence number of each summary
-- it has applied), so the summary pass summarizes the rest anew.
ALTER TABLE session_summaries ADD COLUMN withdrawn boolean NOT NULL DEFAULT false;
ALTER TABLE session_backlog ADD COLUMN summary_tos integer[] NOT NULL DEFAULT '{}';

-- What the projections would hold had they applied this rule from the
-- start, each up to its checkpoint (they apply later events when they
-- reach them): a summary is withdrawn when a redaction after it in the
-- log removed a message of its session at or below its last sequence
-- number.
UPDATE session_summaries s SET withdrawn = true, content = ''
FROM events se, (
    SELECT a.data->>'session_id' AS session_id, a.version AS seq, d.transaction_id, d.position
    FROM events d
    JOIN projection_checkpoints c ON c.consumer_group = 'context'
    JOIN events a ON a.event_type = 'message.appended' AND a.data->>'message_id' = substr(d.stream_id, length('message-') + 1)
    WHERE d.event_type = 'message.redacted'
      AND (d.transaction_id, d.position) <= (c.last_processed_transaction_id, c.offset_acked)
) r
WHERE s.session_id = r.session_id AND s.to_seq >= r.seq
  AND se.stream_id = 'summary-' || s.session_id AND se.version = s.version
  AND (se.transaction_id, se.position) < (r.transaction_id, r.position);

-- A backlog lists the summaries left standing and counts its live
-- messages after the newest of them.
WITH applied AS (
    SELECT e.transaction_id, e.position, e.event_type, e.stream_id, e.data
    FROM events e
    JOIN projection_checkpoints c ON c.consumer_group = 'messages'
    WHERE e.event_type IN ('session.summarized', 'message.redacted')
      AND (e.transaction_id, e.position) <= (c.last_processed_transaction_id, c.offset_acked)
), redactions AS (
    SELECT a.data->>'session_id' AS session_id, a.version AS seq, d.transaction_id, d.position
    FROM applied d
    JOIN events a ON a.event_type = 'message.appended' AND a.data->>'message_id' = substr(d.stream_id, length('message-') + 1)
    WHERE d.event_type = 'message.redacted'
), standing AS (
    SELECT s.data->>'session_id' AS session_id, array_agg((s.data->>'to_seq')::int ORDER BY (s.data->>'to_seq')::int) AS tos
    FROM applied s
    WHERE s.event_type = 'session.summarized'
      AND NOT EXISTS (SELECT 1 FROM redactions r
                      WHERE r.session_id = s.data->>'session_id' AND r.seq <= (s.data->>'to_seq')::int
                        AND (r.transaction_id, r.position) > (s.transaction_id, s.position))
    GROUP BY 1
)
UPDATE session_backlog b SET
    summary_tos = coalesce(st.tos, '{}'),
    summarized_to = coalesce(st.tos[array_upper(st.tos, 1)], 0),
    cost = (SELECT coalesce(sum(m.tokens + 4), 0) FROM messages m
            WHERE m.session_id = b.session_id AND m.seq > coalesce(st.tos[array_upper(st.tos, 1)], 0))
FROM session_backlog b2 LEFT JOIN standing st ON st.session_id = b2.session_id
WHERE b.session_id = b2.session_id
  AND (st.tos IS NOT NULL OR b2.summarized_to > 0);

-- +goose Down
ALTER TABLE session_backlog DROP COLUMN summary_tos;
ALTER TABLE session_summaries DROP COLUMN withdrawn;
