package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dmshub/dmsrouter/config"
	"github.com/dmshub/dmsrouter/internal/cli"
	"github.com/dmshub/dmsrouter/migrations"
	"github.com/dmshub/dmsrouter/shardmap"
)

// migrateCmd applies the schema to every shard (up) or prints each shard's
// version (status).
func migrateCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("dmsrouter", "migrate up|status", stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s [flags]\n\n%s\nflags:\n", fs.Name(), migrateSubcommands)
		fs.PrintDefaults()
	}
	path := fs.String("config", "configs/dev.yaml", "configuration file")
	if err := parseMigrateArgs(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*path, getenv)
	if err != nil {
		return err
	}
	targets := shardTargets(cfg.ShardMap)
	var results []migrations.Result
	if args[0] == "up" {
		results = migrations.Up(ctx, targets)
	} else {
		results = migrations.Status(ctx, targets)
	}
	return printMigrations(stdout, cfg.ShardMap, results)
}

const migrateSubcommands = `  up      apply the pending migrations to every shard
  status  print each shard's version
`

// shardTargets lists the shards of cfg to migrate, each with the regions
// the shard map gives it, which migrations.Up records in the shard.
func shardTargets(cfg shardmap.Config) []migrations.Target {
	var targets []migrations.Target
	for _, s := range cfg.Shards {
		targets = append(targets, migrations.Target{Name: s.Name, DSN: s.AdminDSN(), Regions: cfg.ShardRegions(s.Name)})
	}
	return targets
}

// parseMigrateArgs parses migrate's arguments: up or status, then flags.
// help, -h and --help return the usage (cli.ParseArgs's help error).
func parseMigrateArgs(fs *flag.FlagSet, args []string) error {
	switch {
	case len(args) > 0 && (args[0] == "up" || args[0] == "status"):
		return cli.ParseArgs(fs, args[1:])
	case len(args) > 0 && args[0] == "help":
		return cli.ParseArgs(fs, []string{"-h"})
	case len(args) == 0 || strings.HasPrefix(args[0], "-"):
		if err := cli.ParseArgs(fs, args); err != nil {
			return err
		}
		return errors.New("migrate: no subcommand given: want up or status (dmsrouter migrate --help)")
	}
	return fmt.Errorf("migrate: unknown subcommand %q: want up or status (dmsrouter migrate --help)", args[0])
}

// printMigrations writes one line per shard: its name, the regions it
// holds, its version, the latest version this binary embeds, and its state
// or the error that stopped it. When a shard failed it returns an error
// that sums them up (the lines hold the detail), with a hint when no shard
// could be reached at all.
func printMigrations(w io.Writer, cfg shardmap.Config, results []migrations.Result) error {
	latest, err := migrations.Latest()
	if err != nil {
		return err
	}
	held := map[string][]string{}
	for code, shard := range cfg.Regions {
		held[shard] = append(held[shard], code)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SHARD\tREGIONS\tVERSION\tLATEST\tSTATE")
	failed, unreachable := 0, 0
	for _, r := range results {
		version, state := strconv.FormatInt(r.Version, 10), "up to date"
		switch {
		case r.Err != nil:
			failed++
			var ce *pgconn.ConnectError
			if errors.As(r.Err, &ce) {
				unreachable++
			}
			msg := strings.TrimPrefix(r.Err.Error(), "migrate "+r.Name+": ")
			version, state = "-", "error: "+strings.ReplaceAll(msg, "\n", " ")
		case r.Version < latest:
			state = fmt.Sprintf("%d pending: run migrate up", latest-r.Version)
		case r.Applied > 0:
			state = fmt.Sprintf("up to date: applied %d (was at %d)", r.Applied, r.Before)
		}
		codes := held[r.Name]
		slices.Sort(codes)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", r.Name, strings.Join(codes, ","), version, latest, state)
	}
	tw.Flush()
	switch {
	case failed == 0:
		return nil
	case unreachable == len(results):
		return errors.New("no shard answered: is PostgreSQL running? make demo starts the local cluster")
	}
	return fmt.Errorf("%d of %d shards failed (see their lines above)", failed, len(results))
}
