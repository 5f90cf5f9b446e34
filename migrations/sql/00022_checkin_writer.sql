-- A role for the check-in, whose scope policies read the scope per row.
--
-- dms_app's scope policies read each scope setting in a scalar subquery,
-- `region_id = (SELECT dms.scope_region()) AND comune = coalesce((SELECT
-- dms.scope_text('dms.comune')), comune) ...` (migration 00018), so that a
-- read scanning many rows compares each with a value computed once. Every
-- such subquery is an InitPlan that each execution of a statement starts,
-- runs and shuts down: a check-in, which reads one row each of markets,
-- market days, stalls and concessions and inserts one presence, started 23
-- of them, for a handful of rows. The same policies with the functions
-- called per row (no subquery) start none: the check-in's statement costs
-- 4-13% less PostgreSQL CPU (16 clients to one; BENCHMARKS.md, "Check-ins
-- as dms_writer"), while a page of 50 rows in a comune's scope would pay
-- more per row than the InitPlans save, so reads keep them.
--
-- dms_writer is a role for such single-row writes, as dms_region is for
-- region-wide reads (migration 00005): dms_app switches to it for one
-- transaction (set_config('role', 'dms_writer', true), in the statement
-- that sets the scope); dms_app is NOINHERIT, so it holds none of its
-- rights otherwise. Its policies are dms_app's, each setting read per row:
-- they admit exactly the rows dms_app's admit. It holds exactly the rights
-- a check-in needs: reading markets, market days, stalls, concessions and
-- vendors, inserting and reading presences, inserting audit rows and
-- Idempotency-Keys, drawing their ids, and the fence (migration 00013).
-- vendors, audit_log and idempotency_keys have policies for every role
-- already (vendors' and audit_log's read the region in one InitPlan each);
-- idempotency_keys' restrictive narrowing policy gets its dms_writer twin.
-- RLS stays forced.

-- +goose Up
-- +goose StatementBegin
DO $$
DECLARE
    t text;
BEGIN
    -- Roles and memberships are cluster-wide, and the shards of one cluster
    -- migrate in parallel: as in migration 00005, each step tolerates
    -- another database doing it at the same moment.
    BEGIN
        CREATE ROLE dms_writer NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
    FOR i IN 1..50 LOOP
        EXIT WHEN pg_has_role('dms_app', 'dms_writer', 'MEMBER');
        BEGIN
            GRANT dms_writer TO dms_app;
        EXCEPTION WHEN OTHERS THEN
            PERFORM pg_sleep(0.02);
        END;
    END LOOP;
    IF NOT pg_has_role('dms_app', 'dms_writer', 'MEMBER') THEN
        RAISE EXCEPTION 'could not grant dms_writer to dms_app';
    END IF;

    FOREACH t IN ARRAY ARRAY['market_days', 'stalls', 'concessions', 'vendor_presences'] LOOP
        EXECUTE format($p$CREATE POLICY %I ON %I TO dms_writer
            USING (region_id = dms.scope_region()
               AND left(comune, 3) = coalesce(dms.scope_text('dms.province'), left(comune, 3))
               AND comune = coalesce(dms.scope_text('dms.comune'), comune)
               AND market_id = coalesce(dms.scope_market(), market_id))$p$,
            t || '_writer', t);
    END LOOP;
    FOR r IN 1..20 LOOP
        EXECUTE format('GRANT USAGE ON SEQUENCE dms.vendor_presences_id_%s, dms.audit_log_id_%s TO dms_writer',
            lpad(r::text, 2, '0'), lpad(r::text, 2, '0'));
    END LOOP;
END
$$;
-- +goose StatementEnd
CREATE POLICY markets_writer ON markets TO dms_writer
    USING (region_id = dms.scope_region()
       AND province = coalesce(dms.scope_text('dms.province'), province)
       AND comune = coalesce(dms.scope_text('dms.comune'), comune)
       AND id = coalesce(dms.scope_market(), id));
CREATE POLICY idempotency_keys_narrowing_writer ON idempotency_keys AS RESTRICTIVE TO dms_writer
    USING (narrowing = dms.scope_narrowing());
GRANT USAGE ON SCHEMA dms TO dms_writer;
GRANT SELECT ON markets, market_days, stalls, concessions, vendors TO dms_writer;
GRANT SELECT, INSERT ON vendor_presences TO dms_writer;
GRANT INSERT ON audit_log, idempotency_keys TO dms_writer;
GRANT EXECUTE ON FUNCTION dms.fence(text, boolean) TO dms_writer;

-- +goose Down
-- +goose StatementBegin
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['markets', 'market_days', 'stalls', 'concessions', 'vendor_presences'] LOOP
        EXECUTE format('DROP POLICY %I ON %I', t || '_writer', t);
    END LOOP;
    FOR r IN 1..20 LOOP
        EXECUTE format('REVOKE USAGE ON SEQUENCE dms.vendor_presences_id_%s, dms.audit_log_id_%s FROM dms_writer',
            lpad(r::text, 2, '0'), lpad(r::text, 2, '0'));
    END LOOP;
END
$$;
-- +goose StatementEnd
DROP POLICY idempotency_keys_narrowing_writer ON idempotency_keys;
REVOKE SELECT ON markets, market_days, stalls, concessions, vendors FROM dms_writer;
REVOKE SELECT, INSERT ON vendor_presences FROM dms_writer;
REVOKE INSERT ON audit_log, idempotency_keys FROM dms_writer;
REVOKE EXECUTE ON FUNCTION dms.fence(text, boolean) FROM dms_writer;
REVOKE USAGE ON SCHEMA dms FROM dms_writer;
-- The role and its membership stay: other databases of the cluster may
-- still use them.
