-- +goose Up
-- Tamper evidence: every event stores a hash over its content and its
-- stream predecessor's hash, so changing, removing or reordering an event
-- by hand breaks the chain at that event (see eventstore.Verify).
--
-- arq_event_hash is the one definition of the hash: SHA-256 of a JSON
-- array of the predecessor's hash (hex, '' for version 1) and the event's
-- id, stream, type, version, schema version, time (UTC, microseconds),
-- data and metadata. jsonb's text form is canonical, so the same content
-- always hashes the same. The append statement computes it as it inserts
-- (eventstore/append.go), from the stream head it reads anyway.
CREATE FUNCTION arq_event_hash(prev bytea, event_id text, stream_id text, stream_type text, version integer,
    event_type text, schema_version integer, recorded_at timestamptz, data jsonb, metadata jsonb) RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE -- STABLE like to_char, so it is inlined
RETURN sha256(convert_to(jsonb_build_array(
    coalesce(encode(prev, 'hex'), ''), event_id, stream_id, stream_type, version, event_type, schema_version,
    to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), data, metadata)::text, 'UTF8'));

ALTER TABLE events ADD COLUMN hash bytea;

-- Backfill what the log holds, stream by stream, in version order.
-- +goose StatementBegin
DO $$
DECLARE
    r    events;
    prev bytea;
    last text := NULL;
BEGIN
    FOR r IN SELECT * FROM events ORDER BY stream_id, version LOOP
        IF last IS DISTINCT FROM r.stream_id THEN
            prev := NULL;
            last := r.stream_id;
        END IF;
        prev := arq_event_hash(prev, r.event_id, r.stream_id, r.stream_type, r.version, r.event_type,
            r.schema_version, r.recorded_at, r.data, r.metadata);
        UPDATE events SET hash = prev WHERE event_id = r.event_id;
    END LOOP;
END
$$;
-- +goose StatementEnd

ALTER TABLE events ALTER COLUMN hash SET NOT NULL;

-- +goose Down
ALTER TABLE events DROP COLUMN hash;
DROP FUNCTION arq_event_hash(bytea, text, text, text, integer, text, integer, timestamptz, jsonb, jsonb);
