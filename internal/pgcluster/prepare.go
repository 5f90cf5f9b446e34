package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/shardmap"
)

// adminConfig is the connection as cfg's first shard's admin to the
// server's postgres database, which exists before any shard database does.
func adminConfig(cfg shardmap.Config) (*pgx.ConnConfig, error) {
	if len(cfg.Shards) == 0 {
		return nil, errors.New("pgcluster: the configuration has no shards")
	}
	admin, err := pgx.ParseConfig(cfg.Shards[0].AdminDSN())
	if err != nil {
		return nil, fmt.Errorf("pgcluster: shard %s: %w", cfg.Shards[0].Name, err)
	}
	admin.Database = "postgres"
	return admin, nil
}

// Running reports whether a server answers, within a second, as the admin
// of cfg's first shard on its address.
func Running(ctx context.Context, cfg shardmap.Config) bool {
	admin, err := adminConfig(cfg)
	if err != nil {
		return false
	}
	admin.ConnectTimeout = time.Second
	conn, err := pgx.ConnectConfig(ctx, admin)
	if err != nil {
		return false
	}
	conn.Close(context.Background())
	return true
}

// Prepare creates the databases of cfg's shards that do not exist yet,
// connected as the first shard's admin to the server's postgres database,
// and migrates every shard. Unlike Deployment it keeps what exists: it is
// how the demo readies its shards on every run. All shards must live on
// that one server.
func Prepare(ctx context.Context, cfg shardmap.Config) error {
	admin, err := adminConfig(cfg)
	if err != nil {
		return err
	}
	conn, err := pgx.ConnectConfig(ctx, admin)
	if err != nil {
		return fmt.Errorf("pgcluster: connect as %s: %w", admin.User, err)
	}
	defer conn.Close(context.Background())
	for _, s := range cfg.Shards {
		c, err := pgx.ParseConfig(s.AdminDSN())
		if err != nil {
			return fmt.Errorf("pgcluster: shard %s: %w", s.Name, err)
		}
		var exists bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`, c.Database).Scan(&exists); err != nil {
			return fmt.Errorf("pgcluster: database %s: %w", c.Database, err)
		}
		if exists {
			continue
		}
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{c.Database}.Sanitize()); err != nil {
			return fmt.Errorf("pgcluster: create database %s: %w", c.Database, err)
		}
	}
	return migrate(ctx, cfg)
}
