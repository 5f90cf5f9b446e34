-- The national list of markets orders each region's markets by name in byte
-- order (COLLATE "C"), the order in which the router merges the regions,
-- whatever the database's collation; markets_region_name, in the database's
-- collation, serves the regional list's order but not that one, so each
-- page of the national list read and sorted every market of the region.
-- With this index it reads one page's rows in order.

-- +goose Up
CREATE INDEX markets_region_name_bytes ON markets (region_id, name COLLATE "C", id);

-- +goose Down
DROP INDEX markets_region_name_bytes;
