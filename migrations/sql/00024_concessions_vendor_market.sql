-- Every row of a batch (POST /v1/presences/batch), and every check-in,
-- looks up the concession of its vendor in its market
-- (registry.rowConcessionSQL: vendor_id = ? AND market_id = ?, then the
-- term and the status). The only indexes were concessions_vendor
-- (vendor_id, id) and concessions_market (market_id, id): the generic plan
-- read every concession of the vendor through a bitmap and each one's row
-- in the table (two rows on two pages per batch row at full scale),
-- about a fifth of the batch statement's CPU on Lombardia (30 of 155 ms
-- for 10,000 rows, the lookup removed; BENCHMARKS.md, "Issue 14 on a
-- quiet machine, again"). With both keys in one index the lookup reads
-- only the vendor's concessions in that market, usually none or one: the
-- statement cost 15-18 ms less there. Where each vendor holds a single
-- concession (dmsdev ingest's data) it gains nothing.
-- concessions_vendor stays: it orders a vendor's concessions by id for
-- the vendor's list.
--
-- CREATE INDEX locks out writes to concessions (rare: offices' decisions
-- and the lifecycle job) while it builds, not reads.

-- +goose Up
CREATE INDEX concessions_vendor_market ON concessions (vendor_id, market_id);

-- +goose Down
DROP INDEX concessions_vendor_market;
