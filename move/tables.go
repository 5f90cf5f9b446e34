package move

import (
	"fmt"
	"strconv"

	"github.com/dmshub/dmsrouter/regions"
)

// Table is one table that holds a region's rows, as the move publishes,
// counts, hashes and deletes them.
type Table struct {
	// Name is the table's name, schema-qualified.
	Name string
	// Key is the column whose value selects the region: an id that
	// carries the region in its bits 48 and up (regions.IDShift), or
	// region_id itself. It is part of the table's primary key, so a row
	// filter on it is allowed on UPDATE and DELETE (a publication's row
	// filter may use only replica-identity columns).
	Key string
	// Recent, when set, is a column that says when a row was written, in
	// a table whose rows are never changed by a later transaction: the
	// frozen verification hashes only the rows written since the online
	// one, where it would otherwise hash the region's whole key range (a
	// table keyed by region_id is one range, and a busy region's stored
	// Idempotency-Keys run into millions).
	Recent string
	// Partitioned tables are published through their root
	// (publish_via_partition_root), so that each row is sent once, under
	// the root's name, whatever partitions the target has.
	Partitioned bool
}

// Tables are every table that holds a region's rows, in the order their
// rows are deleted from a database that no longer holds the region
// (referencing tables first). TestTablesCoverSchema fails when a migration
// adds a table with a region that is not listed here.
//
// dms.shard_regions is not among them: it is each database's own fence;
// nor are the Unmoved tables.
var Tables = []Table{
	{Name: "public.vendor_presences", Key: "id", Partitioned: true},
	{Name: "public.presence_daily", Key: "market_id"},
	{Name: "public.presence_monthly", Key: "region_id"},
	{Name: "public.spunta_runs", Key: "market_id"},
	{Name: "public.spunta_events", Key: "market_id"},
	{Name: "public.market_days", Key: "market_id"},
	{Name: "public.market_regolamenti", Key: "market_id"},
	{Name: "public.absence_justifications", Key: "concession_id"},
	{Name: "public.concessions", Key: "id"},
	{Name: "public.stalls", Key: "id"},
	{Name: "public.audit_log", Key: "id"},
	{Name: "public.idempotency_keys", Key: "region_id", Recent: "created_at"},
	{Name: "public.region_status_counts", Key: "region_id"},
	{Name: "public.market_day_counts", Key: "region_id"},
	{Name: "public.markets", Key: "id"},
	{Name: "public.authorisations", Key: "id"},
	{Name: "public.vendors", Key: "id"},
	{Name: "dms.move_marks", Key: "region_id"},
}

// ByRegionID reports whether the table's Key is region_id itself.
func (t Table) ByRegionID() bool { return t.Key == "region_id" }

// KeyRange returns the half-open range [lo, hi) of Key values of region r:
// the ids r<<IDShift .. (r+1)<<IDShift, or r..r+1 for region_id.
func (t Table) KeyRange(r regions.Code) (lo, hi int64) {
	n := int64(r.Num())
	if t.ByRegionID() {
		return n, n + 1
	}
	return n << regions.IDShift, (n + 1) << regions.IDShift
}

// Filter returns the SQL condition that selects region r's rows, with
// literal values, as a publication's row filter needs them.
func (t Table) Filter(r regions.Code) string {
	if t.ByRegionID() {
		return fmt.Sprintf("(%s = %d)", t.Key, r.Num())
	}
	lo, hi := t.KeyRange(r)
	return fmt.Sprintf("(%s >= %s AND %s < %s)", t.Key, strconv.FormatInt(lo, 10), t.Key, strconv.FormatInt(hi, 10))
}

// Unmoved are the tables with a region_id that a move leaves where they
// are: every shard database holds a row of every region there, which its
// own triggers write. public.vendor_set_versions is a random stamp of each
// region's set of vendors, replaced in every database's row of all 20
// regions by any vendor write there; copying the source's would collide
// with the target's own row, and a reader only compares stamps read from
// one database, so the target's stamp serves after the switch as well.
var Unmoved = []string{"public.vendor_set_versions"}
