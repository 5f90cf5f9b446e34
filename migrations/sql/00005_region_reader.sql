-- Region-wide reads under a policy the planner can estimate.
--
-- The scope policies of 00001 and 00002 narrow a region by the optional
-- settings dms.province, dms.comune and dms.market: "setting IS NULL OR
-- column = setting". The planner cannot know that a setting is null, so it
-- estimates every such term as selective and expects about one row where a
-- region-wide read returns thousands. Deep pages of a region's markets then
-- scan and sort the whole region instead of walking the (region_id, name,
-- id) index: 1 to 6 ms against 0.2 ms at 1,360 markets.
--
-- dms_region is a role for reads whose scope is a whole region (regional
-- principals and the legs of national fan-outs). Its policies compare the
-- region only. The router's reads switch to it for the one transaction
-- (set_config('role', 'dms_region', true), in the same batch as the scope
-- settings) when the scope has no province, comune or market; every other
-- read and every write stays dms_app under the narrowing policies.
--
-- dms_app becomes NOINHERIT, so it holds dms_region's policies and grants
-- only after switching to it: without the switch its own narrowing
-- policies apply as before. dms_region may only read.

-- +goose Up
-- +goose StatementBegin
DO $$
DECLARE
    t text;
BEGIN
    -- Roles and memberships are cluster-wide, and the shards of one cluster
    -- migrate in parallel: each step tolerates another database doing it at
    -- the same moment, and retries when the catalog row changed under it.
    BEGIN
        CREATE ROLE dms_region NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
    FOR i IN 1..50 LOOP
        EXIT WHEN NOT (SELECT rolinherit FROM pg_roles WHERE rolname = 'dms_app');
        BEGIN
            ALTER ROLE dms_app NOINHERIT;
        EXCEPTION WHEN OTHERS THEN
            PERFORM pg_sleep(0.02);
        END;
    END LOOP;
    IF (SELECT rolinherit FROM pg_roles WHERE rolname = 'dms_app') THEN
        RAISE EXCEPTION 'could not make dms_app NOINHERIT';
    END IF;
    FOR i IN 1..50 LOOP
        EXIT WHEN pg_has_role('dms_app', 'dms_region', 'MEMBER');
        BEGIN
            GRANT dms_region TO dms_app;
        EXCEPTION WHEN OTHERS THEN
            PERFORM pg_sleep(0.02);
        END;
    END LOOP;
    IF NOT pg_has_role('dms_app', 'dms_region', 'MEMBER') THEN
        RAISE EXCEPTION 'could not grant dms_region to dms_app';
    END IF;

    -- The narrowing policies apply to dms_app only; dms_region gets a
    -- region-only policy for reading each table they guard. The policies of
    -- vendors and vendor_set_versions are region-only, for every role,
    -- already. dms_region cannot read audit_log or idempotency_keys.
    FOREACH t IN ARRAY ARRAY['markets', 'stalls', 'concessions', 'vendor_presences',
            'presence_daily', 'presence_monthly', 'region_status_counts', 'spunta_runs'] LOOP
        EXECUTE format('ALTER POLICY %I ON %I TO dms_app', t || '_scope', t);
        EXECUTE format('CREATE POLICY %I ON %I FOR SELECT TO dms_region USING (region_id = (SELECT dms.scope_region()))',
            t || '_region', t);
    END LOOP;
    FOREACH t IN ARRAY ARRAY['markets', 'stalls', 'concessions', 'vendor_presences', 'vendors',
            'presence_daily', 'presence_monthly', 'region_status_counts', 'vendor_set_versions', 'spunta_runs'] LOOP
        EXECUTE format('GRANT SELECT ON %I TO dms_region', t);
    END LOOP;
END
$$;
-- +goose StatementEnd
GRANT USAGE ON SCHEMA dms TO dms_region;

-- +goose Down
-- +goose StatementBegin
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['markets', 'stalls', 'concessions', 'vendor_presences',
            'presence_daily', 'presence_monthly', 'region_status_counts', 'spunta_runs'] LOOP
        EXECUTE format('DROP POLICY %I ON %I', t || '_region', t);
        EXECUTE format('ALTER POLICY %I ON %I TO PUBLIC', t || '_scope', t);
    END LOOP;
    FOREACH t IN ARRAY ARRAY['markets', 'stalls', 'concessions', 'vendor_presences', 'vendors',
            'presence_daily', 'presence_monthly', 'region_status_counts', 'vendor_set_versions', 'spunta_runs'] LOOP
        EXECUTE format('REVOKE SELECT ON %I FROM dms_region', t);
    END LOOP;
END
$$;
-- +goose StatementEnd
REVOKE USAGE ON SCHEMA dms FROM dms_region;
-- The role and dms_app's NOINHERIT stay: other databases of the cluster may
-- still use them.
