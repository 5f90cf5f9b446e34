package pgcluster_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/internal/pgcluster"
	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/shardmap"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &pg)) }

// TestPrepare readies two shard databases that do not exist, then runs
// again, as the demo does on every start: the second run keeps the rows
// the first left.
func TestPrepare(t *testing.T) {
	ctx := context.Background()
	var cfg shardmap.Config
	for _, name := range []string{"a", "b"} {
		db := pgtest.Prefix("prepare_" + name)
		t.Cleanup(func() {
			pg.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)")
		})
		cfg.Shards = append(cfg.Shards, shardmap.ShardConfig{Name: name, Primary: pg.DSN(db, "dms_app"), Admin: pg.AdminDB(db)})
	}
	if !pgcluster.Running(ctx, cfg) {
		t.Fatal("Running(test server) = false, want true")
	}
	if err := pgcluster.Prepare(ctx, cfg); err != nil {
		t.Fatalf("Prepare on new databases: %v", err)
	}
	for _, s := range cfg.Shards {
		if n := count(t, s.AdminDSN(), `SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = 'markets'`); n != 1 {
			t.Errorf("shard %s has %d markets tables after Prepare, want 1 (migrated)", s.Name, n)
		}
		pgtest.Exec(t, s.AdminDSN(), `CREATE TABLE kept AS SELECT 1 AS x`)
	}
	if err := pgcluster.Prepare(ctx, cfg); err != nil {
		t.Fatalf("Prepare again: %v", err)
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
