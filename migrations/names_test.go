package migrations_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/migrations"
	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/regions"
)

// adminConn returns a superuser connection to a fresh single-shard
// deployment named name.
func adminConn(t *testing.T, name string) *pgx.Conn {
	t.Helper()
	return pgtest.Connect(t, pgtest.NewDeployment(t, pg, name, pgtest.SingleShard()).Shards[0].AdminDSN())
}

// TestIDLayout holds the id layout of package regions (MakeID, IDSQL) and
// the sequence names of IDSequence to what dms.next_id does.
func TestIDLayout(t *testing.T) {
	ctx := context.Background()
	conn := adminConn(t, "ids")
	for _, tt := range []struct {
		table  string
		region regions.Code
	}{
		{"markets", "01"}, {"markets", "03"}, {"vendors", "12"}, {"vendor_presences", "20"}, {"audit_log", "09"},
	} {
		for seq := int64(1); seq <= 2; seq++ {
			var id int64
			if err := conn.QueryRow(ctx, `SELECT dms.next_id($1, $2)`, tt.table, int16(tt.region.Num())).Scan(&id); err != nil {
				t.Fatal(err)
			}
			if want := regions.MakeID(tt.region, seq); id != want {
				t.Errorf("dms.next_id(%s, %s) #%d = %d, want MakeID = %d", tt.table, tt.region, seq, id, want)
			}
			if r, err := regions.IDRegion(id); err != nil || r != tt.region {
				t.Errorf("IDRegion(%d) = %s, %v, want %s", id, r, err, tt.region)
			}
		}
		// dms.next_id draws from the sequence IDSequence names.
		var next int64
		if err := conn.QueryRow(ctx, `SELECT nextval($1::regclass)`, migrations.IDSequence(tt.table, tt.region)).Scan(&next); err != nil || next != 3 {
			t.Errorf("nextval(%s) = %d, %v, want 3 after two ids", migrations.IDSequence(tt.table, tt.region), next, err)
		}
	}
	for _, tt := range []struct {
		region regions.Code
		seq    int64
	}{{"01", 1}, {"03", 12345}, {"20", regions.MaxSeq}} {
		var id int64
		sql := `SELECT ` + regions.IDSQL("$1::smallint", "$2::bigint")
		if err := conn.QueryRow(ctx, sql, int16(tt.region.Num()), tt.seq).Scan(&id); err != nil {
			t.Fatal(err)
		}
		if want := regions.MakeID(tt.region, tt.seq); id != want {
			t.Errorf("%s with (%s, %d) = %d, want MakeID = %d", sql, tt.region, tt.seq, id, want)
		}
	}
}

// TestPresencePartitionNames holds PresencePartition and
// PresencePartitionSQL to the partitions dms.ensure_presence_partitions
// makes, and to their bounds.
func TestPresencePartitionNames(t *testing.T) {
	ctx := context.Background()
	conn := adminConn(t, "partitions")
	var made int
	if err := conn.QueryRow(ctx, `SELECT dms.ensure_presence_partitions('2031-11-20', '2032-02-01')`).Scan(&made); err != nil || made != 4 {
		t.Fatalf("ensure_presence_partitions made %d partitions (%v), want 4", made, err)
	}
	for _, day := range []string{"2031-11-30", "2031-12-01", "2032-01-15", "2032-02-29"} {
		d, _ := time.Parse(time.DateOnly, day)
		name := migrations.PresencePartition(d)
		var fromSQL, holder string
		err := conn.QueryRow(ctx, `SELECT `+migrations.PresencePartitionSQL("$1::date")+`,
			(SELECT c.relname FROM pg_class c JOIN pg_inherits i ON i.inhrelid = c.oid
			 WHERE i.inhparent = 'vendor_presences'::regclass
			   AND pg_get_expr(c.relpartbound, c.oid) = format('FOR VALUES FROM (%L) TO (%L)',
			       date_trunc('month', $1::date)::date, (date_trunc('month', $1::date) + interval '1 month')::date))`,
			d).Scan(&fromSQL, &holder)
		if err != nil {
			t.Fatal(err)
		}
		if name != fromSQL || name != holder {
			t.Errorf("day %s: PresencePartition = %s, PresencePartitionSQL = %s, the partition holding it is %s", day, name, fromSQL, holder)
		}
	}
}
