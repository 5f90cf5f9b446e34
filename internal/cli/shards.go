package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dmshub/dmsrouter/config"
	"github.com/dmshub/dmsrouter/fleet"
	"github.com/dmshub/dmsrouter/regions"
)

// ShardsStatus runs `prog shards status --config F`: the status page's
// shard table in a terminal, read from the databases directly (package
// fleet), so it works without a running router: per shard, whether its
// primary answers, its schema version, whether it is frozen, the regions
// it serves and its standbys as the primary sees them; with a control
// database, the epoch, the routers and the moves in progress. What only a
// router knows (breakers, pools, latency, the lag it measured) is left
// out and the output says where to find it. A configuration that does not
// load fails before anything is asked; the command also fails, after
// printing, when a shard or the control database does not answer, so a
// script can check the deployment with it.
func ShardsStatus(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := NewFlags("dmsrouter", "shards status", stderr)
	path := fs.String("config", "configs/dev.yaml", "configuration file: its shards and, when it has one, its control database")
	if err := ParseArgs(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*path, getenv)
	if err != nil {
		return fmt.Errorf("shards status: %w", err)
	}
	st := fleet.Gather(ctx, cfg.ShardMap, cfg.Control.DSN)
	PrintStatus(stdout, st)
	var down []string
	for _, sh := range st.Shards {
		if !sh.Available {
			down = append(down, sh.Name)
		}
	}
	switch {
	case len(down) > 0:
		return fmt.Errorf("shards status: %d shard(s) did not answer: %s (see above)", len(down), strings.Join(down, ", "))
	case st.Control != nil && st.Control.Error != "":
		return fmt.Errorf("shards status: the control database did not answer: %s", st.Control.Error)
	}
	return nil
}

// PrintStatus writes st as tables for a terminal.
func PrintStatus(w io.Writer, st fleet.Status) {
	fmt.Fprintf(w, "shards at %s, asked the databases directly (breakers, pools, latency and measured lag are each router's: GET /status or /v1/admin/shards)\n\n",
		st.At.Format(time.DateTime))
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "SHARD\tSTATE\tSCHEMA\tFROZEN\tREGIONS\tSTANDBYS")
	var problems []string
	for _, sh := range st.Shards {
		state, schema, frozen, standbys := "available", "?", "?", "?"
		if !sh.Available {
			state = "UNAVAILABLE"
			problems = append(problems, fmt.Sprintf("  %s: %s", sh.Name, sh.Error))
		} else {
			frozen = "no"
			if sh.Frozen {
				frozen = "FROZEN (read-only)"
			}
			if len(sh.FrozenRegions) > 0 {
				frozen += ", regions " + codes(sh.FrozenRegions) + " frozen by a move"
			}
			standbys = standbyText(sh.Standbys)
		}
		if sh.SchemaVersion > 0 {
			schema = fmt.Sprintf("%d of %d", sh.SchemaVersion, sh.LatestVersion)
		} else if sh.SchemaError != "" {
			problems = append(problems, fmt.Sprintf("  %s: %s", sh.Name, sh.SchemaError))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", sh.Name, state, schema, frozen, codes(sh.Regions), standbys)
	}
	tw.Flush()
	for _, p := range problems {
		fmt.Fprintln(w, p)
	}
	c := st.Control
	if c == nil {
		fmt.Fprintln(w, "\nno control database: the configuration file's regions assign the shards")
		return
	}
	if c.Error != "" {
		fmt.Fprintf(w, "\ncontrol database: UNREADABLE: %s\n", c.Error)
		return
	}
	fmt.Fprintf(w, "\ncontrol database: epoch %d\n", c.Epoch)
	if len(c.Routers) == 0 {
		fmt.Fprintln(w, "  no router recorded")
	}
	tw = tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	if len(c.Routers) > 0 {
		fmt.Fprintln(tw, "ROUTER\tHOST\tPID\tEPOCH APPLIED\tLAST SEEN\tLIVE\tLAST ERROR")
	}
	for _, r := range c.Routers {
		live := "no"
		if r.Live {
			live = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s ago\t%s\t%s\n", r.ID, r.Host, r.PID, r.EpochApplied, st.At.Sub(r.LastSeen).Round(time.Second), live, r.LastError)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nmoves in progress:")
	if len(c.Moves) == 0 {
		fmt.Fprintln(w, "  none")
		return
	}
	tw = tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "MOVE\tREGION\tFROM\tTO\tPHASE\tSTARTED\tUPDATED\tLAST ERROR")
	for _, m := range c.Moves {
		fmt.Fprintf(tw, "%d\t%s %s\t%s\t%s\t%s\t%s\t%s ago\t%s\n", m.ID, m.Region, m.Region.Name(), m.Source, m.Target, m.Phase,
			m.StartedAt.Format(time.DateTime), st.At.Sub(m.UpdatedAt).Round(time.Second), m.Error)
	}
	tw.Flush()
}

// codes joins region codes with spaces; "none" for none.
func codes(rs []regions.Code) string {
	if len(rs) == 0 {
		return "none"
	}
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = string(r)
	}
	return strings.Join(s, " ")
}

// standbyText summarises the standbys as their primary sees them.
func standbyText(ss []fleet.Standby) string {
	if len(ss) == 0 {
		return "none"
	}
	var out []string
	for _, s := range ss {
		if s.State == "" {
			out = append(out, s.Name+" (details need pg_monitor)")
			continue
		}
		out = append(out, fmt.Sprintf("%s %s, %d bytes / %s behind", s.Name, s.State, s.BehindBytes, s.ReplayLag.Round(time.Millisecond)))
	}
	return strings.Join(out, "; ")
}
