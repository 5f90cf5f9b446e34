package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dmshub/dmsrouter/config"
	"github.com/dmshub/dmsrouter/control"
	"github.com/dmshub/dmsrouter/internal/cli"
	"github.com/dmshub/dmsrouter/migrations"
	"github.com/dmshub/dmsrouter/shardmap"
)

// migrateCmd applies the schema to every shard (up) or prints each shard's
// version (status), and does the same for the control database when the
// configuration has one (up also seeds its first epoch from the file's
// regions, and migrates it first: the shards then hold the regions of its
// current epoch).
func migrateCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := cli.SubcommandFlags("dmsrouter", "migrate up|status", migrateSubcommands, stderr)
	path := fs.String("config", "configs/dev.yaml", "configuration file")
	if err := cli.ParseSubcommand(fs, "migrate", []string{"up", "status"}, args); err != nil {
		return err
	}
	cfg, err := config.Load(*path, getenv)
	if err != nil {
		return err
	}
	var results []migrations.Result
	var ctl *control.Result
	if args[0] == "up" {
		// With a control database, the regions each shard holds are its
		// current epoch's: the file's seed epoch 1 only, so that a stale
		// file never makes a shard that gave a region away hold it again.
		// When it fails, the shards are migrated and hold nothing new.
		held := cfg.ShardMap
		if cfg.Control.Enabled() {
			r := control.Migrate(ctx, cfg.Control.DSN, cfg.ShardMap.Regions)
			ctl = &r
			held.Regions = r.Regions
		}
		results = migrations.Up(ctx, shardTargets(held))
	} else {
		results = migrations.Status(ctx, shardTargets(cfg.ShardMap))
		if cfg.Control.Enabled() {
			r := control.Status(ctx, cfg.Control.DSN)
			ctl = &r
		}
	}
	return printMigrations(stdout, cfg.ShardMap, results, ctl)
}

// shardTargets lists the shards of cfg to migrate, each with the regions
// the shard map gives it (with a control database, its current epoch's),
// which migrations.Up records in the shard.
func shardTargets(cfg shardmap.Config) []migrations.Target {
	var targets []migrations.Target
	for _, s := range cfg.Shards {
		targets = append(targets, migrations.Target{Name: s.Name, DSN: s.AdminDSN(), Regions: cfg.ShardRegions(s.Name)})
	}
	return targets
}

const migrateSubcommands = `  up      apply the pending migrations to every shard (and the control database,
          seeding its first epoch from the file's regions; each shard then holds
          the regions of the control database's current epoch)
  status  print each shard's version (and the control database's, with its epoch)
`

// printMigrations writes one line per shard: its name, the regions it
// holds, its version, the latest version this binary embeds, and its state
// or the error that stopped it; then, when ctl is not nil, the control
// database's line, with its current epoch in the regions column (the
// shards' regions are then its assignments). When a database failed it
// returns an error that sums them up (the lines hold the detail), with a
// hint when none could be reached at all.
func printMigrations(w io.Writer, cfg shardmap.Config, results []migrations.Result, ctl *control.Result) error {
	latest, err := migrations.Latest()
	if err != nil {
		return err
	}
	assigned := cfg.Regions
	if ctl != nil && ctl.Err == nil && ctl.Epoch > 0 {
		assigned = ctl.Regions
	}
	held := map[string][]string{}
	for code, shard := range assigned {
		held[shard] = append(held[shard], code)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SHARD\tREGIONS\tVERSION\tLATEST\tSTATE")
	failed, unreachable := 0, 0
	for _, r := range results {
		version, state := migrationState(r, latest)
		if r.Err != nil {
			failed++
			if isConnectError(r.Err) {
				unreachable++
			}
		}
		codes := held[r.Name]
		slices.Sort(codes)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", r.Name, strings.Join(codes, ","), version, latest, state)
	}
	var ctlErr error
	if ctl != nil {
		ctlLatest, err := migrations.ControlLatest()
		if err != nil {
			return err
		}
		version, state := migrationState(ctl.Result, ctlLatest)
		epoch := "-"
		switch {
		case ctl.Err != nil:
			ctlErr = errors.New("the control database failed (see its line above)")
		case ctl.Epoch > 0:
			epoch = fmt.Sprintf("epoch %d", ctl.Epoch)
		case ctl.Version == ctlLatest:
			state = "no assignments yet: run migrate up"
		}
		if ctl.Seeded {
			state += "; seeded epoch 1 from the file's regions"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", "control", epoch, version, ctlLatest, state)
		if ctl.Err != nil && isConnectError(ctl.Err) && unreachable == len(results) {
			ctlErr = nil // the hint below covers it
		}
	}
	tw.Flush()
	switch {
	case failed == 0:
		return ctlErr
	case unreachable == len(results) && ctlErr == nil:
		return errors.New("no shard answered: is PostgreSQL running? make demo starts the local cluster")
	}
	return errors.Join(fmt.Errorf("%d of %d shards failed (see their lines above)", failed, len(results)), ctlErr)
}

// migrationState returns the version and the state column of a database's
// line: up to date, pending, what this run applied, or the error.
func migrationState(r migrations.Result, latest int64) (version, state string) {
	version, state = strconv.FormatInt(r.Version, 10), "up to date"
	switch {
	case r.Err != nil:
		msg := strings.TrimPrefix(r.Err.Error(), "migrate "+r.Name+": ")
		version, state = "-", "error: "+strings.ReplaceAll(msg, "\n", " ")
	case r.Version < latest:
		state = fmt.Sprintf("%d pending: run migrate up", latest-r.Version)
	case r.Applied > 0:
		state = fmt.Sprintf("up to date: applied %d (was at %d)", r.Applied, r.Before)
	}
	return version, state
}

// isConnectError reports whether err is a failure to connect at all.
func isConnectError(err error) bool {
	var ce *pgconn.ConnectError
	return errors.As(err, &ce)
}
