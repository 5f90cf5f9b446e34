package pgcluster_test

import (
	"context"
	"fmt"
	"os"
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
	if err := pgcluster.Prepare(ctx, cfg, controlDSN); err != nil {
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
	if err := pgcluster.Prepare(ctx, cfg, controlDSN); err != nil {
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
