-- The national summary's leg read, per region, every active market (1,331
-- in Lombardia) and every market day recorded on the day asked for, so its
-- cost grew with the region's markets (BENCHMARKS.md, "CPU per uncached
-- fan-out"). Two rollups make those reads a few index lookups:
--
-- - region_status_counts counts markets by status too (entity 'markets',
--   striped by id like the stalls and concessions), kept by statement
--   triggers on markets;
-- - market_day_counts counts market_days by region, date and status, kept
--   by statement triggers on market_days.
--
-- Both base tables are written rarely (a market's status, a market day's
-- record a few times a day), so their triggers cost next to nothing; the
-- check-in path (vendor_presences, presence_daily) gets no new trigger, and
-- no row a check-in would update. The rollups keep zero rows: readers sum.

-- +goose Up
ALTER TABLE region_status_counts
    DROP CONSTRAINT region_status_counts_entity_check,
    ADD CONSTRAINT region_status_counts_entity_check CHECK (entity IN ('stalls', 'concessions', 'markets'));

CREATE TABLE market_day_counts (
    region_id smallint NOT NULL CHECK (region_id BETWEEN 1 AND 20),
    date      date NOT NULL,
    status    text NOT NULL,
    n         integer NOT NULL CHECK (n >= 0),
    PRIMARY KEY (region_id, date, status)
) WITH (fillfactor = 90);
ALTER TABLE market_day_counts ENABLE ROW LEVEL SECURITY;
ALTER TABLE market_day_counts FORCE ROW LEVEL SECURITY;
-- The policies of the other region-wide rollups (00005, 00018): dms_app
-- sees a region's rows only without a narrower scope, dms_region its
-- region's, the owner (the triggers) all.
CREATE POLICY market_day_counts_scope ON market_day_counts TO dms_app
    USING (region_id = (SELECT dms.scope_region()) AND (SELECT dms.scope_narrowing()) = '//');
CREATE POLICY market_day_counts_region ON market_day_counts FOR SELECT TO dms_region
    USING (region_id = (SELECT dms.scope_region()));
-- +goose StatementBegin
DO $$
BEGIN
    EXECUTE format('CREATE POLICY market_day_counts_maintain ON market_day_counts TO %I USING (true) WITH CHECK (true)', current_user);
END
$$;
-- +goose StatementEnd
GRANT SELECT ON market_day_counts TO dms_app, dms_region;

-- +goose StatementBegin
-- dms.market_counts_apply is the function of the INSERT, UPDATE and DELETE
-- statement triggers on markets: one delta per (region, status, stripe) of
-- region_status_counts' entity 'markets'.
CREATE FUNCTION dms.market_counts_apply() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r smallint[];
    s text[];
    k smallint[];
    d integer[];
    got bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(region_id), array_agg(status), array_agg(stripe), array_agg(delta) INTO r, s, k, d FROM (
            SELECT region_id, status, (id % 16)::smallint AS stripe, count(*)::int AS delta FROM new_rows GROUP BY 1, 2, 3) x;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(region_id), array_agg(status), array_agg(stripe), array_agg(delta) INTO r, s, k, d FROM (
            SELECT region_id, status, (id % 16)::smallint AS stripe, -count(*)::int AS delta FROM old_rows GROUP BY 1, 2, 3) x;
    ELSE
        SELECT array_agg(region_id), array_agg(status), array_agg(stripe), array_agg(delta) INTO r, s, k, d FROM (
            SELECT region_id, status, stripe, sum(delta)::int AS delta FROM (
                SELECT region_id, status, (id % 16)::smallint AS stripe, 1 AS delta FROM new_rows
                UNION ALL
                SELECT region_id, status, (id % 16)::smallint, -1 FROM old_rows) u
            GROUP BY 1, 2, 3 HAVING sum(delta) <> 0) x;
    END IF;
    INSERT INTO public.region_status_counts AS c (region_id, entity, status, stripe, n)
    SELECT u.r, 'markets', u.s, u.k, u.d FROM unnest(r, s, k, d) u(r, s, k, d) WHERE u.d > 0
    ORDER BY 1, 3, 4
    ON CONFLICT (region_id, entity, status, stripe) DO UPDATE SET n = c.n + excluded.n;
    UPDATE public.region_status_counts AS c SET n = c.n + u.d
    FROM unnest(r, s, k, d) u(r, s, k, d)
    WHERE u.d < 0 AND c.region_id = u.r AND c.entity = 'markets' AND c.status = u.s AND c.stripe = u.k;
    GET DIAGNOSTICS got = ROW_COUNT;
    IF got <> (SELECT count(*) FROM unnest(d) x WHERE x < 0) THEN
        RAISE EXCEPTION 'region_status_counts disagrees with markets: rows to decrement are missing';
    END IF;
    RETURN NULL;
END
$$;

-- dms.market_day_counts_apply is the function of the INSERT, UPDATE and
-- DELETE statement triggers on market_days: one delta per (region, date,
-- status) of market_day_counts.
CREATE FUNCTION dms.market_day_counts_apply() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r smallint[];
    t date[];
    s text[];
    d integer[];
    got bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(region_id), array_agg(date), array_agg(status), array_agg(delta) INTO r, t, s, d FROM (
            SELECT region_id, date, status, count(*)::int AS delta FROM new_rows GROUP BY 1, 2, 3) x;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(region_id), array_agg(date), array_agg(status), array_agg(delta) INTO r, t, s, d FROM (
            SELECT region_id, date, status, -count(*)::int AS delta FROM old_rows GROUP BY 1, 2, 3) x;
    ELSE
        SELECT array_agg(region_id), array_agg(date), array_agg(status), array_agg(delta) INTO r, t, s, d FROM (
            SELECT region_id, date, status, sum(delta)::int AS delta FROM (
                SELECT region_id, date, status, 1 AS delta FROM new_rows
                UNION ALL
                SELECT region_id, date, status, -1 FROM old_rows) u
            GROUP BY 1, 2, 3 HAVING sum(delta) <> 0) x;
    END IF;
    INSERT INTO public.market_day_counts AS c (region_id, date, status, n)
    SELECT u.r, u.t, u.s, u.d FROM unnest(r, t, s, d) u(r, t, s, d) WHERE u.d > 0
    ORDER BY 1, 2, 3
    ON CONFLICT (region_id, date, status) DO UPDATE SET n = c.n + excluded.n;
    UPDATE public.market_day_counts AS c SET n = c.n + u.d
    FROM unnest(r, t, s, d) u(r, t, s, d)
    WHERE u.d < 0 AND c.region_id = u.r AND c.date = u.t AND c.status = u.s;
    GET DIAGNOSTICS got = ROW_COUNT;
    IF got <> (SELECT count(*) FROM unnest(d) x WHERE x < 0) THEN
        RAISE EXCEPTION 'market_day_counts disagrees with market_days: rows to decrement are missing';
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION dms.market_day_counts_truncate() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    TRUNCATE public.market_day_counts;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
REVOKE EXECUTE ON FUNCTION dms.market_counts_apply(), dms.market_day_counts_apply(), dms.market_day_counts_truncate() FROM PUBLIC;

-- Transition tables allow no column list (UPDATE OF status): every UPDATE
-- of markets runs the trigger, and markets are updated rarely.
CREATE TRIGGER market_counts_insert AFTER INSERT ON markets
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dms.market_counts_apply();
CREATE TRIGGER market_counts_update AFTER UPDATE ON markets
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dms.market_counts_apply();
CREATE TRIGGER market_counts_delete AFTER DELETE ON markets
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION dms.market_counts_apply();
CREATE TRIGGER market_counts_truncate AFTER TRUNCATE ON markets
    FOR EACH STATEMENT EXECUTE FUNCTION dms.status_counts_truncate('markets');

CREATE TRIGGER market_day_counts_insert AFTER INSERT ON market_days
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dms.market_day_counts_apply();
CREATE TRIGGER market_day_counts_update AFTER UPDATE ON market_days
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dms.market_day_counts_apply();
CREATE TRIGGER market_day_counts_delete AFTER DELETE ON market_days
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION dms.market_day_counts_apply();
CREATE TRIGGER market_day_counts_truncate AFTER TRUNCATE ON market_days
    FOR EACH STATEMENT EXECUTE FUNCTION dms.market_day_counts_truncate();

-- Backfill in this transaction, the base tables locked against writers
-- until the triggers have taken over; as in 00002, FORCE is lifted for the
-- transaction unless the migrating role bypasses row-level security.
-- +goose StatementBegin
DO $$
DECLARE
    bypass boolean := (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user);
    t text;
BEGIN
    IF NOT bypass THEN
        FOREACH t IN ARRAY ARRAY['markets', 'market_days'] LOOP
            EXECUTE format('ALTER TABLE %I NO FORCE ROW LEVEL SECURITY', t);
        END LOOP;
    END IF;
    LOCK TABLE markets, market_days IN SHARE MODE;
    INSERT INTO region_status_counts (region_id, entity, status, stripe, n)
    SELECT region_id, 'markets', status, (id % 16)::smallint, count(*)
    FROM markets
    GROUP BY 1, 2, 3, 4;
    INSERT INTO market_day_counts (region_id, date, status, n)
    SELECT region_id, date, status, count(*)
    FROM market_days
    GROUP BY 1, 2, 3;
    IF NOT bypass THEN
        FOREACH t IN ARRAY ARRAY['markets', 'market_days'] LOOP
            EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        END LOOP;
    END IF;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER market_counts_insert ON markets;
DROP TRIGGER market_counts_update ON markets;
DROP TRIGGER market_counts_delete ON markets;
DROP TRIGGER market_counts_truncate ON markets;
DROP TRIGGER market_day_counts_insert ON market_days;
DROP TRIGGER market_day_counts_update ON market_days;
DROP TRIGGER market_day_counts_delete ON market_days;
DROP TRIGGER market_day_counts_truncate ON market_days;
DROP FUNCTION dms.market_counts_apply(), dms.market_day_counts_apply(), dms.market_day_counts_truncate();
DROP TABLE market_day_counts;
DELETE FROM region_status_counts WHERE entity = 'markets';
ALTER TABLE region_status_counts
    DROP CONSTRAINT region_status_counts_entity_check,
    ADD CONSTRAINT region_status_counts_entity_check CHECK (entity IN ('stalls', 'concessions'));
