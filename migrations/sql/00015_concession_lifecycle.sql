-- The concession lifecycle (issue 13), run every day on every shard by the
-- router's lifecycle job (package jobs) through dms.concession_lifecycle:
--
--   (a) legal extensions: a title ATTIVA or SOSPESA in force on an
--       extension's in_force_on whose valid_to is before its until gets
--       extended_to = until (L. 214/2023 art. 11 extended the titles in
--       force on 31-12-2023 to 31-12-2025), unless another concession
--       already holds the stall in the extra days (a renewal, a new grant);
--   (b) SCADUTA, set by the system only, once the effective end
--       (coalesce(extended_to, valid_to)) is before today;
--   (c) the proposal of decadenza: an ATTIVA concession whose unjustified
--       absences in the current calendar year (and, in January, the
--       previous one) exceed the market's limit (dms.absence_limit) gets
--       decadenza_proposed_on (the day first proposed) and
--       decadenza_absences; a proposal no longer over the limit (an
--       absence justified since) is cleared. An office confirms it
--       (DECADUTA, through the API). Absences are held days
--       (dms.held_days) of the concession's term, before today, on which
--       its vendor has no presence at the market and no justification.
--
-- Every change writes an audit row (user dms.lifecycle, role system).
-- Only regions the shard owns are touched: a region arriving in a move
-- is written by its source until the switch.
--
-- The job runs as dms_app, which may not write these columns for every
-- region: the function runs as its owner with a fixed search_path. The
-- tables force row-level security on their owner too, whose scope policies
-- match no row without scope settings: like the rollups (00002) and the
-- Idempotency-Key expiry (00008), a policy lets the owner, as which the
-- function runs, read and write what the job needs. dms_app may only ask
-- for today in Europe/Rome (a day either side, for a job that starts
-- around midnight): it cannot expire titles ahead of time.

-- +goose Up
-- +goose StatementBegin
DO $$
BEGIN
    EXECUTE format('CREATE POLICY concessions_lifecycle ON concessions TO %I USING (true) WITH CHECK (true)', current_user);
    EXECUTE format('CREATE POLICY audit_log_lifecycle ON audit_log FOR INSERT TO %I WITH CHECK (true)', current_user);
    EXECUTE format('CREATE POLICY markets_lifecycle ON markets FOR SELECT TO %I USING (true)', current_user);
    EXECUTE format('CREATE POLICY vendor_presences_lifecycle ON vendor_presences FOR SELECT TO %I USING (true)', current_user);
    EXECUTE format('CREATE POLICY market_days_lifecycle ON market_days FOR SELECT TO %I USING (true)', current_user);
    EXECUTE format('CREATE POLICY market_regolamenti_lifecycle ON market_regolamenti FOR SELECT TO %I USING (true)', current_user);
    EXECUTE format('CREATE POLICY absence_justifications_lifecycle ON absence_justifications FOR SELECT TO %I USING (true)', current_user);
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION dms.concession_lifecycle(today date, extensions jsonb)
RETURNS TABLE (extended bigint, expired bigint, proposed bigint, cleared bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
#variable_conflict use_column
DECLARE
    rome date := (now() AT TIME ZONE 'Europe/Rome')::date;
    ext record;
    done bigint;
    -- The calendar years whose absences count: yesterday's, and in
    -- January the one before.
    first_year integer := extract(year FROM today - 1)::integer - CASE WHEN extract(month FROM today) = 1 THEN 1 ELSE 0 END;
BEGIN
    -- current_user is the owner here; session_user the role that logged in.
    IF NOT pg_has_role(session_user, current_user, 'MEMBER') AND today NOT BETWEEN rome - 1 AND rome + 1 THEN
        RAISE EXCEPTION 'concession lifecycle on %: % may only run it for today in Europe/Rome, %', today, session_user, rome
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF jsonb_typeof(coalesce(extensions, '[]')) <> 'array' THEN
        RAISE EXCEPTION 'concession lifecycle: extensions must be a JSON array of {in_force_on, until}'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    extended := 0;

    -- (a) Legal extensions.
    FOR ext IN
        SELECT (e->>'in_force_on')::date AS in_force_on, (e->>'until')::date AS until
        FROM jsonb_array_elements(coalesce(extensions, '[]')) e
    LOOP
        IF ext.in_force_on IS NULL OR ext.until IS NULL OR ext.until <= ext.in_force_on THEN
            RAISE EXCEPTION 'concession lifecycle: extension % .. % is not a period', ext.in_force_on, ext.until
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        WITH old AS (
            SELECT c.* FROM concessions c
            WHERE c.region_id IN (SELECT r.region_id FROM dms.shard_regions r WHERE r.owned)
              AND c.status IN ('ATTIVA', 'SOSPESA')
              AND c.valid_from <= ext.in_force_on AND coalesce(c.extended_to, c.valid_to) >= ext.in_force_on
              AND c.valid_to < ext.until AND (c.extended_to IS NULL OR c.extended_to < ext.until)
              AND NOT EXISTS (
                  SELECT FROM concessions o
                  WHERE o.stall_id = c.stall_id AND o.id <> c.id AND o.status IN ('ATTIVA', 'SOSPESA')
                    AND daterange(o.valid_from, coalesce(o.extended_to, o.valid_to), '[]') && daterange(c.valid_to, ext.until, '(]'))
            FOR UPDATE OF c
        ), upd AS (
            UPDATE concessions t SET extended_to = ext.until FROM old WHERE t.id = old.id RETURNING t.*
        ), audit AS (
            INSERT INTO audit_log (id, region_id, user_sub, role, action, entity, entity_id, before, after)
            SELECT dms.next_id('audit_log', n.region_id), n.region_id, 'dms.lifecycle', 'system', 'update', 'concession', n.id,
                to_jsonb(o), to_jsonb(n) || jsonb_build_object('reason',
                    format('legal extension to %s of the titles in force on %s', ext.until, ext.in_force_on))
            FROM old o JOIN upd n ON n.id = o.id
        )
        SELECT count(*) INTO done FROM upd;
        extended := extended + done;
    END LOOP;

    -- (b) SCADUTA once the effective end has passed.
    WITH old AS (
        SELECT c.* FROM concessions c
        WHERE c.region_id IN (SELECT r.region_id FROM dms.shard_regions r WHERE r.owned)
          AND c.status IN ('ATTIVA', 'SOSPESA') AND coalesce(c.extended_to, c.valid_to) < today
        FOR UPDATE OF c
    ), upd AS (
        UPDATE concessions t SET status = 'SCADUTA' FROM old WHERE t.id = old.id RETURNING t.*
    ), audit AS (
        INSERT INTO audit_log (id, region_id, user_sub, role, action, entity, entity_id, before, after)
        SELECT dms.next_id('audit_log', n.region_id), n.region_id, 'dms.lifecycle', 'system', 'status', 'concession', n.id,
            to_jsonb(o), to_jsonb(n) || jsonb_build_object('reason',
                format('the term ended on %s', coalesce(n.extended_to, n.valid_to)))
        FROM old o JOIN upd n ON n.id = o.id
    )
    SELECT count(*) INTO expired FROM upd;

    -- (c) Decadenza: unjustified absences per calendar year against the limit.
    WITH years AS (
        SELECT y::integer AS y
        FROM generate_series(first_year, extract(year FROM today - 1)::integer) y
    ), terms AS (
        -- Each ATTIVA concession's days in each year, up to yesterday.
        SELECT c.id, c.market_id, c.vendor_id, y.y,
            greatest(c.valid_from, make_date(y.y, 1, 1)) AS first,
            least(coalesce(c.extended_to, c.valid_to), make_date(y.y, 12, 31), today - 1) AS last
        FROM concessions c CROSS JOIN years y
        WHERE c.region_id IN (SELECT r.region_id FROM dms.shard_regions r WHERE r.owned) AND c.status = 'ATTIVA'
    ), spans AS (
        SELECT t.market_id, min(t.first) AS first, max(t.last) AS last FROM terms t WHERE t.first <= t.last GROUP BY t.market_id
    ), held AS (
        -- Each market's held days once, not once per concession.
        SELECT s.market_id, h.d FROM spans s CROSS JOIN LATERAL dms.held_days(s.market_id, s.first, s.last) h (d)
    ), held_n AS (
        SELECT t.id, t.market_id, t.y, count(*) AS n
        FROM terms t JOIN held h ON h.market_id = t.market_id AND h.d BETWEEN t.first AND t.last
        GROUP BY t.id, t.market_id, t.y
    ), present_n AS (
        -- The held days on which the vendor came: its presences at the
        -- market (one a day at most) on days not cancelled. Counted by
        -- joining the presences of the whole period to the terms rather
        -- than probing each held day of each term for a presence.
        SELECT t.id, t.y, count(*) AS n
        FROM terms t JOIN vendor_presences p ON p.market_id = t.market_id AND p.vendor_id = t.vendor_id
        WHERE p.date BETWEEN t.first AND t.last
          AND p.date BETWEEN make_date(first_year, 1, 1) AND today - 1 -- prunes the partitions
          AND NOT EXISTS (SELECT FROM market_days d WHERE d.market_id = p.market_id AND d.date = p.date AND d.status = 'CANCELLED')
        GROUP BY t.id, t.y
    ), justified_n AS (
        -- Justified absences: held days without a presence.
        SELECT t.id, t.y, count(*) AS n
        FROM terms t JOIN absence_justifications j ON j.concession_id = t.id AND j.date BETWEEN t.first AND t.last
        WHERE EXISTS (SELECT FROM held h WHERE h.market_id = t.market_id AND h.d = j.date)
          AND NOT EXISTS (SELECT FROM vendor_presences p WHERE p.market_id = t.market_id AND p.date = j.date AND p.vendor_id = t.vendor_id)
        GROUP BY t.id, t.y
    ), absences AS (
        SELECT h.id, h.market_id, h.y, h.n - coalesce(p.n, 0) - coalesce(j.n, 0) AS n
        FROM held_n h LEFT JOIN present_n p ON p.id = h.id AND p.y = h.y LEFT JOIN justified_n j ON j.id = h.id AND j.y = h.y
    ), limits AS MATERIALIZED (
        -- Once per market and year, not once per concession.
        SELECT k.market_id, k.y, dms.absence_limit(k.market_id, k.y) AS lim
        FROM (SELECT DISTINCT a.market_id, a.y FROM absences a WHERE a.n > 0) k
    ), over AS (
        -- The latest year over the limit.
        SELECT DISTINCT ON (a.id) a.id, a.n
        FROM absences a JOIN limits l ON l.market_id = a.market_id AND l.y = a.y
        WHERE a.n > l.lim
        ORDER BY a.id, a.y DESC
    ), old AS (
        SELECT c.* FROM concessions c LEFT JOIN over v ON v.id = c.id
        WHERE c.region_id IN (SELECT r.region_id FROM dms.shard_regions r WHERE r.owned) AND c.status = 'ATTIVA'
          AND CASE WHEN v.id IS NULL THEN c.decadenza_proposed_on IS NOT NULL
              ELSE c.decadenza_proposed_on IS NULL OR c.decadenza_absences IS DISTINCT FROM v.n END
        FOR UPDATE OF c
    ), upd AS (
        UPDATE concessions t
        SET decadenza_proposed_on = CASE WHEN v.id IS NULL THEN NULL ELSE coalesce(t.decadenza_proposed_on, today) END,
            decadenza_absences = v.n
        FROM old LEFT JOIN over v ON v.id = old.id
        WHERE t.id = old.id
        RETURNING t.*
    ), audit AS (
        INSERT INTO audit_log (id, region_id, user_sub, role, action, entity, entity_id, before, after)
        SELECT dms.next_id('audit_log', n.region_id), n.region_id, 'dms.lifecycle', 'system', 'update', 'concession', n.id,
            to_jsonb(o), to_jsonb(n) || jsonb_build_object('reason', CASE
                WHEN n.decadenza_proposed_on IS NULL THEN 'decadenza proposal withdrawn: the unjustified absences are within the limit'
                ELSE format('decadenza proposed: %s unjustified absences, over the limit', n.decadenza_absences) END)
        FROM old o JOIN upd n ON n.id = o.id
    )
    SELECT count(*) FILTER (WHERE n.decadenza_proposed_on IS NOT NULL AND o.decadenza_proposed_on IS NULL),
        count(*) FILTER (WHERE n.decadenza_proposed_on IS NULL)
    INTO proposed, cleared
    FROM old o JOIN upd n ON n.id = o.id;

    RETURN NEXT;
END
$$;
-- +goose StatementEnd
REVOKE EXECUTE ON FUNCTION dms.concession_lifecycle(date, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dms.concession_lifecycle(date, jsonb) TO dms_app;

-- +goose Down
DROP FUNCTION dms.concession_lifecycle(date, jsonb);
DROP POLICY concessions_lifecycle ON concessions;
DROP POLICY audit_log_lifecycle ON audit_log;
DROP POLICY markets_lifecycle ON markets;
DROP POLICY vendor_presences_lifecycle ON vendor_presences;
DROP POLICY market_days_lifecycle ON market_days;
DROP POLICY market_regolamenti_lifecycle ON market_regolamenti;
DROP POLICY absence_justifications_lifecycle ON absence_justifications;
