-- The router's Idempotency-Key expiry job (package jobs) runs as dms_app,
-- which may not delete keys itself: like the partition job's function
-- (00004), the function that deletes them runs as its owner, with a fixed
-- search_path, and dms_app may call it. idempotency_keys forces row-level
-- security on its owner too, whose scope policy matches no row without scope
-- settings: a second policy, as on the rollups (00002), lets the owner, as
-- which the function runs, expire the keys of every region and user.

-- +goose Up
ALTER FUNCTION dms.expire_idempotency_keys(interval) SECURITY DEFINER SET search_path = pg_catalog, public;
GRANT EXECUTE ON FUNCTION dms.expire_idempotency_keys(interval) TO dms_app;
-- +goose StatementBegin
DO $$
BEGIN
    EXECUTE format('CREATE POLICY idempotency_keys_maintain ON idempotency_keys TO %I USING (true) WITH CHECK (true)', current_user);
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP POLICY idempotency_keys_maintain ON idempotency_keys;
REVOKE EXECUTE ON FUNCTION dms.expire_idempotency_keys(interval) FROM dms_app;
ALTER FUNCTION dms.expire_idempotency_keys(interval) SECURITY INVOKER RESET search_path;
