-- Rollups for the national dashboards, so that a region's figures are read
-- from a handful of rollup rows instead of scanning its tables (a large
-- region has ~2 million presences a month, ~20,000 stalls and concessions):
--   presence_daily         presences per market, day and kind;
--   presence_monthly       presences per region, month and kind, kept from
--                          presence_daily by presence_daily's own triggers;
--   region_status_counts   stalls and concessions per region and status;
--   vendor_set_versions    a stamp per region that changes whenever its set
--                          of partite IVA may have, so the router can keep a
--                          region's set (the national count of distinct
--                          vendors merges the sets) and fetch it only anew.
--
-- Exactness. presence_daily(market_id, date, kind).n is, at every commit,
-- exactly the number of vendor_presences rows with that market, date and
-- kind; presence_monthly and region_status_counts are exact in the same way
-- (summed over their stripes, below). No write path has code for it:
--   * Statement-level AFTER INSERT, UPDATE and DELETE triggers see every row
--     a statement changed through its transition tables (REFERENCING NEW
--     TABLE / OLD TABLE; on the partitioned parent vendor_presences they hold
--     the rows of every partition). INSERT, INSERT ... ON CONFLICT, UPDATE
--     (also one that moves a row to another partition), DELETE, MERGE and
--     COPY all fire them.
--   * The trigger turns the statement's rows into one delta per rollup key
--     (+1 per new row, -1 per old row; an UPDATE that changes no key column
--     nets to 0 and writes nothing), upserts the positive deltas (INSERT ...
--     ON CONFLICT DO UPDATE SET n = n + delta) and subtracts the negative ones
--     from rows that must exist. The upsert is atomic: concurrent writers of
--     the same rollup row serialize on its row lock and each adds its delta
--     to the latest committed value, so no increment is lost (under
--     REPEATABLE READ or SERIALIZABLE a conflict is a serialization failure,
--     and the retried transaction adds its delta again).
--   * The trigger runs inside the writing transaction: a rollback undoes the
--     rows and their deltas together, and readers see both or neither.
--   * n has CHECK (n >= 0), and a decrement whose row is missing raises an
--     error: a rollup that disagrees with its table fails the statement
--     instead of hiding it. Rows whose count drops to 0 stay, with n = 0.
--   * TRUNCATE of a table empties its rollup rows.
-- What bypasses the parent's statement triggers, and so must keep the
-- rollups itself: writing to a partition of vendor_presences directly
-- (dms_app has no privilege on the partitions; only the owner could), and
-- dropping or detaching a partition. Whoever does so keeps presence_daily
-- in the same transaction (the seed, which COPYs into the partitions, fills
-- it with one INSERT ... SELECT; the retention job must DELETE FROM
-- presence_daily WHERE date < $cut), and presence_monthly follows through
-- presence_daily's triggers. Disabling triggers (session_replication_role =
-- replica) would bypass them all.
--
-- Contention. A presence_daily row is shared by the check-ins of one market,
-- day and kind only. The region-wide rollups are striped: each region's count
-- is spread over 16 rows by market (stripe = market_id % 16), so writers of
-- different markets rarely wait for each other, and a reader sums at most 16
-- rows per key. Upserts go in key order, so two inserting statements that
-- touch the same rollup rows lock them in the same order.
--
-- Access. The trigger functions are SECURITY DEFINER, owned by the schema
-- owner, with a fixed search_path, so dms_app needs only SELECT on the
-- rollups. presence_daily has the scope policy of the market tables; the
-- region-wide rollups are visible only to a scope that sees its whole
-- region (no province, comune or market setting). A second policy on each
-- lets the owner, whose role the trigger functions run as, maintain every
-- row whatever scope the writing transaction set.

-- +goose Up
CREATE TABLE presence_daily (
    region_id smallint NOT NULL CHECK (region_id BETWEEN 1 AND 20),
    market_id bigint NOT NULL,
    comune    text NOT NULL CHECK (comune ~ '^[0-9]{6}$'),
    date      date NOT NULL,
    kind      text NOT NULL CHECK (kind IN ('CONCESSION', 'SPUNTA')),
    n         integer NOT NULL CHECK (n >= 0),
    PRIMARY KEY (market_id, date, kind),
    CHECK (market_id >> 48 = region_id)
) WITH (fillfactor = 90);
-- A region's day. n is in no index and pages keep free space, so the
-- increments of check-ins are HOT updates that touch no index.
CREATE INDEX presence_daily_region_date ON presence_daily (region_id, date);

CREATE TABLE presence_monthly (
    region_id smallint NOT NULL CHECK (region_id BETWEEN 1 AND 20),
    month     date NOT NULL CHECK (extract(day FROM month) = 1),
    kind      text NOT NULL CHECK (kind IN ('CONCESSION', 'SPUNTA')),
    stripe    smallint NOT NULL CHECK (stripe BETWEEN 0 AND 15),
    n         integer NOT NULL CHECK (n >= 0),
    PRIMARY KEY (region_id, month, kind, stripe)
) WITH (fillfactor = 90);

CREATE TABLE region_status_counts (
    region_id smallint NOT NULL CHECK (region_id BETWEEN 1 AND 20),
    entity    text NOT NULL CHECK (entity IN ('stalls', 'concessions')),
    status    text NOT NULL,
    stripe    smallint NOT NULL CHECK (stripe BETWEEN 0 AND 15),
    n         integer NOT NULL CHECK (n >= 0),
    PRIMARY KEY (region_id, entity, status, stripe)
) WITH (fillfactor = 90);

ALTER TABLE presence_daily ENABLE ROW LEVEL SECURITY;
ALTER TABLE presence_daily FORCE ROW LEVEL SECURITY;
-- The scope policy of the market tables, with the settings read in scalar
-- subqueries: the planner evaluates them once per query, not once per row.
CREATE POLICY presence_daily_scope ON presence_daily
    USING (region_id = (SELECT dms.scope_region())
       AND ((SELECT dms.scope_text('dms.province')) IS NULL OR left(comune, 3) = (SELECT dms.scope_text('dms.province')))
       AND ((SELECT dms.scope_text('dms.comune')) IS NULL OR comune = (SELECT dms.scope_text('dms.comune')))
       AND ((SELECT dms.scope_market()) IS NULL OR market_id = (SELECT dms.scope_market())));

-- +goose StatementBegin
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['presence_monthly', 'region_status_counts'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format($p$CREATE POLICY %I ON %I
            USING (region_id = (SELECT dms.scope_region())
               AND (SELECT dms.scope_text('dms.province')) IS NULL
               AND (SELECT dms.scope_text('dms.comune')) IS NULL
               AND (SELECT dms.scope_market()) IS NULL)$p$, t || '_scope', t);
    END LOOP;
    FOREACH t IN ARRAY ARRAY['presence_daily', 'presence_monthly', 'region_status_counts'] LOOP
        EXECUTE format('CREATE POLICY %I ON %I TO %I USING (true) WITH CHECK (true)', t || '_maintain', t, current_user);
    END LOOP;
END
$$;
-- +goose StatementEnd
GRANT SELECT ON presence_daily, presence_monthly, region_status_counts TO dms_app;

-- dms.presence_daily_apply is the function of the INSERT, UPDATE and
-- DELETE statement triggers on vendor_presences: one delta per (market,
-- date, kind). (A negative delta cannot go through the upsert: CHECK (n >= 0)
-- applies to the proposed row before the conflict turns it into an update.)
-- The branches differ only in where the rows come from: a trigger sees only
-- the transition tables of its event.
-- +goose StatementBegin
CREATE FUNCTION dms.presence_daily_apply() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    want bigint := 0;
    got bigint := 0;
BEGIN
    IF TG_OP = 'INSERT' THEN
        WITH delta AS (
            SELECT min(region_id) AS region_id, market_id, min(comune) AS comune, date, kind, sum(delta) AS delta
            FROM (SELECT region_id, market_id, comune, date, kind, 1 AS delta FROM new_rows) x
            GROUP BY market_id, date, kind
            HAVING sum(delta) <> 0
        ), up AS (
            INSERT INTO public.presence_daily AS d (region_id, market_id, comune, date, kind, n)
            SELECT region_id, market_id, comune, date, kind, delta FROM delta WHERE delta > 0
            ORDER BY market_id, date, kind
            ON CONFLICT (market_id, date, kind) DO UPDATE SET n = d.n + excluded.n
        ), down AS (
            UPDATE public.presence_daily AS d SET n = d.n + x.delta
            FROM delta x
            WHERE x.delta < 0 AND d.market_id = x.market_id AND d.date = x.date AND d.kind = x.kind
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM delta WHERE delta < 0), (SELECT count(*) FROM down) INTO want, got;
    ELSIF TG_OP = 'DELETE' THEN
        WITH delta AS (
            SELECT min(region_id) AS region_id, market_id, min(comune) AS comune, date, kind, sum(delta) AS delta
            FROM (SELECT region_id, market_id, comune, date, kind, -1 AS delta FROM old_rows) x
            GROUP BY market_id, date, kind
            HAVING sum(delta) <> 0
        ), up AS (
            INSERT INTO public.presence_daily AS d (region_id, market_id, comune, date, kind, n)
            SELECT region_id, market_id, comune, date, kind, delta FROM delta WHERE delta > 0
            ORDER BY market_id, date, kind
            ON CONFLICT (market_id, date, kind) DO UPDATE SET n = d.n + excluded.n
        ), down AS (
            UPDATE public.presence_daily AS d SET n = d.n + x.delta
            FROM delta x
            WHERE x.delta < 0 AND d.market_id = x.market_id AND d.date = x.date AND d.kind = x.kind
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM delta WHERE delta < 0), (SELECT count(*) FROM down) INTO want, got;
    ELSE
        WITH delta AS (
            SELECT min(region_id) AS region_id, market_id, min(comune) AS comune, date, kind, sum(delta) AS delta
            FROM (SELECT region_id, market_id, comune, date, kind, 1 AS delta FROM new_rows
                  UNION ALL
                  SELECT region_id, market_id, comune, date, kind, -1 FROM old_rows) x
            GROUP BY market_id, date, kind
            HAVING sum(delta) <> 0
        ), up AS (
            INSERT INTO public.presence_daily AS d (region_id, market_id, comune, date, kind, n)
            SELECT region_id, market_id, comune, date, kind, delta FROM delta WHERE delta > 0
            ORDER BY market_id, date, kind
            ON CONFLICT (market_id, date, kind) DO UPDATE SET n = d.n + excluded.n
        ), down AS (
            UPDATE public.presence_daily AS d SET n = d.n + x.delta
            FROM delta x
            WHERE x.delta < 0 AND d.market_id = x.market_id AND d.date = x.date AND d.kind = x.kind
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM delta WHERE delta < 0), (SELECT count(*) FROM down) INTO want, got;
    END IF;
    IF got <> want THEN
        RAISE EXCEPTION 'presence_daily disagrees with vendor_presences: % rows to decrement are missing', want - got;
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION dms.presence_daily_truncate() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    TRUNCATE public.presence_daily; -- and presence_monthly, through its trigger
    RETURN NULL;
END
$$;

-- dms.presence_monthly_apply is the function of the statement triggers on
-- presence_daily itself: whatever changes presence_daily (the triggers
-- above, the seed filling it, the retention job deleting old days) changes
-- presence_monthly by the same n, per (region, month, kind, stripe).
CREATE FUNCTION dms.presence_monthly_apply() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    want bigint := 0;
    got bigint := 0;
BEGIN
    IF TG_OP = 'INSERT' THEN
        WITH delta AS (
            SELECT region_id, date_trunc('month', date)::date AS month, kind, (market_id % 16)::smallint AS stripe, sum(delta) AS delta
            FROM (SELECT region_id, market_id, date, kind, n AS delta FROM new_rows) x
            GROUP BY 1, 2, 3, 4
            HAVING sum(delta) <> 0
        ), up AS (
            INSERT INTO public.presence_monthly AS d (region_id, month, kind, stripe, n)
            SELECT region_id, month, kind, stripe, delta FROM delta WHERE delta > 0
            ORDER BY region_id, month, kind, stripe
            ON CONFLICT (region_id, month, kind, stripe) DO UPDATE SET n = d.n + excluded.n
        ), down AS (
            UPDATE public.presence_monthly AS d SET n = d.n + x.delta
            FROM delta x
            WHERE x.delta < 0 AND d.region_id = x.region_id AND d.month = x.month AND d.kind = x.kind AND d.stripe = x.stripe
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM delta WHERE delta < 0), (SELECT count(*) FROM down) INTO want, got;
    ELSIF TG_OP = 'DELETE' THEN
        WITH delta AS (
            SELECT region_id, date_trunc('month', date)::date AS month, kind, (market_id % 16)::smallint AS stripe, sum(delta) AS delta
            FROM (SELECT region_id, market_id, date, kind, -n AS delta FROM old_rows) x
            GROUP BY 1, 2, 3, 4
            HAVING sum(delta) <> 0
        ), up AS (
            INSERT INTO public.presence_monthly AS d (region_id, month, kind, stripe, n)
            SELECT region_id, month, kind, stripe, delta FROM delta WHERE delta > 0
            ORDER BY region_id, month, kind, stripe
            ON CONFLICT (region_id, month, kind, stripe) DO UPDATE SET n = d.n + excluded.n
        ), down AS (
            UPDATE public.presence_monthly AS d SET n = d.n + x.delta
            FROM delta x
            WHERE x.delta < 0 AND d.region_id = x.region_id AND d.month = x.month AND d.kind = x.kind AND d.stripe = x.stripe
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM delta WHERE delta < 0), (SELECT count(*) FROM down) INTO want, got;
    ELSE
        WITH delta AS (
            SELECT region_id, date_trunc('month', date)::date AS month, kind, (market_id % 16)::smallint AS stripe, sum(delta) AS delta
            FROM (SELECT region_id, market_id, date, kind, n AS delta FROM new_rows
                  UNION ALL
                  SELECT region_id, market_id, date, kind, -n FROM old_rows) x
            GROUP BY 1, 2, 3, 4
            HAVING sum(delta) <> 0
        ), up AS (
            INSERT INTO public.presence_monthly AS d (region_id, month, kind, stripe, n)
            SELECT region_id, month, kind, stripe, delta FROM delta WHERE delta > 0
            ORDER BY region_id, month, kind, stripe
            ON CONFLICT (region_id, month, kind, stripe) DO UPDATE SET n = d.n + excluded.n
        ), down AS (
            UPDATE public.presence_monthly AS d SET n = d.n + x.delta
            FROM delta x
            WHERE x.delta < 0 AND d.region_id = x.region_id AND d.month = x.month AND d.kind = x.kind AND d.stripe = x.stripe
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM delta WHERE delta < 0), (SELECT count(*) FROM down) INTO want, got;
    END IF;
    IF got <> want THEN
        RAISE EXCEPTION 'presence_monthly disagrees with presence_daily: % rows to decrement are missing', want - got;
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION dms.presence_monthly_truncate() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    TRUNCATE public.presence_monthly;
    RETURN NULL;
END
$$;

-- dms.status_counts_apply is the function of the statement triggers on
-- stalls and concessions (TG_ARGV[0] names the entity): one delta per
-- (region, status, stripe) for region_status_counts.
CREATE FUNCTION dms.status_counts_apply() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    what text := TG_ARGV[0];
    want bigint := 0;
    got bigint := 0;
BEGIN
    IF TG_OP = 'INSERT' THEN
        WITH delta AS (
            SELECT region_id, (market_id % 16)::smallint AS stripe, status, sum(delta) AS delta
            FROM (SELECT region_id, market_id, status, 1 AS delta FROM new_rows) x
            GROUP BY 1, 2, 3
            HAVING sum(delta) <> 0
        ), up AS (
            INSERT INTO public.region_status_counts AS d (region_id, entity, status, stripe, n)
            SELECT region_id, what, status, stripe, delta FROM delta WHERE delta > 0
            ORDER BY region_id, status, stripe
            ON CONFLICT (region_id, entity, status, stripe) DO UPDATE SET n = d.n + excluded.n
        ), down AS (
            UPDATE public.region_status_counts AS d SET n = d.n + x.delta
            FROM delta x
            WHERE x.delta < 0 AND d.region_id = x.region_id AND d.entity = what AND d.status = x.status AND d.stripe = x.stripe
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM delta WHERE delta < 0), (SELECT count(*) FROM down) INTO want, got;
    ELSIF TG_OP = 'DELETE' THEN
        WITH delta AS (
            SELECT region_id, (market_id % 16)::smallint AS stripe, status, sum(delta) AS delta
            FROM (SELECT region_id, market_id, status, -1 AS delta FROM old_rows) x
            GROUP BY 1, 2, 3
            HAVING sum(delta) <> 0
        ), up AS (
            INSERT INTO public.region_status_counts AS d (region_id, entity, status, stripe, n)
            SELECT region_id, what, status, stripe, delta FROM delta WHERE delta > 0
            ORDER BY region_id, status, stripe
            ON CONFLICT (region_id, entity, status, stripe) DO UPDATE SET n = d.n + excluded.n
        ), down AS (
            UPDATE public.region_status_counts AS d SET n = d.n + x.delta
            FROM delta x
            WHERE x.delta < 0 AND d.region_id = x.region_id AND d.entity = what AND d.status = x.status AND d.stripe = x.stripe
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM delta WHERE delta < 0), (SELECT count(*) FROM down) INTO want, got;
    ELSE
        WITH delta AS (
            SELECT region_id, (market_id % 16)::smallint AS stripe, status, sum(delta) AS delta
            FROM (SELECT region_id, market_id, status, 1 AS delta FROM new_rows
                  UNION ALL
                  SELECT region_id, market_id, status, -1 FROM old_rows) x
            GROUP BY 1, 2, 3
            HAVING sum(delta) <> 0
        ), up AS (
            INSERT INTO public.region_status_counts AS d (region_id, entity, status, stripe, n)
            SELECT region_id, what, status, stripe, delta FROM delta WHERE delta > 0
            ORDER BY region_id, status, stripe
            ON CONFLICT (region_id, entity, status, stripe) DO UPDATE SET n = d.n + excluded.n
        ), down AS (
            UPDATE public.region_status_counts AS d SET n = d.n + x.delta
            FROM delta x
            WHERE x.delta < 0 AND d.region_id = x.region_id AND d.entity = what AND d.status = x.status AND d.stripe = x.stripe
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM delta WHERE delta < 0), (SELECT count(*) FROM down) INTO want, got;
    END IF;
    IF got <> want THEN
        RAISE EXCEPTION 'region_status_counts disagrees with %: % rows to decrement are missing', what, want - got;
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION dms.status_counts_truncate() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM public.region_status_counts WHERE entity = TG_ARGV[0];
    RETURN NULL;
END
$$;
-- +goose StatementEnd
REVOKE EXECUTE ON FUNCTION dms.presence_daily_apply(), dms.presence_daily_truncate(),
    dms.presence_monthly_apply(), dms.presence_monthly_truncate(),
    dms.status_counts_apply(), dms.status_counts_truncate() FROM PUBLIC;

CREATE TRIGGER presence_daily_insert AFTER INSERT ON vendor_presences
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dms.presence_daily_apply();
CREATE TRIGGER presence_daily_update AFTER UPDATE ON vendor_presences
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dms.presence_daily_apply();
CREATE TRIGGER presence_daily_delete AFTER DELETE ON vendor_presences
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION dms.presence_daily_apply();
CREATE TRIGGER presence_daily_truncate AFTER TRUNCATE ON vendor_presences
    FOR EACH STATEMENT EXECUTE FUNCTION dms.presence_daily_truncate();

CREATE TRIGGER presence_monthly_insert AFTER INSERT ON presence_daily
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dms.presence_monthly_apply();
CREATE TRIGGER presence_monthly_update AFTER UPDATE ON presence_daily
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dms.presence_monthly_apply();
CREATE TRIGGER presence_monthly_delete AFTER DELETE ON presence_daily
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION dms.presence_monthly_apply();
CREATE TRIGGER presence_monthly_truncate AFTER TRUNCATE ON presence_daily
    FOR EACH STATEMENT EXECUTE FUNCTION dms.presence_monthly_truncate();

-- +goose StatementBegin
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['stalls', 'concessions'] LOOP
        EXECUTE format('CREATE TRIGGER status_counts_insert AFTER INSERT ON %I REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION dms.status_counts_apply(%L)', t, t);
        EXECUTE format('CREATE TRIGGER status_counts_update AFTER UPDATE ON %I REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION dms.status_counts_apply(%L)', t, t);
        EXECUTE format('CREATE TRIGGER status_counts_delete AFTER DELETE ON %I REFERENCING OLD TABLE AS old_rows
            FOR EACH STATEMENT EXECUTE FUNCTION dms.status_counts_apply(%L)', t, t);
        EXECUTE format('CREATE TRIGGER status_counts_truncate AFTER TRUNCATE ON %I
            FOR EACH STATEMENT EXECUTE FUNCTION dms.status_counts_truncate(%L)', t, t);
    END LOOP;
END
$$;
-- +goose StatementEnd

-- vendor_set_versions: a random stamp per region, replaced in the same
-- transaction as any statement that may change the set of partite IVA of a
-- region of this database (an INSERT, DELETE or TRUNCATE of vendors, an
-- UPDATE of partita_iva or region_id). A reader that reads the stamp and the
-- set in one statement, and later finds the same stamp, knows the set is the
-- same. Every region's stamp changes together: vendor writes are rare, and a
-- fixed order (region 1..20) keeps concurrent writers from deadlocking.
CREATE TABLE vendor_set_versions (
    region_id smallint PRIMARY KEY CHECK (region_id BETWEEN 1 AND 20),
    version   bigint NOT NULL
);
ALTER TABLE vendor_set_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE vendor_set_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY vendor_set_versions_scope ON vendor_set_versions USING (region_id = (SELECT dms.scope_region()));
-- +goose StatementBegin
DO $$
BEGIN
    EXECUTE format('CREATE POLICY vendor_set_versions_maintain ON vendor_set_versions TO %I USING (true) WITH CHECK (true)', current_user);
END
$$;

CREATE FUNCTION dms.vendor_set_touch() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO public.vendor_set_versions AS v (region_id, version)
    SELECT r, (random() * 9.2e18)::int8 FROM generate_series(1, 20) r
    ORDER BY r
    ON CONFLICT (region_id) DO UPDATE SET version = excluded.version;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
REVOKE EXECUTE ON FUNCTION dms.vendor_set_touch() FROM PUBLIC;
GRANT SELECT ON vendor_set_versions TO dms_app;
CREATE TRIGGER vendor_set_touch AFTER INSERT OR DELETE OR UPDATE OF partita_iva, region_id ON vendors
    FOR EACH STATEMENT EXECUTE FUNCTION dms.vendor_set_touch();
CREATE TRIGGER vendor_set_touch_truncate AFTER TRUNCATE ON vendors
    FOR EACH STATEMENT EXECUTE FUNCTION dms.vendor_set_touch();
INSERT INTO vendor_set_versions (region_id, version)
SELECT r, (random() * 9.2e18)::int8 FROM generate_series(1, 20) r;

-- Backfill from the rows already there, in this migration's transaction,
-- holding locks that keep writers out until the triggers have taken over.
-- The tables force row-level security on their owner too, so unless the
-- migrating role bypasses it (a superuser does) the backfill lifts FORCE for
-- the transaction: no other session sees the change, the ALTER holding an
-- exclusive lock until commit.
-- +goose StatementBegin
DO $$
DECLARE
    bypass boolean := (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user);
    t text;
BEGIN
    IF NOT bypass THEN
        FOREACH t IN ARRAY ARRAY['vendor_presences', 'stalls', 'concessions'] LOOP
            EXECUTE format('ALTER TABLE %I NO FORCE ROW LEVEL SECURITY', t);
        END LOOP;
    END IF;
    LOCK TABLE vendor_presences, stalls, concessions IN SHARE MODE;
    -- presence_monthly follows through presence_daily's own triggers.
    INSERT INTO presence_daily (region_id, market_id, comune, date, kind, n)
    SELECT min(region_id), market_id, min(comune), date, kind, count(*)
    FROM vendor_presences
    GROUP BY market_id, date, kind;
    INSERT INTO region_status_counts (region_id, entity, status, stripe, n)
    SELECT region_id, 'stalls', status, (market_id % 16)::smallint, count(*)
    FROM stalls
    GROUP BY 1, 2, 3, 4;
    INSERT INTO region_status_counts (region_id, entity, status, stripe, n)
    SELECT region_id, 'concessions', status, (market_id % 16)::smallint, count(*)
    FROM concessions
    GROUP BY 1, 2, 3, 4;
    IF NOT bypass THEN
        FOREACH t IN ARRAY ARRAY['vendor_presences', 'stalls', 'concessions'] LOOP
            EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        END LOOP;
    END IF;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER vendor_set_touch ON vendors;
DROP TRIGGER vendor_set_touch_truncate ON vendors;
DROP TRIGGER presence_daily_insert ON vendor_presences;
DROP TRIGGER presence_daily_update ON vendor_presences;
DROP TRIGGER presence_daily_delete ON vendor_presences;
DROP TRIGGER presence_daily_truncate ON vendor_presences;
-- +goose StatementBegin
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['stalls', 'concessions'] LOOP
        EXECUTE format('DROP TRIGGER status_counts_insert ON %I', t);
        EXECUTE format('DROP TRIGGER status_counts_update ON %I', t);
        EXECUTE format('DROP TRIGGER status_counts_delete ON %I', t);
        EXECUTE format('DROP TRIGGER status_counts_truncate ON %I', t);
    END LOOP;
END
$$;
-- +goose StatementEnd
DROP TABLE presence_daily, presence_monthly, region_status_counts, vendor_set_versions;
DROP FUNCTION dms.presence_daily_apply(), dms.presence_daily_truncate(),
    dms.presence_monthly_apply(), dms.presence_monthly_truncate(),
    dms.status_counts_apply(), dms.status_counts_truncate(), dms.vendor_set_touch();
