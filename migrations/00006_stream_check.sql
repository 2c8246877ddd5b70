-- +goose Up
-- arq_check_stream is the head check of a multi-stream append. The append
-- sends its lock, one check per stream and its inserts in one round trip,
-- as one implicit transaction: a failed check raises, which rolls back the
-- whole of it, so no stream is written unless every stream is as expected.
-- Runs after the streams' locks are held, so it reads the true heads.
-- Returns the stream's version; raises AQ001 (DETAIL: the version) when it
-- is not p_expected (negative: any), AQ002 (DETAIL: the type) when the
-- stream exists with another type.
-- +goose StatementBegin
CREATE FUNCTION arq_check_stream(p_stream text, p_type text, p_expected bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    cur bigint;
    typ text;
BEGIN
    SELECT version, stream_type INTO cur, typ FROM events
     WHERE stream_id = p_stream ORDER BY version DESC LIMIT 1;
    cur := coalesce(cur, 0);
    IF typ IS NOT NULL AND typ <> p_type THEN
        RAISE EXCEPTION 'stream % has type %, not %', p_stream, typ, p_type
            USING ERRCODE = 'AQ002', DETAIL = typ;
    END IF;
    IF p_expected >= 0 AND cur <> p_expected THEN
        RAISE EXCEPTION 'stream % is at version %, expected %', p_stream, cur, p_expected
            USING ERRCODE = 'AQ001', DETAIL = cur::text;
    END IF;
    RETURN cur;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION arq_check_stream(text, text, bigint);
