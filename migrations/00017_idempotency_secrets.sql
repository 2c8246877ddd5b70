-- +goose Up
-- Answers kept for idempotent retries no longer keep the secrets they
-- showed once (a session's token, arqs_..., and a new API key, arqk_...):
-- scrub those kept before, as the API now does (null in their place).
UPDATE idempotency_keys
SET headers = headers - 'X-Arq-Session-Token',
    body = convert_to(regexp_replace(convert_from(body, 'UTF8'), '"arq[sk]_[A-Za-z0-9_-]+"', 'null', 'g'), 'UTF8')
WHERE position('"arqs_'::bytea IN body) > 0 OR position('"arqk_'::bytea IN body) > 0;

-- +goose Down
-- The secrets are gone; nothing to restore.
SELECT 1;
