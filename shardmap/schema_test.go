package shardmap

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestSchemaMismatchRole checks that a role the router switches to and its
// cluster lacks, as PostgreSQL reports it (SQLSTATE 22023, `role "x" does
// not exist`), is a schema mismatch, as a missing table is, while other
// invalid parameter values are not; and so is the login role's missing
// right to read dms.shard_regions (the read fence's), but no other refusal.
func TestSchemaMismatchRole(t *testing.T) {
	for _, tc := range []struct {
		code, message string
		want          bool
	}{
		{"22023", `role "` + RowWriter + `" does not exist`, true},
		{"22023", `role "` + RegionReader + `" does not exist`, true},
		{"22023", `role "someone" does not exist`, false},
		{"22023", "presence partitions are kept from 2020 on", false},
		{"42P01", `relation "dms.job_runs" does not exist`, true},
		{"42501", `permission denied for table markets`, false},
		{"42501", `permission denied for table shard_regions`, true},
		{"42501", `new row violates row-level security policy for table "markets"`, false},
	} {
		err := fmt.Errorf("batch: %w", &pgconn.PgError{Code: tc.code, Message: tc.message})
		if got := isSchemaMismatch(err); got != tc.want {
			t.Errorf("isSchemaMismatch(%s %s) = %v, want %v", tc.code, tc.message, got, tc.want)
		}
	}
}
