-- The control database: which shard serves which region, as numbered
-- epochs, and which epoch each router has applied (issue 11). Shards
-- (servers, DSNs, pools) stay in the configuration file; only the
-- assignments are data here. It is a database of its own, migrated apart
-- from the regional schema and recorded in its own goose table. The region
-- move will add its tables (moves, phases) in later migrations here.

-- +goose Up
CREATE SCHEMA control;

-- An epoch is one complete assignment of the 20 regions; the newest is
-- the current one. Epochs are never changed once written, so a router that
-- applied epoch N serves exactly what epoch N says.
CREATE TABLE control.epochs (
    epoch      bigint PRIMARY KEY CHECK (epoch > 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    note       text NOT NULL DEFAULT ''
);

CREATE TABLE control.assignments (
    epoch     bigint NOT NULL REFERENCES control.epochs ON DELETE CASCADE,
    region_id text NOT NULL CHECK (region_id ~ '^(0[1-9]|1[0-9]|20)$'),
    shard     text NOT NULL CHECK (shard <> ''),
    PRIMARY KEY (epoch, region_id)
);

-- control.current is the newest epoch with its assignments as one row
-- (regions: {"03": "s03", ...}), so that a reader gets a consistent
-- snapshot in one query. No row: nothing has been seeded yet.
CREATE VIEW control.current AS
SELECT e.epoch, e.created_at, e.note,
       (SELECT jsonb_object_agg(a.region_id, a.shard) FROM control.assignments a WHERE a.epoch = e.epoch) AS regions
FROM control.epochs e
ORDER BY e.epoch DESC
LIMIT 1;

-- control.write_epoch writes the assignments regions ({"01": "s01", ...},
-- all 20) as the epoch after expected and notifies dms_assignments with the
-- new epoch, delivered when the caller's transaction commits. It fails with
-- SQLSTATE DMC01 when the current epoch is not expected (another change was
-- written since the caller read it), so a change is always made against
-- what its author saw. Writers take turns on a lock; readers never wait.
-- Which shards exist is the configuration file's business: the writer
-- validates the shard names against it before calling.
-- +goose StatementBegin
CREATE FUNCTION control.write_epoch(expected bigint, regions jsonb, note text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    cur       bigint;
    new_epoch bigint;
    n         int;
BEGIN
    LOCK TABLE control.epochs IN EXCLUSIVE MODE;
    SELECT coalesce(max(epoch), 0) INTO cur FROM control.epochs;
    IF cur <> expected THEN
        RAISE EXCEPTION 'the current epoch is %, not %: the assignments changed meanwhile', cur, expected
            USING ERRCODE = 'DMC01';
    END IF;
    SELECT count(*) INTO n FROM jsonb_object_keys(regions);
    IF n <> 20 THEN
        RAISE EXCEPTION 'an epoch assigns all 20 regions; this one assigns %', n
            USING ERRCODE = '22023';
    END IF;
    new_epoch := cur + 1;
    INSERT INTO control.epochs (epoch, note) VALUES (new_epoch, note);
    INSERT INTO control.assignments (epoch, region_id, shard)
    SELECT new_epoch, r.key, r.value FROM jsonb_each_text(regions) r;
    PERFORM pg_notify('dms_assignments', new_epoch::text);
    RETURN new_epoch;
END
$$;
-- +goose StatementEnd

-- A row per router process: the epoch it applied (0: it serves the
-- file's regions, having never read this database) and when it last
-- polled. A router is live while last_seen is within three of its poll
-- intervals; a change waits for the live routers only. last_error says
-- why a router refused the current epoch (a shard its file lacks).
CREATE TABLE control.routers (
    router_id     text PRIMARY KEY,
    host          text NOT NULL DEFAULT '',
    pid           integer NOT NULL DEFAULT 0,
    started_at    timestamptz NOT NULL DEFAULT now(),
    poll_interval interval NOT NULL,
    epoch_applied bigint NOT NULL DEFAULT 0,
    last_error    text NOT NULL DEFAULT '',
    last_seen     timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP SCHEMA control CASCADE;
