-- Walls around the principal: whose Idempotency-Keys replay, and who may
-- change a vendor.
--
-- An Idempotency-Key belonged to (region, user, key): a second token with
-- the same subject but another role or territory could replay the first
-- one's response, before any scoped read, and so read a row outside its own
-- territory. A key now belongs to the whole principal: its role and
-- territory join the primary key (the router passes them), and every key
-- records the narrowing of the scope it was stored in (province, comune,
-- market, set by default from the transaction's settings), which a
-- restrictive policy requires to be the current one. A key of another
-- territory is simply another key. Keys stored before this migration have
-- no role or territory, so they no longer replay (they expire as before).
--
-- Vendors are the region's registry: every office of the region reads them
-- and may register one. Changing one is narrower: under a province, comune
-- or market scope, only the vendors registered in that province, comune or
-- the market's comune may be updated, and stay there (a restrictive UPDATE
-- policy, which also guards SELECT ... FOR UPDATE); and only a regional or
-- national scope may change a vendor's stato, which decides whether it may
-- check in anywhere in the region (a trigger, as a policy cannot see the
-- old row). Both apply to dms_app whatever the permissive policies allow.

-- +goose Up
-- +goose StatementBegin
-- dms.scope_narrowing returns the transaction's province, comune and
-- market settings as one text, '//' for a whole region.
CREATE FUNCTION dms.scope_narrowing() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(dms.scope_text('dms.province'), '') || '/' || coalesce(dms.scope_text('dms.comune'), '')
        || '/' || coalesce(dms.scope_text('dms.market'), '')
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- dms.vendor_in_scope reports whether a vendor registered in vendor_comune lies in
-- the transaction's province, comune or market (the market's comune).
CREATE FUNCTION dms.vendor_in_scope(vendor_comune text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT (dms.scope_text('dms.province') IS NULL OR left(vendor_comune, 3) = dms.scope_text('dms.province'))
       AND (dms.scope_text('dms.comune') IS NULL OR vendor_comune = dms.scope_text('dms.comune'))
       AND (dms.scope_market() IS NULL
            OR vendor_comune = (SELECT m.comune FROM public.markets m WHERE m.id = dms.scope_market()))
$$;
-- +goose StatementEnd

ALTER TABLE idempotency_keys
    ADD COLUMN role text NOT NULL DEFAULT '',
    ADD COLUMN territory text NOT NULL DEFAULT '',
    ADD COLUMN narrowing text NOT NULL DEFAULT dms.scope_narrowing(),
    DROP CONSTRAINT idempotency_keys_pkey,
    ADD CONSTRAINT idempotency_keys_pkey PRIMARY KEY (region_id, user_sub, role, territory, key);
ALTER TABLE idempotency_keys ALTER COLUMN role DROP DEFAULT, ALTER COLUMN territory DROP DEFAULT;

CREATE POLICY idempotency_keys_narrowing ON idempotency_keys AS RESTRICTIVE TO dms_app
    USING (narrowing = (SELECT dms.scope_narrowing()));

-- vendors_update_scope narrows which vendors a scope may update, and to
-- what: those registered in its province, comune or market's comune.
CREATE POLICY vendors_update_scope ON vendors AS RESTRICTIVE FOR UPDATE TO dms_app
    USING (dms.vendor_in_scope(comune))
    WITH CHECK (dms.vendor_in_scope(comune));

-- +goose StatementBegin
-- dms.vendor_stato_guard refuses a change of a vendor's stato under a
-- province, comune or market scope.
CREATE FUNCTION dms.vendor_stato_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF dms.scope_narrowing() <> '//' THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege', CONSTRAINT = 'vendors_stato_scope',
            MESSAGE = 'only a regional or national scope may change the stato of a vendor';
    END IF;
    RETURN NEW;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER vendors_stato_scope BEFORE UPDATE OF stato ON vendors
    FOR EACH ROW WHEN (NEW.stato IS DISTINCT FROM OLD.stato) EXECUTE FUNCTION dms.vendor_stato_guard();

-- +goose Down
DROP TRIGGER vendors_stato_scope ON vendors;
DROP FUNCTION dms.vendor_stato_guard();
DROP POLICY vendors_update_scope ON vendors;
DROP FUNCTION dms.vendor_in_scope(text);
DROP POLICY idempotency_keys_narrowing ON idempotency_keys;
-- The same key of one user under several principals becomes one key again:
-- keep the oldest.
DELETE FROM idempotency_keys a USING idempotency_keys b
WHERE a.region_id = b.region_id AND a.user_sub = b.user_sub AND a.key = b.key
  AND (a.created_at, a.ctid) > (b.created_at, b.ctid);
ALTER TABLE idempotency_keys
    DROP CONSTRAINT idempotency_keys_pkey,
    ADD CONSTRAINT idempotency_keys_pkey PRIMARY KEY (region_id, user_sub, key),
    DROP COLUMN narrowing,
    DROP COLUMN territory,
    DROP COLUMN role;
DROP FUNCTION dms.scope_narrowing();
