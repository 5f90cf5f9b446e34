package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/dmshub/dmsrouter/config"
	"github.com/dmshub/dmsrouter/internal/cli"
	"github.com/dmshub/dmsrouter/migrations"
)

// migrateCmd applies the schema to every shard (up) or prints each shard's
// version (status).
func migrateCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "up" && args[0] != "status") {
		return errors.New("usage: dmsrouter migrate up|status --config F")
	}
	fs := cli.NewFlags("dmsrouter", "migrate "+args[0], stderr)
	path := fs.String("config", "configs/dev.yaml", "configuration file")
	if err := cli.ParseArgs(fs, args[1:]); err != nil {
		return err
	}
	cfg, err := config.Load(*path, getenv)
	if err != nil {
		return err
	}
	var targets []migrations.Target
	for _, s := range cfg.ShardMap.Shards {
		targets = append(targets, migrations.Target{Name: s.Name, DSN: s.AdminDSN()})
	}
	var results []migrations.Result
	if args[0] == "up" {
		results = migrations.Up(ctx, targets)
	} else {
		results = migrations.Status(ctx, targets)
	}
	return printMigrations(stdout, results)
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
