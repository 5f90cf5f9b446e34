-- A check-in's statement started 37 row-level security InitPlans, one per
-- scalar subquery of the scope policies it meets (markets, market_days,
-- concessions, vendor_presences: seven each, as every narrowing read its
-- setting twice, `(SELECT s) IS NULL OR col = (SELECT s)`), and starting
-- them was about a fifth of PostgreSQL's CPU per check-in (BENCHMARKS.md,
-- "Writes and ingest"). Each setting is now read once per policy:
-- `col = coalesce((SELECT s), col)` admits exactly the rows the old form
-- admitted, since every column a policy narrows by is NOT NULL (a NULL
-- would compare unknown where the old form let it through). The region
-- stays `region_id = (SELECT dms.scope_region())`, which an index can use;
-- the narrowings never could (they were ORs, they are coalesces).
-- The region-wide rollups (presence_monthly, region_status_counts) admit a
-- row only without any narrowing: one call of dms.scope_narrowing(), which
-- is '//' exactly when the three settings are unset.
-- The policies stay TO dms_app and RLS stays forced; dms_region's
-- `_region` policies and the owner's are unchanged.

-- +goose Up
-- +goose StatementBegin
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['stalls', 'concessions', 'vendor_presences', 'presence_daily',
            'market_regolamenti', 'market_days', 'absence_justifications', 'spunta_events'] LOOP
        EXECUTE format('DROP POLICY %I ON %I', t || '_scope', t);
        EXECUTE format($p$CREATE POLICY %I ON %I TO dms_app
            USING (region_id = (SELECT dms.scope_region())
               AND left(comune, 3) = coalesce((SELECT dms.scope_text('dms.province')), left(comune, 3))
               AND comune = coalesce((SELECT dms.scope_text('dms.comune')), comune)
               AND market_id = coalesce((SELECT dms.scope_market()), market_id))$p$,
            t || '_scope', t);
    END LOOP;
    FOREACH t IN ARRAY ARRAY['presence_monthly', 'region_status_counts'] LOOP
        EXECUTE format('DROP POLICY %I ON %I', t || '_scope', t);
        EXECUTE format($p$CREATE POLICY %I ON %I TO dms_app
            USING (region_id = (SELECT dms.scope_region()) AND (SELECT dms.scope_narrowing()) = '//')$p$,
            t || '_scope', t);
    END LOOP;
END
$$;
-- +goose StatementEnd
DROP POLICY markets_scope ON markets;
CREATE POLICY markets_scope ON markets TO dms_app
    USING (region_id = (SELECT dms.scope_region())
       AND province = coalesce((SELECT dms.scope_text('dms.province')), province)
       AND comune = coalesce((SELECT dms.scope_text('dms.comune')), comune)
       AND id = coalesce((SELECT dms.scope_market()), id));

-- +goose Down
-- +goose StatementBegin
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['stalls', 'concessions', 'vendor_presences', 'presence_daily',
            'market_regolamenti', 'market_days', 'absence_justifications', 'spunta_events'] LOOP
        EXECUTE format('DROP POLICY %I ON %I', t || '_scope', t);
        EXECUTE format($p$CREATE POLICY %I ON %I TO dms_app
            USING (region_id = (SELECT dms.scope_region())
               AND ((SELECT dms.scope_text('dms.province')) IS NULL OR left(comune, 3) = (SELECT dms.scope_text('dms.province')))
               AND ((SELECT dms.scope_text('dms.comune')) IS NULL OR comune = (SELECT dms.scope_text('dms.comune')))
               AND ((SELECT dms.scope_market()) IS NULL OR market_id = (SELECT dms.scope_market())))$p$,
            t || '_scope', t);
    END LOOP;
    FOREACH t IN ARRAY ARRAY['presence_monthly', 'region_status_counts'] LOOP
        EXECUTE format('DROP POLICY %I ON %I', t || '_scope', t);
        EXECUTE format($p$CREATE POLICY %I ON %I TO dms_app
            USING (region_id = (SELECT dms.scope_region())
               AND (SELECT dms.scope_text('dms.province')) IS NULL
               AND (SELECT dms.scope_text('dms.comune')) IS NULL
               AND (SELECT dms.scope_market()) IS NULL)$p$, t || '_scope', t);
    END LOOP;
END
$$;
-- +goose StatementEnd
DROP POLICY markets_scope ON markets;
CREATE POLICY markets_scope ON markets TO dms_app
    USING (region_id = (SELECT dms.scope_region())
       AND ((SELECT dms.scope_text('dms.province')) IS NULL OR province = (SELECT dms.scope_text('dms.province')))
       AND ((SELECT dms.scope_text('dms.comune')) IS NULL OR comune = (SELECT dms.scope_text('dms.comune')))
       AND ((SELECT dms.scope_market()) IS NULL OR id = (SELECT dms.scope_market())));
