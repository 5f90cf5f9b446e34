-- The router's partition job (package jobs) runs as dms_app, which owns no
-- table and so cannot create partitions itself: the function that makes them
-- runs as its owner, with a fixed search_path, and dms_app may call it.

-- +goose Up
ALTER FUNCTION dms.ensure_presence_partitions(date, date) SECURITY DEFINER SET search_path = pg_catalog, public;
GRANT EXECUTE ON FUNCTION dms.ensure_presence_partitions(date, date) TO dms_app;

-- +goose Down
REVOKE EXECUTE ON FUNCTION dms.ensure_presence_partitions(date, date) FROM dms_app;
ALTER FUNCTION dms.ensure_presence_partitions(date, date) SECURITY INVOKER RESET search_path;
