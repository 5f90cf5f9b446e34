-- A check-in's statement fired two statement triggers after its insert into
-- vendor_presences: presence_refs_insert (migration 00010: the presences'
-- market and stall are what they claim) and presence_rollups_insert
-- (migration 00007: presence_daily and presence_monthly), each a PL/pgSQL
-- call over the same transition table; EXPLAIN ANALYZE of a check-in gave
-- them 0.08 and 0.09 ms of a 0.46 ms execution (BENCHMARKS.md, "Check-ins:
-- scope policies that read each setting once"). The reference check ran as
-- the writer, so under dms_app its lookups of markets and stalls started
-- the narrowing scope policies' eight InitPlans as well.
--
-- From here an insert fires one trigger, presence_rollups_insert, whose
-- function checks the references and keeps the rollups in one statement.
-- It runs as the owner (SECURITY DEFINER, as the rollups need), which reads
-- every market (markets_lifecycle, migration 00015) and, from here, every
-- stall (stalls_refs): the check admits exactly what it admitted as the
-- writer, since a presence passes the writer's scope policy on
-- vendor_presences before any trigger runs, and a market (id, region_id,
-- comune) and its stalls lie in every scope that holds that region, comune
-- and market. The check is the statement's query, which PostgreSQL runs
-- before the upserts (data-modifying CTEs that the query does not read run
-- after it); a failed check raises, which undoes the statement with the
-- insert. Updates keep presence_refs_update (migration 00010) and
-- presence_rollups_update as they were.

-- +goose Up
-- +goose StatementBegin
DO $$
BEGIN
    EXECUTE format('CREATE POLICY stalls_refs ON stalls FOR SELECT TO %I USING (true)', current_user);
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION dms.presence_rollups_insert() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    markets_ok boolean;
    stalls_ok boolean;
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
    ), monthly AS (
        INSERT INTO public.presence_monthly AS t (region_id, month, kind, stripe, n)
        SELECT d.region_id, date_trunc('month', d.date)::date, d.kind, (d.market_id % 16)::smallint, sum(d.n)
        FROM daily JOIN d USING (market_id, date, kind)
        GROUP BY 1, 2, 3, 4
        ORDER BY 1, 2, 3, 4
        ON CONFLICT (region_id, month, kind, stripe) DO UPDATE SET n = t.n + excluded.n
    )
    SELECT NOT EXISTS (SELECT FROM (SELECT DISTINCT market_id, region_id, comune FROM new_rows) n
               WHERE (SELECT (m.region_id, m.comune) FROM public.markets m WHERE m.id = n.market_id)
                     IS DISTINCT FROM (n.region_id, n.comune)),
           NOT EXISTS (SELECT FROM (SELECT DISTINCT stall_id, market_id FROM new_rows WHERE stall_id IS NOT NULL) n
               WHERE (SELECT s.market_id FROM public.stalls s WHERE s.id = n.stall_id) IS DISTINCT FROM n.market_id)
    INTO markets_ok, stalls_ok;
    IF NOT markets_ok THEN
        RAISE EXCEPTION 'a presence names a market that is not (market_id, region_id, comune)'
            USING ERRCODE = 'foreign_key_violation', SCHEMA = 'public', TABLE = 'vendor_presences', CONSTRAINT = 'vendor_presences_market';
    ELSIF NOT stalls_ok THEN
        RAISE EXCEPTION 'a presence names a stall of another market'
            USING ERRCODE = 'foreign_key_violation', SCHEMA = 'public', TABLE = 'vendor_presences', CONSTRAINT = 'vendor_presences_stall';
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
DROP TRIGGER presence_refs_insert ON vendor_presences;

-- +goose Down
CREATE TRIGGER presence_refs_insert AFTER INSERT ON vendor_presences
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dms.presence_refs_check();
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION dms.presence_rollups_insert() RETURNS trigger
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
-- +goose StatementEnd
DROP POLICY stalls_refs ON stalls;
