package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/migrations"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// DeploymentSecret is the HS256 secret of the configurations Deployment
// builds.
const DeploymentSecret = "pgtest-secret-0123456789abcdef"

// Layout assigns region codes to shard names; every region must appear once.
type Layout map[regions.Code]string

// OnePerRegion is the production layout: shard sNN serves region NN.
func OnePerRegion() Layout {
	l := Layout{}
	for _, r := range regions.All() {
		l[r.Code] = "s" + string(r.Code)
	}
	return l
}

// SingleShard puts all 20 regions on one shard named "all", as today's
// single database does.
func SingleShard() Layout {
	l := Layout{}
	for _, r := range regions.All() {
		l[r.Code] = "all"
	}
	return l
}

// Split puts each region of apart on its shard there and every other
// region on the shard named rest.
func Split(rest string, apart Layout) Layout {
	l := Layout{}
	for _, r := range regions.All() {
		l[r.Code] = rest
	}
	maps.Copy(l, apart)
	return l
}

// Deployment creates one database per shard of layout on the server, named
// prefix_<shard>, migrates them all, and returns a configuration whose
// shards connect as dms_app (the role row-level security binds) with the
// admin DSN set to the server's superuser.
func (s *Server) Deployment(ctx context.Context, prefix string, layout Layout) (shardmap.Config, error) {
	cfg := shardmap.Config{
		Regions: map[string]string{},
		Database: shardmap.DatabaseConfig{
			ConnectTimeout:     2 * time.Second,
			AcquireTimeout:     2 * time.Second,
			StatementTimeout:   10 * time.Second,
			BreakerFailures:    3,
			BreakerOpenTimeout: 2 * time.Second,
		},
	}
	names := map[string][]regions.Code{}
	for r, name := range layout {
		cfg.Regions[string(r)] = name
		names[name] = append(names[name], r)
	}
	var sorted []string
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, name := range sorted {
		db := prefix + "_" + name
		if err := s.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)"); err != nil {
			return cfg, fmt.Errorf("pgcluster: drop %s: %w", db, err)
		}
		if err := s.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
			return cfg, fmt.Errorf("pgcluster: create %s: %w", db, err)
		}
		cfg.Shards = append(cfg.Shards, shardmap.ShardConfig{
			Name:     name,
			Primary:  s.DSN(db, "dms_app"),
			Admin:    s.AdminDB(db),
			MaxConns: 4,
		})
	}
	if err := migrate(ctx, cfg); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

// migrate applies the schema to every shard of cfg as its admin.
func migrate(ctx context.Context, cfg shardmap.Config) error {
	var targets []migrations.Target
	for _, s := range cfg.Shards {
		targets = append(targets, migrations.Target{Name: s.Name, DSN: s.AdminDSN(), Regions: cfg.ShardRegions(s.Name)})
	}
	var errs []error
	for _, r := range migrations.Up(ctx, targets) {
		errs = append(errs, r.Err)
	}
	return errors.Join(errs...)
}

// DropDeployment drops the databases Deployment created for cfg.
func (s *Server) DropDeployment(ctx context.Context, cfg shardmap.Config) error {
	var errs []error
	for _, sh := range cfg.Shards {
		c, err := pgx.ParseConfig(sh.AdminDSN())
		if err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, s.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{c.Database}.Sanitize()+" WITH (FORCE)"))
	}
	return errors.Join(errs...)
}
