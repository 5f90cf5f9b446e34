package migrations_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/dmshub/dmsrouter/migrations"
	"github.com/dmshub/dmsrouter/pgtest"
)

// spellingsVersion is the migration that spells every enumerated value in
// upper case and renames vendors.stato to status.
const spellingsVersion = 12

// TestSpellings migrates a database holding every stall status, market
// status and stall type down before 00012 and up again: each way every
// value is spelled the way that version's CHECK constraints want, the
// vendors' column has that version's name, and region_status_counts stays
// equal to a count of the rows.
func TestSpellings(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewDeployment(t, pg, "spellings", pgtest.SingleShard()).Shards[0].AdminDSN()
	admin := pgtest.Connect(t, dsn)
	if _, err := admin.Exec(ctx, fmt.Sprintf(statusFixture, "ARRAY[3, 12]")); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, `UPDATE markets SET status = 'INACTIVE' WHERE code LIKE '%1'; UPDATE stalls SET type = 'SPUNTA' WHERE number = 3`); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		name    string
		migrate func(context.Context, string, int64) error
		version int64
		column  string   // the vendors' status column
		values  []string // every market status, stall status and stall type, sorted
	}{
		{"down", migrations.DownTo, spellingsVersion - 1, "stato",
			[]string{"active", "fisso", "inactive", "libero", "occupato", "riservato", "spunta"}},
		{"up", migrations.UpTo, spellingsVersion, "status",
			[]string{"ACTIVE", "FISSO", "INACTIVE", "LIBERO", "OCCUPATO", "RISERVATO", "SPUNTA"}},
	} {
		if err := step.migrate(ctx, dsn, step.version); err != nil {
			t.Fatalf("%s to %d: %v", step.name, step.version, err)
		}
		var values []string
		err := admin.QueryRow(ctx, `SELECT array_agg(DISTINCT v ORDER BY v) FROM (
			SELECT status FROM markets UNION ALL SELECT status FROM stalls UNION ALL SELECT type FROM stalls) x(v)`).Scan(&values)
		if err != nil || !slices.Equal(values, step.values) {
			t.Errorf("%s to %d: values %v (%v), want %v", step.name, step.version, values, err, step.values)
		}
		var n int64
		if err := admin.QueryRow(ctx, `SELECT count(`+step.column+`) FROM vendors`).Scan(&n); err != nil || n != 2 {
			t.Errorf("%s to %d: count(vendors.%s) = %d (%v), want 2", step.name, step.version, step.column, n, err)
		}
		checkStatusCounts(t, admin, step.name)
		var stale int64
		if err := admin.QueryRow(ctx, `SELECT count(*) FROM region_status_counts WHERE entity = 'stalls' AND status <> ALL ($1)`, step.values).Scan(&stale); err != nil || stale != 0 {
			t.Errorf("%s to %d: %d status counts of the other spelling are left (%v)", step.name, step.version, stale, err)
		}
		// The CHECK constraints take this version's spelling of a new row
		// and its default.
		_, err = admin.Exec(ctx, `INSERT INTO stalls (id, region_id, market_id, comune, number, type, area_mq)
			SELECT dms.next_id('stalls', 3::smallint), 3, id, comune, 100 + $2::int, $1, 9 FROM markets WHERE region_id = 3 LIMIT 1`,
			step.values[1], step.version)
		if err != nil {
			t.Errorf("%s to %d: insert a %s stall: %v", step.name, step.version, step.values[1], err)
		}
	}
}
