-- The national summary counts each region's active markets on every
-- uncached request. Without an index on the status that count reads the
-- region's whole markets table (0.5 to 0.7 ms for Lombardia's 1,331 active
-- of 1,360 markets, the largest part of its summary leg); an index-only
-- scan of (region_id, status) reads only index entries. Markets change
-- rarely, so their pages stay all-visible and the scan seldom visits the
-- table.

-- +goose Up
CREATE INDEX markets_region_status ON markets (region_id, status);

-- +goose Down
DROP INDEX markets_region_status;
