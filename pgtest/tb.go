package pgtest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/shardmap"
)

// NewDeployment creates a migrated deployment of layout on srv, its
// databases named after name and this process (Prefix), and drops it when
// tb ends. It fails tb if the deployment cannot be built.
func NewDeployment(tb testing.TB, srv *Server, name string, layout Layout) shardmap.Config {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg, err := srv.Deployment(ctx, Prefix(name), layout)
	if err != nil {
		tb.Fatalf("deployment %s: %v", name, err)
	}
	tb.Cleanup(func() { srv.DropDeployment(context.Background(), cfg) })
	return cfg
}

// OpenMap opens the shard map of cfg with default options and closes it
// when tb ends.
func OpenMap(tb testing.TB, cfg shardmap.Config) *shardmap.Map {
	tb.Helper()
	m, err := shardmap.Open(cfg, shardmap.Options{})
	if err != nil {
		tb.Fatalf("open shard map: %v", err)
	}
	tb.Cleanup(m.Close)
	return m
}

// Connect opens a connection to dsn (usually a shard's AdminDSN, outside
// row-level security) that is closed when tb ends.
func Connect(tb testing.TB, dsn string) *pgx.Conn {
	tb.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// Exec runs sql with args on a connection of its own to dsn and fails tb
// on an error.
func Exec(tb testing.TB, dsn, sql string, args ...any) {
	tb.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		tb.Fatalf("exec %q: %v", sql, err)
	}
}

// Shard returns cfg's shard named name and fails tb when there is none.
func Shard(tb testing.TB, cfg shardmap.Config, name string) shardmap.ShardConfig {
	tb.Helper()
	s, ok := cfg.Shard(name)
	if !ok {
		tb.Fatalf("no shard %q", name)
	}
	return s
}

// Lock takes an ACCESS EXCLUSIVE lock on table, as a migration's DDL does,
// on a connection of its own to dsn (a superuser's), and holds it until
// release is called or tb ends.
func Lock(tb testing.TB, dsn, table string) (release func()) {
	tb.Helper()
	ctx := context.Background()
	tx, err := Connect(tb, dsn).Begin(ctx)
	if err != nil {
		tb.Fatalf("begin: %v", err)
	}
	release = func() { tx.Rollback(ctx) }
	tb.Cleanup(release)
	if _, err := tx.Exec(ctx, "LOCK TABLE "+pgx.Identifier{table}.Sanitize()+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		tb.Fatalf("lock %s: %v", table, err)
	}
	return release
}
