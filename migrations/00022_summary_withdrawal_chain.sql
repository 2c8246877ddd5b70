-- +goose Up
-- A summary folds the one that ends just before it (from_seq - 1), so a
-- summary whose predecessor was withdrawn holds the redacted text too:
-- the projections now withdraw such a summary when it comes in (one made
-- while a redaction withdrew its predecessor). Summaries made before
-- 00020 after such a redaction are brought to the same: withdrawn, in
-- turn along each chain, until none is left without a standing
-- predecessor. Then every backlog lists the summaries standing and counts
-- its live messages after the newest of them, as a rebuild would.
-- +goose StatementBegin
DO $$
BEGIN
    LOOP
        UPDATE session_summaries s SET withdrawn = true, content = ''
        WHERE NOT s.withdrawn AND s.from_seq > 1
          AND NOT EXISTS (SELECT 1 FROM session_summaries p
                          WHERE p.session_id = s.session_id AND p.version < s.version
                            AND p.to_seq = s.from_seq - 1 AND NOT p.withdrawn);
        EXIT WHEN NOT FOUND;
    END LOOP;
END
$$;
-- +goose StatementEnd

UPDATE session_backlog b SET
    summary_tos = coalesce(st.tos, '{}'),
    summarized_to = coalesce(st.tos[array_upper(st.tos, 1)], 0),
    cost = (SELECT coalesce(sum(m.tokens + 4), 0) FROM messages m
            WHERE m.session_id = b.session_id AND m.seq > coalesce(st.tos[array_upper(st.tos, 1)], 0))
FROM (SELECT b2.session_id, (SELECT array_agg(s.to_seq ORDER BY s.to_seq) FROM session_summaries s
                             WHERE s.session_id = b2.session_id AND NOT s.withdrawn) AS tos
      FROM session_backlog b2) st
WHERE b.session_id = st.session_id
  AND b.summary_tos IS DISTINCT FROM coalesce(st.tos, '{}');

-- +goose Down
SELECT 1;
