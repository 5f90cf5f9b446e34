package migrations

import (
	"fmt"
	"time"

	"github.com/dmshub/dmsrouter/regions"
)

// The names of the schema's per-month and per-region objects, for the Go
// code that writes to them or asks for them. The migrations' SQL functions
// make them (dms.ensure_presence_partitions, dms.next_id); the tests hold
// the two to the same names.

// PresencePartition returns the name of the monthly partition of
// vendor_presences that holds day: vendor_presences_YYYY_MM.
func PresencePartition(day time.Time) string {
	return "vendor_presences_" + day.Format("2006_01")
}

// PresencePartitionSQL returns an SQL expression of the name that
// PresencePartition gives the day of the SQL date expression date.
func PresencePartitionSQL(date string) string {
	return "format('vendor_presences_%s', to_char(" + date + ", 'YYYY_MM'))"
}

// IDSequence returns the sequence that dms.next_id draws the id sequence
// numbers of table in region r from, such as dms.vendor_presences_id_03.
func IDSequence(table string, r regions.Code) string {
	return fmt.Sprintf("dms.%s_id_%02d", table, r.Num())
}
