-- The presence rollups kept in one statement per event. Migration 00002
-- keeps presence_daily from vendor_presences with one trigger function for
-- INSERT, UPDATE and DELETE (a delta CTE, an upsert, an UPDATE for the
-- decrements and two counts, whatever the event), and presence_monthly from
-- presence_daily with triggers on presence_daily, which an upsert fires
-- twice (its INSERT and its UPDATE event). A single check-in thus ran three
-- PL/pgSQL trigger calls of several statements each: measured with perf,
-- 36% of PostgreSQL's CPU per check-in, mostly starting their executors.
--
-- From here:
--   * vendor_presences has one trigger function per event, and each keeps
--     presence_daily and presence_monthly in one statement: an insert
--     upserts the day rows, then the month rows from the day rows it
--     touched (the month rows follow the day rows, so every writer locks
--     the day rows first); a delete decrements both and raises if a row to
--     decrement is missing; an update does both, by net delta.
--   * presence_daily's own triggers keep presence_monthly as before for
--     everyone who writes presence_daily directly (the seed, a retention
--     job), but no longer fire for writes made inside a trigger, that is
--     by the functions above, which keep presence_monthly themselves:
--     WHEN (pg_trigger_depth() < 1). Only these functions write
--     presence_daily from inside a trigger.
--   * The rollup tables keep one CHECK each, n >= 0, the exactness guard.
--     Their other checks (region range, comune and kind format, market in
--     its region, month starting on day 1, stripe range) held what their
--     writers derive from vendor_presences rows, which carry the same
--     checks, and PostgreSQL rebuilds every CHECK expression from its
--     stored text in every statement that writes the table: 10% of a
--     check-in's CPU, half of it these.
-- Exactness is as migration 00002 states it: every change lands in the
-- writing statement, a rollback undoes it, CHECK (n >= 0) and the missing
-- row checks fail loudly.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION dms.presence_rollups_insert() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    WITH d AS (
        SELECT min(region_id) AS region_id, market_id, min(comune) AS comune, date, kind, count(*)::int AS n
        FROM new_rows
        GROUP BY market_id, date, kind
    ), daily AS (
        INSERT INTO public.presence_daily AS t (region_id, market_id, comune, date, kind, n)
        SELECT region_id, market_id, comune, date, kind, n FROM d
        ORDER BY market_id, date, kind
        ON CONFLICT (market_id, date, kind) DO UPDATE SET n = t.n + excluded.n
        RETURNING t.market_id, t.date, t.kind
    )
    INSERT INTO public.presence_monthly AS t (region_id, month, kind, stripe, n)
    SELECT d.region_id, date_trunc('month', d.date)::date, d.kind, (d.market_id % 16)::smallint, sum(d.n)
    FROM daily JOIN d USING (market_id, date, kind)
    GROUP BY 1, 2, 3, 4
    ORDER BY 1, 2, 3, 4
    ON CONFLICT (region_id, month, kind, stripe) DO UPDATE SET n = t.n + excluded.n;
    RETURN NULL;
END
$$;

CREATE FUNCTION dms.presence_rollups_delete() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    missing_days bigint;
    missing_months bigint;
BEGIN
    WITH d AS (
        SELECT min(region_id) AS region_id, market_id, date, kind, count(*)::int AS n
        FROM old_rows
        GROUP BY market_id, date, kind
    ), daily AS (
        UPDATE public.presence_daily AS t SET n = t.n - d.n
        FROM d
        WHERE t.market_id = d.market_id AND t.date = d.date AND t.kind = d.kind
        RETURNING t.market_id, t.date, t.kind
    ), m AS (
        SELECT d.region_id, date_trunc('month', d.date)::date AS month, d.kind, (d.market_id % 16)::smallint AS stripe,
            sum(d.n) AS n, count(*) AS days
        FROM daily JOIN d USING (market_id, date, kind)
        GROUP BY 1, 2, 3, 4
    ), monthly AS (
        UPDATE public.presence_monthly AS t SET n = t.n - m.n
        FROM m
        WHERE t.region_id = m.region_id AND t.month = m.month AND t.kind = m.kind AND t.stripe = m.stripe
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM d) - (SELECT coalesce(sum(days), 0) FROM m),
        (SELECT count(*) FROM m) - (SELECT count(*) FROM monthly)
    INTO missing_days, missing_months;
    IF missing_days <> 0 OR missing_months <> 0 THEN
        RAISE EXCEPTION 'presence rollups disagree with vendor_presences: % day rows and % month rows to decrement are missing',
            missing_days, missing_months;
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION dms.presence_rollups_update() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    missing_days bigint;
    missing_months bigint;
BEGIN
    WITH d AS (
        SELECT min(region_id) AS region_id, market_id, min(comune) AS comune, date, kind, sum(delta)::int AS delta
        FROM (SELECT region_id, market_id, comune, date, kind, 1 AS delta FROM new_rows
              UNION ALL
              SELECT region_id, market_id, comune, date, kind, -1 FROM old_rows) x
        GROUP BY market_id, date, kind
        HAVING sum(delta) <> 0
    ), up AS (
        INSERT INTO public.presence_daily AS t (region_id, market_id, comune, date, kind, n)
        SELECT region_id, market_id, comune, date, kind, delta FROM d WHERE delta > 0
        ORDER BY market_id, date, kind
        ON CONFLICT (market_id, date, kind) DO UPDATE SET n = t.n + excluded.n
        RETURNING t.market_id, t.date, t.kind
    ), down AS (
        UPDATE public.presence_daily AS t SET n = t.n + d.delta
        FROM d
        WHERE d.delta < 0 AND t.market_id = d.market_id AND t.date = d.date AND t.kind = d.kind
        RETURNING t.market_id, t.date, t.kind
    ), m AS (
        SELECT d.region_id, date_trunc('month', d.date)::date AS month, d.kind, (d.market_id % 16)::smallint AS stripe,
            sum(d.delta) AS delta
        FROM (SELECT * FROM up UNION ALL SELECT * FROM down) k JOIN d USING (market_id, date, kind)
        GROUP BY 1, 2, 3, 4
        HAVING sum(d.delta) <> 0
    ), mup AS (
        INSERT INTO public.presence_monthly AS t (region_id, month, kind, stripe, n)
        SELECT region_id, month, kind, stripe, delta FROM m WHERE delta > 0
        ORDER BY region_id, month, kind, stripe
        ON CONFLICT (region_id, month, kind, stripe) DO UPDATE SET n = t.n + excluded.n
    ), mdown AS (
        UPDATE public.presence_monthly AS t SET n = t.n + m.delta
        FROM m
        WHERE m.delta < 0 AND t.region_id = m.region_id AND t.month = m.month AND t.kind = m.kind AND t.stripe = m.stripe
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM d WHERE delta < 0) - (SELECT count(*) FROM down),
        (SELECT count(*) FROM m WHERE delta < 0) - (SELECT count(*) FROM mdown)
    INTO missing_days, missing_months;
    IF missing_days <> 0 OR missing_months <> 0 THEN
        RAISE EXCEPTION 'presence rollups disagree with vendor_presences: % day rows and % month rows to decrement are missing',
            missing_days, missing_months;
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
REVOKE EXECUTE ON FUNCTION dms.presence_rollups_insert(), dms.presence_rollups_delete(),
    dms.presence_rollups_update() FROM PUBLIC;

DROP TRIGGER presence_daily_insert ON vendor_presences;
DROP TRIGGER presence_daily_update ON vendor_presences;
DROP TRIGGER presence_daily_delete ON vendor_presences;
CREATE TRIGGER presence_rollups_insert AFTER INSERT ON vendor_presences
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dms.presence_rollups_insert();
CREATE TRIGGER presence_rollups_update AFTER UPDATE ON vendor_presences
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dms.presence_rollups_update();
CREATE TRIGGER presence_rollups_delete AFTER DELETE ON vendor_presences
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION dms.presence_rollups_delete();

CREATE OR REPLACE TRIGGER presence_monthly_insert AFTER INSERT ON presence_daily
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    WHEN (pg_trigger_depth() < 1) EXECUTE FUNCTION dms.presence_monthly_apply();
CREATE OR REPLACE TRIGGER presence_monthly_update AFTER UPDATE ON presence_daily
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    WHEN (pg_trigger_depth() < 1) EXECUTE FUNCTION dms.presence_monthly_apply();
CREATE OR REPLACE TRIGGER presence_monthly_delete AFTER DELETE ON presence_daily
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    WHEN (pg_trigger_depth() < 1) EXECUTE FUNCTION dms.presence_monthly_apply();

ALTER TABLE presence_daily
    DROP CONSTRAINT presence_daily_region_id_check,
    DROP CONSTRAINT presence_daily_comune_check,
    DROP CONSTRAINT presence_daily_kind_check,
    DROP CONSTRAINT presence_daily_check;
ALTER TABLE presence_monthly
    DROP CONSTRAINT presence_monthly_region_id_check,
    DROP CONSTRAINT presence_monthly_month_check,
    DROP CONSTRAINT presence_monthly_kind_check,
    DROP CONSTRAINT presence_monthly_stripe_check;

-- +goose Down
ALTER TABLE presence_daily
    ADD CONSTRAINT presence_daily_region_id_check CHECK (region_id BETWEEN 1 AND 20),
    ADD CONSTRAINT presence_daily_comune_check CHECK (comune ~ '^[0-9]{6}$'),
    ADD CONSTRAINT presence_daily_kind_check CHECK (kind IN ('CONCESSION', 'SPUNTA')),
    ADD CONSTRAINT presence_daily_check CHECK (market_id >> 48 = region_id);
ALTER TABLE presence_monthly
    ADD CONSTRAINT presence_monthly_region_id_check CHECK (region_id BETWEEN 1 AND 20),
    ADD CONSTRAINT presence_monthly_month_check CHECK (extract(day FROM month) = 1),
    ADD CONSTRAINT presence_monthly_kind_check CHECK (kind IN ('CONCESSION', 'SPUNTA')),
    ADD CONSTRAINT presence_monthly_stripe_check CHECK (stripe BETWEEN 0 AND 15);
CREATE OR REPLACE TRIGGER presence_monthly_insert AFTER INSERT ON presence_daily
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dms.presence_monthly_apply();
CREATE OR REPLACE TRIGGER presence_monthly_update AFTER UPDATE ON presence_daily
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dms.presence_monthly_apply();
CREATE OR REPLACE TRIGGER presence_monthly_delete AFTER DELETE ON presence_daily
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION dms.presence_monthly_apply();
DROP TRIGGER presence_rollups_insert ON vendor_presences;
DROP TRIGGER presence_rollups_update ON vendor_presences;
DROP TRIGGER presence_rollups_delete ON vendor_presences;
CREATE TRIGGER presence_daily_insert AFTER INSERT ON vendor_presences
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dms.presence_daily_apply();
CREATE TRIGGER presence_daily_update AFTER UPDATE ON vendor_presences
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dms.presence_daily_apply();
CREATE TRIGGER presence_daily_delete AFTER DELETE ON vendor_presences
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION dms.presence_daily_apply();
DROP FUNCTION dms.presence_rollups_insert(), dms.presence_rollups_delete(), dms.presence_rollups_update();
