-- The fence of issue 11's online region move (docs/architecture.md#22):
-- every shard database says which of the regions it holds it serves, and
-- every scoped transaction the router starts checks it inside the round
-- trip that sets its scope, so that a router with stale assignments can
-- neither read a region's rows from a database that no longer serves it
-- nor write them there.
--
--   * dms.shard_regions.owned (migration 00010): the region is served
--     here. A move's target holds the region unowned while the copy
--     arrives; its source holds it unowned after the switch, until its
--     rows are deleted.
--   * dms.shard_regions.frozen: the region is being switched; its reads go
--     on, its writes are refused.
--   * dms.fence(region, for_write) raises SQLSTATE DMF01 when the region is
--     not served here and DMF02 when a write meets a frozen region. A write
--     takes a share lock on the region's row until its transaction ends, so
--     the move's UPDATE that freezes the region waits exactly for the
--     region's writes already running, and a write that queued behind that
--     UPDATE re-reads the row and is refused (READ COMMITTED re-checks a
--     locked row's newest version). Reads take no lock.
--   * dms.move_marks is the move's position marker: the move writes a
--     region's mark on the source, replication carries it, and once the
--     target shows it every change committed before it is applied there.
--     Only the owner (the move) uses it.

-- +goose Up
ALTER TABLE dms.shard_regions ADD COLUMN frozen boolean NOT NULL DEFAULT false;

CREATE TABLE dms.move_marks (
    region_id smallint PRIMARY KEY CHECK (region_id BETWEEN 1 AND 20),
    mark      bigint NOT NULL,
    marked_at timestamptz NOT NULL DEFAULT now()
);

-- dms.fence runs as its owner (a write's row lock needs UPDATE rights,
-- which dms_app must not have on this table) with a fixed search_path.
-- +goose StatementBegin
CREATE FUNCTION dms.fence(region text, for_write boolean) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r smallint := region::smallint;
    is_owned boolean;
    is_frozen boolean;
BEGIN
    IF for_write THEN
        SELECT s.owned, s.frozen INTO is_owned, is_frozen FROM dms.shard_regions s WHERE s.region_id = r FOR SHARE;
    ELSE
        SELECT s.owned, s.frozen INTO is_owned, is_frozen FROM dms.shard_regions s WHERE s.region_id = r;
    END IF;
    IF is_owned IS NOT TRUE THEN
        RAISE EXCEPTION 'region % is not served by database %', region, current_database()
            USING ERRCODE = 'DMF01', HINT = 'the region moved: reload the assignments';
    END IF;
    IF for_write AND is_frozen THEN
        RAISE EXCEPTION 'region % is frozen for a move: its writes wait until the switch ends', region
            USING ERRCODE = 'DMF02', HINT = 'retry after a second';
    END IF;
END
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION dms.fence(text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dms.fence(text, boolean) TO dms_app, dms_region;

-- +goose Down
DROP FUNCTION dms.fence(text, boolean);
DROP TABLE dms.move_marks;
ALTER TABLE dms.shard_regions DROP COLUMN frozen;
