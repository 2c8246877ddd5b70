-- +goose Up
-- A session's message_count counts the messages it holds: those appended,
-- less those redacted since (the sessions projection now applies
-- message.redacted). Counts made before counted redacted messages too:
-- take off those the projection has passed, up to its checkpoint; it
-- applies the later ones when it reaches them.
UPDATE sessions s SET message_count = s.message_count - r.n
FROM (
    SELECT a.data->>'session_id' AS session_id, count(*) AS n
    FROM events d
    JOIN projection_checkpoints c ON c.consumer_group = 'sessions'
    JOIN events a ON a.event_type = 'message.appended' AND a.data->>'message_id' = substr(d.stream_id, length('message-') + 1)
    WHERE d.event_type = 'message.redacted'
      AND (d.transaction_id, d.position) <= (c.last_processed_transaction_id, c.offset_acked)
    GROUP BY 1
) r
WHERE s.id = r.session_id;

-- +goose Down
-- The counts before counted redacted messages; rebuild the sessions
-- projection with the older binary to get them back.
SELECT 1;
