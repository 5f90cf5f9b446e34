package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/control"
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

// Prepare creates the databases of cfg's shards that do not exist yet, and
// the control database at controlDSN unless it is empty, connected as the
// first shard's admin to the server's postgres database; it migrates the
// control database and seeds its first epoch from cfg's regions when it has
// none, then migrates every shard. Unlike Deployment it keeps what exists:
// it is how the demo readies its databases on every run. All of them must
// live on that one server. A shard that serves no region (a move's spare)
// is created and migrated, and holds none.
//
// Prepare returns cfg with the regions the shards serve: with a control
// database, its current epoch, not the file's, so that after an online
// move each shard is told to hold the regions it serves now, and a source
// a completed move emptied is not given its region back. It returns an
// error when that epoch names a shard cfg lacks.
func Prepare(ctx context.Context, cfg shardmap.Config, controlDSN string) (shardmap.Config, error) {
	admin, err := adminConfig(cfg)
	if err != nil {
		return cfg, err
	}
	conn, err := pgx.ConnectConfig(ctx, admin)
	if err != nil {
		return cfg, fmt.Errorf("pgcluster: connect as %s: %w", admin.User, err)
	}
	defer conn.Close(context.Background())
	dsns := map[string]string{} // what for -> DSN
	for _, s := range cfg.Shards {
		dsns["shard "+s.Name] = s.AdminDSN()
	}
	if controlDSN != "" {
		dsns["the control database"] = controlDSN
	}
	for what, dsn := range dsns {
		c, err := pgx.ParseConfig(dsn)
		if err != nil {
			return cfg, fmt.Errorf("pgcluster: %s: %w", what, err)
		}
		var exists bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`, c.Database).Scan(&exists); err != nil {
			return cfg, fmt.Errorf("pgcluster: database %s: %w", c.Database, err)
		}
		if exists {
			continue
		}
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{c.Database}.Sanitize()); err != nil {
			return cfg, fmt.Errorf("pgcluster: create database %s: %w", c.Database, err)
		}
	}
	if controlDSN != "" {
		r := control.Migrate(ctx, controlDSN, cfg.Regions)
		if r.Err != nil {
			return cfg, fmt.Errorf("pgcluster: %w", r.Err)
		}
		for code, name := range r.Regions {
			if _, ok := cfg.Shard(name); !ok {
				return cfg, fmt.Errorf("pgcluster: the control database's epoch %d puts region %s on shard %q, which the file does not define", r.Epoch, code, name)
			}
		}
		cfg.Regions, cfg.Epoch = r.Regions, r.Epoch
	}
	return cfg, migrate(ctx, cfg)
}

// Adopt returns the server that answers as cfg's first shard's admin when
// it runs from the data directory StartAt keeps under dir: a cluster that
// an earlier run started and did not stop (its terminal was closed, say).
// Stop then stops it and keeps dir, as for a server StartAt started. It
// returns nil and no error when the server runs from another directory.
func Adopt(ctx context.Context, cfg shardmap.Config, dir string) (*Server, error) {
	admin, err := adminConfig(cfg)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, admin)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: connect as %s: %w", admin.User, err)
	}
	defer conn.Close(context.Background())
	var running string
	if err := conn.QueryRow(ctx, "SHOW data_directory").Scan(&running); err != nil {
		return nil, fmt.Errorf("pgcluster: data directory of the server: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if !sameDir(running, filepath.Join(abs, "data")) {
		return nil, nil
	}
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	s := &Server{Host: admin.Host, Port: int(admin.Port), dir: abs, bin: bin}
	if os.Geteuid() == 0 {
		s.owner = "postgres" // as StartAt
	}
	s.AdminDSN = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.Port)
	return s, nil
}

// sameDir reports whether paths a and b name the same directory.
func sameDir(a, b string) bool {
	ia, errA := os.Stat(a)
	ib, errB := os.Stat(b)
	if errA != nil || errB != nil {
		return filepath.Clean(a) == filepath.Clean(b)
	}
	return os.SameFile(ia, ib)
}
