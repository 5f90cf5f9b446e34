-- What the write API needs beyond the regional schema: idempotency keys and
-- the record of each market day's spunta, both regional tables under the same
-- row-level security as the rest.
--
-- Bulk presence ingest needs no table here: it COPYs into a session-local
-- temporary staging table (COPY FROM is refused on a table with row-level
-- security) and moves the rows with one validated INSERT ... SELECT, so the
-- policies still check every row that lands.

-- +goose Up

-- idempotency_keys remembers the response of every successful POST that
-- carried an Idempotency-Key, in the region it wrote to and in the same
-- transaction as the write: a retry with the same key and the same request
-- replays the response, the same key with another request is refused. A key
-- belongs to the user who sent it, so nobody can replay another's response.
CREATE TABLE idempotency_keys (
    region_id   smallint NOT NULL CHECK (region_id BETWEEN 1 AND 20),
    user_sub    text NOT NULL,
    key         text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    fingerprint bytea NOT NULL, -- SHA-256 of method, path, query and body
    created     boolean NOT NULL, -- whether the first response created something
    response    json NOT NULL,  -- the first response's body, byte for byte
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (region_id, user_sub, key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

-- spunta_runs records the one spunta of a market day: running it again
-- returns this result and changes nothing.
CREATE TABLE spunta_runs (
    region_id smallint NOT NULL CHECK (region_id BETWEEN 1 AND 20),
    market_id bigint NOT NULL REFERENCES markets (id),
    comune    text NOT NULL CHECK (comune ~ '^[0-9]{6}$'),
    date      date NOT NULL,
    run_by    text NOT NULL,
    run_at    timestamptz NOT NULL DEFAULT now(),
    result    json NOT NULL,
    PRIMARY KEY (market_id, date),
    CHECK (market_id >> 48 = region_id)
);

ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY idempotency_keys_scope ON idempotency_keys
    USING (region_id = dms.scope_region() AND user_sub = dms.scope_text('dms.user'));

ALTER TABLE spunta_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE spunta_runs FORCE ROW LEVEL SECURITY;
CREATE POLICY spunta_runs_scope ON spunta_runs
    USING (region_id = dms.scope_region()
       AND (dms.scope_text('dms.province') IS NULL OR left(comune, 3) = dms.scope_text('dms.province'))
       AND (dms.scope_text('dms.comune') IS NULL OR comune = dms.scope_text('dms.comune'))
       AND (dms.scope_market() IS NULL OR market_id = dms.scope_market()));

-- dms.expire_idempotency_keys deletes the keys older than max_age and returns
-- how many it deleted. The background jobs run it as the owner; the router's
-- role cannot delete keys.
-- +goose StatementBegin
CREATE FUNCTION dms.expire_idempotency_keys(max_age interval) RETURNS bigint
LANGUAGE sql AS $$
    WITH d AS (DELETE FROM public.idempotency_keys WHERE created_at < now() - max_age RETURNING 1)
    SELECT count(*) FROM d
$$;
-- +goose StatementEnd
REVOKE EXECUTE ON FUNCTION dms.expire_idempotency_keys(interval) FROM PUBLIC;

GRANT SELECT, INSERT, UPDATE ON idempotency_keys TO dms_app;
GRANT SELECT, INSERT, UPDATE ON spunta_runs TO dms_app;

-- +goose Down
DROP FUNCTION dms.expire_idempotency_keys(interval);
DROP TABLE spunta_runs, idempotency_keys;
