package pgcluster_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/internal/pgcluster"
	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &pg)) }

// TestPrepare readies two shard databases and a control database that do
// not exist, then runs again, as the demo does on every start: the second
// run keeps the rows the first left.
func TestPrepare(t *testing.T) {
	ctx := context.Background()
	cfg := shardmap.Config{Regions: map[string]string{}}
	for _, r := range regions.All() {
		cfg.Regions[string(r.Code)] = "a"
	}
	for _, name := range []string{"a", "b", "control"} {
		db := pgtest.Prefix("prepare_" + name)
		t.Cleanup(func() {
			pg.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)")
		})
		if name != "control" {
			cfg.Shards = append(cfg.Shards, shardmap.ShardConfig{Name: name, Primary: pg.DSN(db, "dms_app"), Admin: pg.AdminDB(db)})
		}
	}
	controlDSN := pg.AdminDB(pgtest.Prefix("prepare_control"))
	if !pgcluster.Running(ctx, cfg) {
		t.Fatal("Running(test server) = false, want true")
	}
	if _, err := pgcluster.Prepare(ctx, cfg, controlDSN); err != nil {
		t.Fatalf("Prepare on new databases: %v", err)
	}
	// The control database holds epoch 1, the regions of cfg.
	if n := count(t, controlDSN, `SELECT count(*) FROM control.assignments WHERE epoch = 1 AND shard = 'a'`); n != 20 {
		t.Errorf("the control database assigns %d regions to shard a in epoch 1 after Prepare, want 20", n)
	}
	pgtest.Exec(t, controlDSN, `SELECT control.write_epoch(1, (SELECT regions FROM control.current), 'kept')`)
	for _, s := range cfg.Shards {
		if n := count(t, s.AdminDSN(), `SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = 'markets'`); n != 1 {
			t.Errorf("shard %s has %d markets tables after Prepare, want 1 (migrated)", s.Name, n)
		}
		pgtest.Exec(t, s.AdminDSN(), `CREATE TABLE kept AS SELECT 1 AS x`)
	}
	if _, err := pgcluster.Prepare(ctx, cfg, controlDSN); err != nil {
		t.Fatalf("Prepare again: %v", err)
	}
	if n := count(t, controlDSN, `SELECT max(epoch) FROM control.epochs`); n != 2 {
		t.Errorf("the control database's epoch is %d after the second Prepare, want the 2 written before it", n)
	}
	for _, s := range cfg.Shards {
		if n := count(t, s.AdminDSN(), `SELECT count(*) FROM kept`); n != 1 {
			t.Errorf("shard %s holds %d rows of the table written before the second Prepare, want 1", s.Name, n)
		}
	}
}

// TestPrepareHolds checks which regions Prepare tells each shard to hold,
// on a shard "a" serving the 20 regions and a spare serving none, as the
// demo's s03b: Prepare runs once on new databases, the case changes them
// (as a move would), and Prepare runs again. The spare is created and
// migrated and holds no region until an epoch gives it one; a source that
// a completed move emptied is not given its region back.
func TestPrepareHolds(t *testing.T) {
	tests := []struct {
		name    string
		control bool
		change  func(tb testing.TB, cfg shardmap.Config, controlDSN string) // between the two runs; nil for none
		want    map[string][]int16                                          // shard -> the regions it holds (owned or not)
		want03  string                                                      // the shard of region 03 in the returned configuration
		wantErr string                                                      // a substring of the second run's error
	}{
		{
			name: "the file's regions, no control database",
			want: map[string][]int16{"a": allRegions(), "spare": nil}, want03: "a",
		},
		{
			name: "the control database's first epoch", control: true,
			want: map[string][]int16{"a": allRegions(), "spare": nil}, want03: "a",
		},
		{
			name: "after a completed move of 03 to the spare", control: true,
			change: func(tb testing.TB, cfg shardmap.Config, controlDSN string) {
				pgtest.Exec(tb, pgtest.Shard(tb, cfg, "spare").AdminDSN(), `INSERT INTO dms.shard_regions (region_id) VALUES (3)`)
				pgtest.Exec(tb, controlDSN, `SELECT control.write_epoch(1, (SELECT regions || '{"03": "spare"}' FROM control.current), 'move 1: region 03 a -> spare')`)
				pgtest.Exec(tb, pgtest.Shard(tb, cfg, "a").AdminDSN(), `DELETE FROM dms.shard_regions WHERE region_id = 3`)
			},
			want:   map[string][]int16{"a": slices.DeleteFunc(allRegions(), func(r int16) bool { return r == 3 }), "spare": {3}},
			want03: "spare",
		},
		{
			name: "an epoch naming a shard the file lacks", control: true,
			change: func(tb testing.TB, cfg shardmap.Config, controlDSN string) {
				pgtest.Exec(tb, controlDSN, `SELECT control.write_epoch(1, (SELECT regions || '{"03": "gone"}' FROM control.current), 'by hand')`)
			},
			wantErr: `"gone"`,
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			cfg := shardmap.Config{Regions: map[string]string{}}
			for _, r := range regions.All() {
				cfg.Regions[string(r.Code)] = "a"
			}
			var controlDSN string
			for _, name := range []string{"a", "spare", "control"} {
				db := pgtest.Prefix(fmt.Sprintf("holds%d_%s", i, name))
				t.Cleanup(func() {
					pg.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)")
				})
				switch {
				case name != "control":
					cfg.Shards = append(cfg.Shards, shardmap.ShardConfig{Name: name, Primary: pg.DSN(db, "dms_app"), Admin: pg.AdminDB(db)})
				case tc.control:
					controlDSN = pg.AdminDB(db)
				}
			}
			if _, err := pgcluster.Prepare(ctx, cfg, controlDSN); err != nil {
				t.Fatalf("Prepare on new databases: %v", err)
			}
			if tc.change != nil {
				tc.change(t, cfg, controlDSN)
			}
			got, err := pgcluster.Prepare(ctx, cfg, controlDSN)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Prepare = %v, want an error containing %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Prepare: %v", err)
			}
			if got.Regions["03"] != tc.want03 {
				t.Errorf("Prepare returned region 03 on shard %q, want %q", got.Regions["03"], tc.want03)
			}
			for shard, want := range tc.want {
				dsn := pgtest.Shard(t, cfg, shard).AdminDSN()
				if n := count(t, dsn, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = 'markets'`); n != 1 {
					t.Errorf("shard %s has %d markets tables after Prepare, want 1 (migrated)", shard, n)
				}
				var held []int16
				if err := pgtest.Connect(t, dsn).QueryRow(ctx, `SELECT coalesce(array_agg(region_id ORDER BY region_id), '{}') FROM dms.shard_regions`).Scan(&held); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(held, want) {
					t.Errorf("shard %s holds regions %v after Prepare, want %v", shard, held, want)
				}
			}
		})
	}
}

// allRegions returns the numbers of the 20 regions, in order.
func allRegions() []int16 {
	var all []int16
	for _, r := range regions.All() {
		all = append(all, int16(r.Code.Num()))
	}
	return all
}

// TestRunning checks that a port nothing listens on is not running.
func TestRunning(t *testing.T) {
	port, err := pgcluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dsn := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/x?sslmode=disable", port)
	cfg := shardmap.Config{Shards: []shardmap.ShardConfig{{Name: "a", Primary: dsn}}}
	if pgcluster.Running(context.Background(), cfg) {
		t.Errorf("Running(nothing on port %d) = true, want false", port)
	}
	if pgcluster.Running(context.Background(), shardmap.Config{}) {
		t.Error("Running(no shards) = true, want false")
	}
}

func count(tb testing.TB, dsn, sql string) int64 {
	tb.Helper()
	var n int64
	if err := pgtest.Connect(tb, dsn).QueryRow(context.Background(), sql).Scan(&n); err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
	return n
}
