package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"

	"github.com/dmshub/dmsrouter/migrations"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// migrateCmd applies the schema to every shard (up) or prints each shard's
// version (status).
func migrateCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "up" && args[0] != "status") {
		return errors.New("usage: dmsrouter migrate up|status --config F")
	}
	fs := newFlags("migrate "+args[0], stderr)
	path := fs.String("config", "configs/dev.yaml", "configuration file")
	if err := parseArgs(fs, args[1:]); err != nil {
		return err
	}
	cfg, err := shardmap.Load(*path, getenv)
	if err != nil {
		return err
	}
	targets := shardTargets(cfg)
	var results []migrations.Result
	if args[0] == "up" {
		results = migrations.Up(ctx, targets)
	} else {
		results = migrations.Status(ctx, targets)
	}
	return printMigrations(stdout, results)
}

// shardTargets returns the migration targets of cfg's shards, each with the
// regions cfg assigns to it.
func shardTargets(cfg shardmap.Config) []migrations.Target {
	held := map[string][]regions.Code{}
	for code, shard := range cfg.Regions {
		held[shard] = append(held[shard], regions.Code(code))
	}
	var targets []migrations.Target
	for _, s := range cfg.Shards {
		slices.Sort(held[s.Name])
		targets = append(targets, migrations.Target{Name: s.Name, DSN: s.AdminDSN(), Regions: held[s.Name]})
	}
	return targets
}

func printMigrations(w io.Writer, results []migrations.Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SHARD\tVERSION\tLATEST\tAPPLIED\tSTATUS")
	var errs []error
	for _, r := range results {
		status := "up to date"
		switch {
		case r.Err != nil:
			status = "error: " + r.Err.Error()
			errs = append(errs, r.Err)
		case r.Version < r.Latest:
			status = fmt.Sprintf("%d pending", r.Latest-r.Version)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", r.Name, r.Version, r.Latest, r.Applied, status)
	}
	tw.Flush()
	return errors.Join(errs...)
}
