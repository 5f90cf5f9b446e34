package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/dmshub/dmsrouter/config"
	"github.com/dmshub/dmsrouter/move"
	"github.com/dmshub/dmsrouter/regions"
)

const regionSubcommands = `  move      move --region to the shard --to, online: preflight, copy, catch up,
            verify, freeze and switch (--dry-run: the plan and the checks only)
  rollback  switch a moved region back to its source, losing no write
  complete  end a move: drop its replication, delete the region's rows from the source
  abort     end a move before its switch: remove all it created
  status    print the moves, the routers and orphaned replication objects
`

// regionFlags returns the flags subcommand sub of region takes.
func regionFlags(sub string) []string {
	switch sub {
	case "move":
		return []string{"config", "region", "to", "dry-run", "max-freeze", "yes"}
	case "rollback":
		return []string{"config", "region", "max-freeze", "yes"}
	case "status":
		return []string{"config", "region"}
	}
	return []string{"config", "region", "yes"}
}

// Region runs `prog region move|rollback|complete|abort|status`, the
// online move of a region to another shard (package move). Every
// subcommand that changes something shows what it will do and asks on a
// terminal, unless --yes; each fails (exit non-zero) when its step fails,
// and running it again continues from the phase the control database
// recorded.
func Region(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := SubcommandFlags("dmsrouter", "region move|rollback|complete|abort|status", regionSubcommands, stderr)
	path := fs.String("config", "configs/dev.yaml", "configuration file: its shards and its control database")
	code := fs.String("region", "", "the region's code, such as 05 (required but for status)")
	to := fs.String("to", "", "move: the target shard, one of the file's shards")
	dryRun := fs.Bool("dry-run", false, "move: print the plan and the preflight checks, create nothing")
	maxFreeze := fs.Duration("max-freeze", move.DefaultMaxFreeze, "move, rollback: the longest the region's writes may be frozen; a switch that takes longer is undone")
	yes := fs.Bool("yes", false, "do it without asking (required when stdin is not a terminal)")
	subs := []string{"move", "rollback", "complete", "abort", "status"}
	if err := ParseSubcommand(fs, "region", subs, args); err != nil {
		return err
	}
	sub := args[0]
	if err := onlyFlags(fs, sub, regionFlags(sub)); err != nil {
		return err
	}
	var r regions.Code
	if *code != "" || sub != "status" {
		var err error
		if r, err = regions.ParseCode(*code); err != nil {
			return fmt.Errorf("region %s: --region: %w", sub, err)
		}
	}
	if sub == "move" && *to == "" {
		return errors.New("region move: --to is required: the shard to move the region to")
	}
	cfg, err := config.Load(*path, getenv)
	if err != nil {
		return err
	}
	if !cfg.Control.Enabled() {
		return fmt.Errorf("region %s: %s has no control block: a region moves only with the assignments in a control database", sub, *path)
	}
	m := move.New(cfg.ShardMap, cfg.Control.DSN, move.Options{MaxFreeze: *maxFreeze, Out: stdout, Terminal: isTerminal(stdout)})
	ask := func(question string) error {
		if *yes {
			return nil
		}
		return Confirm(stdout, question)
	}
	switch sub {
	case "move":
		return regionMove(ctx, m, r, *to, *dryRun, ask, stdout)
	case "status":
		st, err := m.Status(ctx, r)
		if err != nil {
			return fmt.Errorf("region status: %w", err)
		}
		return st.Print(stdout)
	}
	rec, err := m.Active(ctx, r)
	if err != nil {
		return fmt.Errorf("region %s: %w", sub, err)
	}
	fmt.Fprintf(stdout, "move %d: region %s (%s) %s -> %s, phase %s\n", rec.ID, r, r.Name(), rec.Source, rec.Target, rec.Phase)
	var removed []move.Removed
	switch sub {
	case "rollback":
		if err := ask(fmt.Sprintf("switch region %s back to %s and delete its rows from %s?", r, rec.Source, rec.Target)); err != nil {
			return fmt.Errorf("region rollback: %w; nothing was changed", err)
		}
		_, removed, err = m.Rollback(ctx, r)
	case "complete":
		if err := ask(fmt.Sprintf("end the move (no rollback after this) and delete region %s's rows from %s?", r, rec.Source)); err != nil {
			return fmt.Errorf("region complete: %w; nothing was changed", err)
		}
		_, removed, err = m.Complete(ctx, r)
	case "abort":
		if err := ask(fmt.Sprintf("abort the move, leaving region %s on %s, and delete what it copied to %s?", r, rec.Source, rec.Target)); err != nil {
			return fmt.Errorf("region abort: %w; nothing was changed", err)
		}
		_, removed, err = m.Abort(ctx, r)
	}
	if len(removed) > 0 {
		printRemoved(stdout, removed)
	}
	if err != nil {
		return fmt.Errorf("region %s: %w", sub, err)
	}
	done := map[string]move.Phase{"rollback": move.RolledBack, "complete": move.Completed, "abort": move.Aborted}[sub]
	fmt.Fprintf(stdout, "region %s: move %d is %s\n", sub, rec.ID, done)
	return nil
}

// regionMove prepares the move, prints its plan and checks (or the move it
// continues), stops there for a dry run, asks, and runs it.
func regionMove(ctx context.Context, m *move.Mover, r regions.Code, to string, dryRun bool, ask func(string) error, stdout io.Writer) error {
	p, err := m.Prepare(ctx, r, to)
	if err != nil {
		return fmt.Errorf("region move: %w", err)
	}
	question := fmt.Sprintf("move region %s from %s to %s?", r, p.Plan.Source.Name, to)
	if p.Resume != nil {
		fmt.Fprintf(stdout, "move %d of region %s (%s) %s -> %s is in phase %s: it continues from there\n",
			p.Resume.ID, r, r.Name(), p.Resume.Source, p.Resume.Target, p.Resume.Phase)
		question = fmt.Sprintf("continue move %d?", p.Resume.ID)
	} else {
		fmt.Fprintf(stdout, "plan: region %s (%s) from shard %s to shard %s; the switch writes epoch %d\npreflight:\n",
			r, r.Name(), p.Plan.Source.Name, to, p.Epoch+1)
		move.PrintChecks(stdout, p.Checks)
	}
	if !p.OK() {
		return fmt.Errorf("region move: preflight: %d check(s) failed (see above); nothing was created", len(move.Failed(p.Checks)))
	}
	if dryRun {
		fmt.Fprintln(stdout, "dry run: nothing was created")
		return nil
	}
	if err := ask(question); err != nil {
		return fmt.Errorf("region move: %w; nothing was created", err)
	}
	start := time.Now()
	rec, err := m.Move(ctx, p)
	if err != nil {
		return fmt.Errorf("region move: %w (run the same command again to continue, or dmsrouter region abort --region %s)", err, r)
	}
	fmt.Fprintf(stdout, "region move: move %d switched region %s to %s in %s\n", rec.ID, r, rec.Target, time.Since(start).Round(time.Second))
	return nil
}

// printRemoved writes the rows a command deleted, per table.
func printRemoved(w io.Writer, removed []move.Removed) {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "  table\trows removed\tpartitions truncated")
	var total int64
	for _, rm := range removed {
		fmt.Fprintf(tw, "  %s\t%d\t%d\n", rm.Table, rm.Rows, len(rm.Truncated))
		total += rm.Rows
	}
	fmt.Fprintf(tw, "  total\t%d\t\n", total)
	tw.Flush()
}

// onlyFlags refuses the flags set on the command line that subcommand sub
// does not take.
func onlyFlags(fs *flag.FlagSet, sub string, allowed []string) error {
	var err error
	fs.Visit(func(f *flag.Flag) {
		for _, a := range allowed {
			if f.Name == a {
				return
			}
		}
		if err == nil {
			err = fmt.Errorf("region %s: --%s is not a flag of region %s", sub, f.Name, sub)
		}
	})
	return err
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
