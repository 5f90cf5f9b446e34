-- The database as a second wall: what the router checks before a write, the
-- schema checks again, so that a session of dms_app that sets its own scope
-- (set_config('dms.region', ...), as an attacker holding the role's
-- password would) can write nothing the router would refuse.
--
--   * Each shard database records the regions it holds (dms.shard_regions,
--     filled by migrations.HoldRegions from the shard map), and every row of
--     a regional table belongs to one of them: markets, vendors, audit_log
--     and idempotency_keys reference the table; stalls, concessions,
--     spunta_runs and vendor_presences reference their market, which does.
--     The rollups (presence_daily, presence_monthly, region_status_counts,
--     vendor_set_versions) are written only by triggers of those tables;
--     dms_app cannot write them.
--     A region is held while its rows may be here; `owned` says whether the
--     router may use it (issue 11's online move: the target holds the region
--     unowned while the copy arrives, the source holds it unowned until its
--     rows are deleted). A region's row can only be deleted once none of its
--     rows is left.
--   * A market's comune lies in the market's region (dms.comune_region, kept
--     equal to package regions by TestComuneRegionMatchesRegions).
--   * The copied columns cannot lie: stalls, concessions and spunta_runs
--     reference their market by (id, region_id, comune), a concession its
--     stall by (id, market_id). A presence's market (by id, region and
--     comune) and stall (of that market) are checked by a statement trigger over the statement's rows: one query per
--     statement instead of a foreign-key lookup and row lock per row, which
--     keeps COPY and batch ingest fast. The trigger runs as the writer, under
--     its scope: a presence can only name rows its writer can see. The
--     columns these checks rest on (ids, regions, comuni, markets, vendors,
--     dates) are immutable for dms_app: it may update only the columns the
--     API changes, so no concurrent update can make a checked row lie later.
--   * dms_app may call dms.ensure_presence_partitions only for a window
--     around today (13 months back, 24 ahead); its owner (the migrations,
--     the seed) for any months of 2000..2100.
--   * Codes compare bytewise (COLLATE "C"): region codes, comuni,
--     provinces, market codes, partite IVA and codici fiscali.
--   * markets.code is unique per region, not per database: regions sharing
--     a database, or moved into one, keep their codes.
--   * markets.days is never empty; a market created without days is held
--     every day.
--   * Dates lie in 2000-01-01 .. 2100-12-31 (concessions, spunta runs,
--     check-in times; presence dates through the partitions that exist).

-- +goose Up
CREATE TABLE dms.shard_regions (
    region_id smallint PRIMARY KEY CHECK (region_id BETWEEN 1 AND 20),
    owned     boolean NOT NULL DEFAULT true
);
GRANT SELECT ON dms.shard_regions TO dms_app, dms_region;

-- dms.comune_region returns the region of a comune's province (its first
-- three digits), or NULL when no comune has that prefix. Generated from
-- package regions; TestComuneRegionMatchesRegions prints it anew when they
-- differ.
-- +goose StatementBegin
CREATE FUNCTION dms.comune_region(comune text) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
RETURN CASE
        WHEN left(comune, 3) IN ('001', '002', '003', '004', '005', '006', '096', '103') THEN 1
        WHEN left(comune, 3) IN ('007') THEN 2
        WHEN left(comune, 3) IN ('012', '013', '014', '015', '016', '017', '018', '019', '020', '097', '098', '108') THEN 3
        WHEN left(comune, 3) IN ('021', '022') THEN 4
        WHEN left(comune, 3) IN ('023', '024', '025', '026', '027', '028', '029') THEN 5
        WHEN left(comune, 3) IN ('030', '031', '032', '093') THEN 6
        WHEN left(comune, 3) IN ('008', '009', '010', '011') THEN 7
        WHEN left(comune, 3) IN ('033', '034', '035', '036', '037', '038', '039', '040', '099') THEN 8
        WHEN left(comune, 3) IN ('045', '046', '047', '048', '049', '050', '051', '052', '053', '100') THEN 9
        WHEN left(comune, 3) IN ('054', '055') THEN 10
        WHEN left(comune, 3) IN ('041', '042', '043', '044', '109') THEN 11
        WHEN left(comune, 3) IN ('056', '057', '058', '059', '060') THEN 12
        WHEN left(comune, 3) IN ('066', '067', '068', '069') THEN 13
        WHEN left(comune, 3) IN ('070', '094') THEN 14
        WHEN left(comune, 3) IN ('061', '062', '063', '064', '065') THEN 15
        WHEN left(comune, 3) IN ('071', '072', '073', '074', '075', '110') THEN 16
        WHEN left(comune, 3) IN ('076', '077') THEN 17
        WHEN left(comune, 3) IN ('078', '079', '080', '101', '102') THEN 18
        WHEN left(comune, 3) IN ('081', '082', '083', '084', '085', '086', '087', '088', '089') THEN 19
        WHEN left(comune, 3) IN ('090', '091', '092', '095', '111') THEN 20
    END;
-- +goose StatementEnd

-- The regions of the rows already here are held, and markets without days
-- are held every day. The tables force row-level security on their owner,
-- so unless the migrating role bypasses it this lifts FORCE for the
-- transaction (as migration 00002 does).
-- +goose StatementBegin
DO $$
DECLARE
    bypass boolean := (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user);
    t text;
BEGIN
    IF NOT bypass THEN
        FOREACH t IN ARRAY ARRAY['markets', 'vendors', 'audit_log', 'idempotency_keys'] LOOP
            EXECUTE format('ALTER TABLE %I NO FORCE ROW LEVEL SECURITY', t);
        END LOOP;
    END IF;
    INSERT INTO dms.shard_regions (region_id)
    SELECT region_id FROM markets
    UNION SELECT region_id FROM vendors
    UNION SELECT region_id FROM audit_log
    UNION SELECT region_id FROM idempotency_keys;
    UPDATE markets SET days = '{1,2,3,4,5,6,7}' WHERE days = '{}';
    IF NOT bypass THEN
        FOREACH t IN ARRAY ARRAY['markets', 'vendors', 'audit_log', 'idempotency_keys'] LOOP
            EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        END LOOP;
    END IF;
END
$$;
-- +goose StatementEnd

-- Codes in the "C" collation. A column that a policy reads, or that a
-- trigger lists, cannot change its type: the policies of these tables are
-- dropped and recreated from their own definitions, and vendor_set_touch
-- (UPDATE OF partita_iva) as migration 00002 made it.
-- +goose StatementBegin
DO $$
DECLARE
    tables text[] := ARRAY['markets', 'stalls', 'vendors', 'concessions', 'vendor_presences', 'presence_daily', 'spunta_runs'];
    creates text[];
    pol record;
    stmt text;
BEGIN
    creates := ARRAY(
        SELECT format('CREATE POLICY %I ON %I AS %s FOR %s TO %s%s%s',
            policyname, tablename, permissive, cmd,
            (SELECT string_agg(CASE r WHEN 'public' THEN 'PUBLIC' ELSE quote_ident(r) END, ', ') FROM unnest(roles) r),
            CASE WHEN qual IS NOT NULL THEN ' USING (' || qual || ')' ELSE '' END,
            CASE WHEN with_check IS NOT NULL THEN ' WITH CHECK (' || with_check || ')' ELSE '' END)
        FROM pg_policies WHERE schemaname = 'public' AND tablename = ANY (tables));
    FOR pol IN SELECT policyname, tablename FROM pg_policies WHERE schemaname = 'public' AND tablename = ANY (tables) LOOP
        EXECUTE format('DROP POLICY %I ON %I', pol.policyname, pol.tablename);
    END LOOP;
    DROP TRIGGER vendor_set_touch ON vendors;

    ALTER TABLE markets
        ALTER COLUMN code TYPE text COLLATE "C",
        ALTER COLUMN province TYPE text COLLATE "C",
        ALTER COLUMN comune TYPE text COLLATE "C";
    ALTER TABLE vendors
        ALTER COLUMN partita_iva TYPE text COLLATE "C",
        ALTER COLUMN codice_fiscale TYPE text COLLATE "C",
        ALTER COLUMN comune TYPE text COLLATE "C";
    ALTER TABLE stalls ALTER COLUMN comune TYPE text COLLATE "C";
    ALTER TABLE concessions ALTER COLUMN comune TYPE text COLLATE "C";
    ALTER TABLE vendor_presences ALTER COLUMN comune TYPE text COLLATE "C";
    ALTER TABLE presence_daily ALTER COLUMN comune TYPE text COLLATE "C";
    ALTER TABLE spunta_runs ALTER COLUMN comune TYPE text COLLATE "C";

    CREATE TRIGGER vendor_set_touch AFTER INSERT OR DELETE OR UPDATE OF partita_iva, region_id ON vendors
        FOR EACH STATEMENT EXECUTE FUNCTION dms.vendor_set_touch();
    FOREACH stmt IN ARRAY creates LOOP
        EXECUTE stmt;
    END LOOP;
END
$$;
-- +goose StatementEnd

-- Markets: held region, comune of that region, code unique per region (the
-- constraint keeps its name, which the registry maps to its 409), at least
-- one market day, and the key the copied columns reference.
ALTER TABLE markets
    DROP CONSTRAINT markets_code_key,
    ADD CONSTRAINT markets_code_key UNIQUE (region_id, code),
    DROP CONSTRAINT markets_check,
    ADD CONSTRAINT markets_comune_check
        CHECK (comune ~ '^[0-9]{6}$' AND left(comune, 3) = province AND coalesce(dms.comune_region(comune), 0) = region_id),
    ALTER COLUMN days SET DEFAULT '{1,2,3,4,5,6,7}',
    DROP CONSTRAINT markets_days_check,
    ADD CONSTRAINT markets_days_check CHECK (days <@ ARRAY[1, 2, 3, 4, 5, 6, 7]::smallint[] AND cardinality(days) BETWEEN 1 AND 7),
    ADD CONSTRAINT markets_region FOREIGN KEY (region_id) REFERENCES dms.shard_regions (region_id),
    ADD CONSTRAINT markets_id_region_comune UNIQUE (id, region_id, comune);

ALTER TABLE stalls
    DROP CONSTRAINT stalls_market_id_fkey,
    ADD CONSTRAINT stalls_market FOREIGN KEY (market_id, region_id, comune) REFERENCES markets (id, region_id, comune),
    ADD CONSTRAINT stalls_id_market UNIQUE (id, market_id);

ALTER TABLE concessions
    DROP CONSTRAINT concessions_market_id_fkey,
    DROP CONSTRAINT concessions_stall_id_fkey,
    ADD CONSTRAINT concessions_market FOREIGN KEY (market_id, region_id, comune) REFERENCES markets (id, region_id, comune),
    ADD CONSTRAINT concessions_stall FOREIGN KEY (stall_id, market_id) REFERENCES stalls (id, market_id),
    ADD CONSTRAINT concessions_vendor_region_check CHECK (vendor_id >> 48 = region_id),
    ADD CONSTRAINT concessions_valid_from_check CHECK (valid_from >= '2000-01-01'),
    ADD CONSTRAINT concessions_valid_to_check CHECK (valid_to <= '2100-12-31');

ALTER TABLE spunta_runs
    DROP CONSTRAINT spunta_runs_market_id_fkey,
    ADD CONSTRAINT spunta_runs_market FOREIGN KEY (market_id, region_id, comune) REFERENCES markets (id, region_id, comune),
    ADD CONSTRAINT spunta_runs_date_check CHECK (date BETWEEN '2000-01-01' AND '2100-12-31');

ALTER TABLE vendors ADD CONSTRAINT vendors_region FOREIGN KEY (region_id) REFERENCES dms.shard_regions (region_id);
ALTER TABLE audit_log ADD CONSTRAINT audit_log_region FOREIGN KEY (region_id) REFERENCES dms.shard_regions (region_id);
ALTER TABLE idempotency_keys ADD CONSTRAINT idempotency_keys_region FOREIGN KEY (region_id) REFERENCES dms.shard_regions (region_id);

-- Check-in and check-out times in the plausible range, in the one CHECK
-- that already compared them (every CHECK costs each writing statement).
ALTER TABLE vendor_presences
    DROP CONSTRAINT vendor_presences_check1,
    ADD CONSTRAINT vendor_presences_checkin_at_check CHECK (
        checkin_at >= '2000-01-01 00:00:00+00' AND checkin_at < '2101-01-01 00:00:00+00'
        AND (checkout_at IS NULL OR (checkout_at >= checkin_at AND checkout_at < '2101-01-01 00:00:00+00')));

-- dms.presence_refs_check refuses a statement's presences whose market is
-- not (id, region_id, comune) or whose stall is not of that market, as seen
-- by the writer. (Their vendor stays checked by the write paths only, as
-- migration 00001 decided for bulk ingest.) It runs as the writer (SECURITY
-- INVOKER) and names every relation with its schema; operators resolve in
-- pg_catalog first. Each distinct market and stall of the statement is
-- looked up once by its primary key (a scalar subquery, never a join: under
-- the narrowing policies the planner expects one market where the region
-- has thousands, and joined the statement's rows to all of them).
-- +goose StatementBegin
CREATE FUNCTION dms.presence_refs_check() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    markets_ok boolean;
    stalls_ok boolean;
BEGIN
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
CREATE TRIGGER presence_refs_insert AFTER INSERT ON vendor_presences
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dms.presence_refs_check();
CREATE TRIGGER presence_refs_update AFTER UPDATE ON vendor_presences
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dms.presence_refs_check();

-- The presences already here pass the same checks.
-- +goose StatementBegin
DO $$
DECLARE
    bypass boolean := (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user);
    t text;
    bad bigint;
BEGIN
    IF NOT bypass THEN
        FOREACH t IN ARRAY ARRAY['vendor_presences', 'markets', 'stalls'] LOOP
            EXECUTE format('ALTER TABLE %I NO FORCE ROW LEVEL SECURITY', t);
        END LOOP;
    END IF;
    SELECT count(*) INTO bad FROM vendor_presences n
    WHERE NOT EXISTS (SELECT FROM markets m WHERE m.id = n.market_id AND m.region_id = n.region_id AND m.comune = n.comune)
       OR (n.stall_id IS NOT NULL AND NOT EXISTS (SELECT FROM stalls s WHERE s.id = n.stall_id AND s.market_id = n.market_id));
    IF bad > 0 THEN
        RAISE EXCEPTION '% presences name a market or stall they do not belong to', bad;
    END IF;
    IF NOT bypass THEN
        FOREACH t IN ARRAY ARRAY['vendor_presences', 'markets', 'stalls'] LOOP
            EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        END LOOP;
    END IF;
END
$$;
-- +goose StatementEnd

-- dms_app updates only what the API changes.
REVOKE UPDATE ON markets, stalls, vendors, concessions, vendor_presences, idempotency_keys, spunta_runs FROM dms_app;
GRANT UPDATE (code, name, comune_name, days, status, cost_per_sqm, updated_at) ON markets TO dms_app;
GRANT UPDATE (number, type, status, area_mq, width_m, depth_m) ON stalls TO dms_app;
GRANT UPDATE (partita_iva, codice_fiscale, denominazione, comune, stato) ON vendors TO dms_app;
GRANT UPDATE (valid_from, valid_to, status) ON concessions TO dms_app;
GRANT UPDATE (stall_id, checkin_at, checkout_at) ON vendor_presences TO dms_app;
GRANT UPDATE (created, response) ON idempotency_keys TO dms_app;
GRANT UPDATE (run_by, run_at, result) ON spunta_runs TO dms_app;

-- dms.ensure_presence_partitions as before, within bounds: the months of
-- 2000..2100 for its owner, and for everyone else (dms_app's partition job)
-- 13 months back to 24 months ahead of today in Europe/Rome.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION dms.ensure_presence_partitions(first date, last date) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    today date := (now() AT TIME ZONE 'Europe/Rome')::date;
    m date := date_trunc('month', first)::date;
    made integer := 0;
    part text;
BEGIN
    IF first < '2000-01-01' OR last > '2100-12-31' THEN
        RAISE EXCEPTION 'presence partitions from % to %: only 2000-01-01 .. 2100-12-31', first, last
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- current_user is the owner here; session_user the role that logged in.
    IF NOT pg_has_role(session_user, current_user, 'MEMBER')
       AND (first < date_trunc('month', today) - interval '13 months' OR last > today + interval '24 months') THEN
        RAISE EXCEPTION 'presence partitions from % to %: % may only ask for 13 months back to 24 months ahead of %',
                first, last, session_user, today
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    WHILE m <= last LOOP
        part := format('vendor_presences_%s', to_char(m, 'YYYY_MM'));
        IF to_regclass('public.' || part) IS NULL THEN
            EXECUTE format('CREATE TABLE public.%I PARTITION OF public.vendor_presences FOR VALUES FROM (%L) TO (%L)',
                           part, m, (m + interval '1 month')::date);
            made := made + 1;
        END IF;
        m := (m + interval '1 month')::date;
    END LOOP;
    RETURN made;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION dms.ensure_presence_partitions(first date, last date) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    m date := date_trunc('month', first)::date;
    made integer := 0;
    part text;
BEGIN
    WHILE m <= last LOOP
        part := format('vendor_presences_%s', to_char(m, 'YYYY_MM'));
        IF to_regclass('public.' || part) IS NULL THEN
            EXECUTE format('CREATE TABLE public.%I PARTITION OF public.vendor_presences FOR VALUES FROM (%L) TO (%L)',
                           part, m, (m + interval '1 month')::date);
            made := made + 1;
        END IF;
        m := (m + interval '1 month')::date;
    END LOOP;
    RETURN made;
END
$$;
-- +goose StatementEnd
REVOKE UPDATE ON markets, stalls, vendors, concessions, vendor_presences, idempotency_keys, spunta_runs FROM dms_app;
GRANT UPDATE ON markets, stalls, vendors, concessions, vendor_presences, idempotency_keys, spunta_runs TO dms_app;
DROP TRIGGER presence_refs_insert ON vendor_presences;
DROP TRIGGER presence_refs_update ON vendor_presences;
DROP FUNCTION dms.presence_refs_check();
ALTER TABLE vendor_presences
    DROP CONSTRAINT vendor_presences_checkin_at_check,
    ADD CONSTRAINT vendor_presences_check1 CHECK (checkout_at IS NULL OR checkout_at >= checkin_at);
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_region;
ALTER TABLE audit_log DROP CONSTRAINT audit_log_region;
ALTER TABLE vendors DROP CONSTRAINT vendors_region;
ALTER TABLE spunta_runs
    DROP CONSTRAINT spunta_runs_date_check,
    DROP CONSTRAINT spunta_runs_market,
    ADD CONSTRAINT spunta_runs_market_id_fkey FOREIGN KEY (market_id) REFERENCES markets (id);
ALTER TABLE concessions
    DROP CONSTRAINT concessions_valid_to_check,
    DROP CONSTRAINT concessions_valid_from_check,
    DROP CONSTRAINT concessions_vendor_region_check,
    DROP CONSTRAINT concessions_stall,
    DROP CONSTRAINT concessions_market,
    ADD CONSTRAINT concessions_market_id_fkey FOREIGN KEY (market_id) REFERENCES markets (id),
    ADD CONSTRAINT concessions_stall_id_fkey FOREIGN KEY (stall_id) REFERENCES stalls (id);
ALTER TABLE stalls
    DROP CONSTRAINT stalls_id_market,
    DROP CONSTRAINT stalls_market,
    ADD CONSTRAINT stalls_market_id_fkey FOREIGN KEY (market_id) REFERENCES markets (id);
ALTER TABLE markets
    DROP CONSTRAINT markets_id_region_comune,
    DROP CONSTRAINT markets_region,
    DROP CONSTRAINT markets_days_check,
    ADD CONSTRAINT markets_days_check CHECK (days <@ ARRAY[1, 2, 3, 4, 5, 6, 7]::smallint[]),
    ALTER COLUMN days SET DEFAULT '{}',
    DROP CONSTRAINT markets_comune_check,
    ADD CONSTRAINT markets_check CHECK (comune ~ '^[0-9]{6}$' AND left(comune, 3) = province),
    DROP CONSTRAINT markets_code_key,
    ADD CONSTRAINT markets_code_key UNIQUE (code);
-- The "C" collation of the code columns stays: it changes no value.
DROP FUNCTION dms.comune_region(text);
DROP TABLE dms.shard_regions;
