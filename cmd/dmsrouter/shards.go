package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/config"
	"github.com/dmshub/dmsrouter/control"
	"github.com/dmshub/dmsrouter/internal/cli"
	"github.com/dmshub/dmsrouter/regions"
)

const shardsSubcommands = `  apply   assign the regions of --regions FILE as a new epoch in the control
          database, after showing what changes; every router follows it
  status  print each shard's state, schema version, freezes, regions and standbys,
          the epoch, the routers and the moves, asking the databases (no router needed)
`

// shardsCmd changes the region assignments by hand (apply): it validates
// the regions file against the configuration's shards, shows the diff
// against the current epoch, asks (or takes --yes), writes the next epoch
// and waits, bounded by --wait, until every live router has applied it.
// An invalid file, a refusal, or a change written meanwhile writes nothing.
// status is cli.ShardsStatus.
func shardsCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "status" {
		return cli.ShardsStatus(ctx, args[1:], getenv, stdout, stderr)
	}
	fs := cli.SubcommandFlags("dmsrouter", "shards apply|status", shardsSubcommands, stderr)
	path := fs.String("config", "configs/dev.yaml", "configuration file: its shards and its control database")
	regionsFile := fs.String("regions", "", `YAML file of the new assignments, regions: {"01": s01, ...}, all 20 (required)`)
	yes := fs.Bool("yes", false, "apply without asking (required when stdin is not a terminal)")
	wait := fs.Duration("wait", 10*time.Second, "how long to wait for every live router to apply the new epoch")
	if err := cli.ParseSubcommand(fs, "shards", []string{"apply", "status"}, args); err != nil {
		return err
	}
	if *regionsFile == "" {
		return errors.New(`shards apply: --regions is required: a YAML file regions: {"01": s01, ...} of all 20 regions`)
	}
	cfg, err := config.Load(*path, getenv)
	if err != nil {
		return err
	}
	if !cfg.Control.Enabled() {
		return fmt.Errorf("shards apply: %s has no control block, so its regions block assigns the regions: edit it and send serve SIGHUP", *path)
	}
	next, err := config.LoadRegions(*regionsFile)
	if err != nil {
		return fmt.Errorf("shards apply: %w; nothing was written", err)
	}
	sm := cfg.ShardMap
	sm.Regions = next
	if err := sm.Validate(); err != nil {
		return fmt.Errorf("shards apply: regions file %s, against the shards of %s:\n%w\nnothing was written", *regionsFile, *path, err)
	}

	conn, err := pgx.Connect(ctx, cfg.Control.DSN)
	if err != nil {
		return fmt.Errorf("shards apply: control database: %w", err)
	}
	defer conn.Close(context.Background())
	cur, err := control.Current(ctx, conn)
	if err != nil {
		return fmt.Errorf("shards apply: %w", err)
	}
	var diff []string
	for _, r := range regions.All() {
		if from, to := cur.Regions[string(r.Code)], next[string(r.Code)]; from != to {
			diff = append(diff, fmt.Sprintf("  %s %s: %s -> %s", r.Code, r.Name, from, to))
		}
	}
	if len(diff) == 0 {
		fmt.Fprintf(stdout, "epoch %d assigns these regions already: nothing to apply\n", cur.Epoch)
		return nil
	}
	fmt.Fprintf(stdout, "epoch %d -> %d:\n%s\n", cur.Epoch, cur.Epoch+1, strings.Join(diff, "\n"))
	if !*yes {
		if err := cli.Confirm(stdout, fmt.Sprintf("write epoch %d?", cur.Epoch+1)); err != nil {
			return fmt.Errorf("shards apply: %w; nothing was written", err)
		}
	}
	epoch, err := control.WriteEpoch(ctx, conn, cur.Epoch, next, applyNote(*regionsFile))
	if errors.Is(err, control.ErrEpochChanged) {
		return fmt.Errorf("shards apply: %w; nothing was written: run it again to see the diff against the new epoch", err)
	}
	if err != nil {
		return fmt.Errorf("shards apply: %w", err)
	}
	fmt.Fprintf(stdout, "epoch %d written; waiting up to %s for the live routers to apply it\n", epoch, *wait)

	wctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	applied := 0
	behind, err := control.WaitApplied(wctx, conn, epoch, 100*time.Millisecond, func(r control.Router) {
		applied++
		fmt.Fprintf(stdout, "  %s (%s, pid %d) applied epoch %d\n", r.ID, r.Host, r.PID, r.EpochApplied)
	})
	switch {
	case err == nil && applied == 0:
		fmt.Fprintf(stdout, "no live router is recorded: each router applies epoch %d when it starts\n", epoch)
		return nil
	case err == nil:
		fmt.Fprintf(stdout, "every live router applied epoch %d (%d)\n", epoch, applied)
		return nil
	case len(behind) == 0:
		return fmt.Errorf("shards apply: epoch %d is written; waiting for the routers: %w", epoch, err)
	}
	for _, r := range behind {
		line := fmt.Sprintf("  %s (%s, pid %d) still serves epoch %d", r.ID, r.Host, r.PID, r.EpochApplied)
		if r.LastError != "" {
			line += ": " + r.LastError
		}
		fmt.Fprintln(stdout, line)
	}
	return fmt.Errorf("shards apply: epoch %d is written, but %d live router(s) had not applied it after %s (see above)", epoch, len(behind), *wait)
}

// applyNote is the note of an epoch written by hand: who, where, from
// which file.
func applyNote(file string) string {
	who := "unknown"
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("shards apply by %s@%s from %s", who, host, filepath.Base(file))
}
