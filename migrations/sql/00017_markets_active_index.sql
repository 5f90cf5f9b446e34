-- The national summary counts each region's active markets on every
-- uncached request. On a database that holds one region (a shard),
-- markets_region_status (00006) matches every row on region_id, and the
-- planner estimates its index-only scan as dear as reading the table
-- (46.9 against 46.4 for Lombardia), so the leg's generic plan reads the
-- table: 1,360 rows. A partial index of the active markets alone is
-- smaller, its index-only scan is the cheapest path, and it cuts
-- Lombardia's summary leg from 0.48 to 0.39 ms of database CPU
-- (BENCHMARKS.md, "CPU per uncached fan-out"). Markets change rarely, so
-- the index costs writes next to nothing and the pages stay all-visible.
-- markets_region_status stays: the lists of markets filter by status.

-- +goose Up
CREATE INDEX markets_region_active ON markets (region_id) WHERE status = 'ACTIVE';

-- +goose Down
DROP INDEX markets_region_active;
