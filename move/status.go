package move

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/control"
	"github.com/dmshub/dmsrouter/regions"
)

// Status is what region status shows: the moves, the routers and the
// epoch each applied, and the replication objects no move in progress
// owns.
type Status struct {
	Epoch   int64
	Moves   []MoveStatus
	Routers []control.Router
	// Orphans are per shard of the file; Unreachable the shards that
	// could not be listed, with why.
	Orphans     map[string][]Orphan
	Unreachable map[string]string
}

// MoveStatus is one move and, while it is in progress, its rows and lag.
type MoveStatus struct {
	Record
	// Tables are the region's rows per table on both sides; nil for a
	// move that is over or whose shards could not be read (Problem says
	// why).
	Tables []TableRows
	// Lag is the stream's lag: the forward one until the switch, the
	// reverse one after it; nil when there is none.
	Lag     *Lag
	Problem string
}

// TableRows are the region's rows of one table on the move's two sides,
// and while the copy runs the table's state in it.
type TableRows struct {
	Table          string
	Source, Target int64
	State          string
}

// finishedShown is how many finished moves Status shows.
const finishedShown = 5

// Status reads the moves of region r (every region when r is empty) and
// the state of the ones in progress, the routers, and the orphaned
// replication objects of every shard of the file. Shards it cannot reach
// are reported in the Status, not as an error.
func (m *Mover) Status(ctx context.Context, r regions.Code) (Status, error) {
	ctl, err := pgx.Connect(ctx, m.control)
	if err != nil {
		return Status{}, fmt.Errorf("control database: %w", err)
	}
	defer ctl.Close(context.Background())
	st := Status{Orphans: map[string][]Orphan{}, Unreachable: map[string]string{}}
	cur, err := control.Current(ctx, ctl)
	if err != nil {
		return st, err
	}
	st.Epoch = cur.Epoch
	recs, err := Moves(ctx, ctl, r, finishedShown)
	if err != nil {
		return st, err
	}
	active := map[int64]bool{}
	for _, rec := range recs {
		ms := MoveStatus{Record: rec}
		if !rec.Phase.Terminal() {
			active[rec.ID] = true
			if err := m.observe(ctx, &ms); err != nil {
				ms.Problem = err.Error()
			}
		}
		st.Moves = append(st.Moves, ms)
	}
	if st.Routers, err = control.Routers(ctx, ctl); err != nil {
		return st, err
	}
	owned := func(name string) bool {
		id, _, _ := strings.Cut(strings.TrimPrefix(name, NamePrefix), "_")
		n, err := strconv.ParseInt(id, 10, 64)
		return err == nil && active[n]
	}
	for _, sh := range m.shards.Shards {
		conn, err := Connect(ctx, sh.AdminDSN())
		if err != nil {
			st.Unreachable[sh.Name] = err.Error()
			continue
		}
		os, err := Orphans(ctx, conn, owned)
		conn.Close(context.Background())
		if err != nil {
			st.Unreachable[sh.Name] = err.Error()
			continue
		}
		if len(os) > 0 {
			st.Orphans[sh.Name] = os
		}
	}
	return st, nil
}

// observe fills in the rows per table and the lag of move ms.
func (m *Mover) observe(ctx context.Context, ms *MoveStatus) error {
	p, err := m.plan(ms.Record)
	if err != nil {
		return err
	}
	src, err := Connect(ctx, p.Source.AdminDSN())
	if err != nil {
		return fmt.Errorf("source %s: %w", p.Source.Name, err)
	}
	defer src.Close(context.Background())
	dst, err := Connect(ctx, p.Target.AdminDSN())
	if err != nil {
		return fmt.Errorf("target %s: %w", p.Target.Name, err)
	}
	defer dst.Close(context.Background())
	counts, err := RegionRows(ctx, src, p.Region, nil)
	if err != nil {
		return err
	}
	if ms.Phase == Copying {
		tp, err := CopyProgress(ctx, src, dst, p, counts)
		if err != nil {
			return err
		}
		for _, t := range tp {
			ms.Tables = append(ms.Tables, TableRows{Table: t.Table, Source: t.Total, Target: t.Copied, State: t.State})
		}
	} else {
		target, err := RegionRows(ctx, dst, p.Region, nil)
		if err != nil {
			return err
		}
		for _, t := range Tables {
			ms.Tables = append(ms.Tables, TableRows{Table: t.Name, Source: counts[t.Name], Target: target[t.Name]})
		}
	}
	from, slot := src, p.Names().Slot
	if ms.Phase != Copying && ms.Phase != CatchingUp && ms.Phase != Switching {
		from, slot = dst, p.Names().ReverseSlot
	}
	if lag, err := ReplicationLag(ctx, from, slot); err == nil {
		ms.Lag = &lag
	}
	return nil
}

// Print writes the status for a DBA: each move, its tables and lag while
// in progress, the routers, and the orphans with how to remove them.
func (s Status) Print(w io.Writer) error {
	if len(s.Moves) == 0 {
		fmt.Fprintln(w, "no moves recorded")
	}
	for _, ms := range s.Moves {
		printMove(w, ms)
	}
	fmt.Fprintf(w, "\nrouters (current epoch %d):\n", s.Epoch)
	if len(s.Routers) == 0 {
		fmt.Fprintln(w, "  none recorded")
	}
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	for _, rt := range s.Routers {
		live := "not live"
		if rt.Live {
			live = "live"
		}
		line := fmt.Sprintf("  %s\t%s\tpid %d\tepoch %d\t%s, seen %s ago", rt.ID, rt.Host, rt.PID, rt.EpochApplied, live, time.Since(rt.LastSeen).Round(time.Second))
		if rt.LastError != "" {
			line += "\t" + rt.LastError
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
	fmt.Fprintln(w, "\norphaned replication objects (named "+NamePrefix+"*, no move in progress owns them):")
	if len(s.Orphans) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for _, shard := range slices.Sorted(maps.Keys(s.Orphans)) {
		for _, o := range s.Orphans[shard] {
			fmt.Fprintf(w, "  shard %s: %s; remove it there with %s\n", shard, o, dropSQL(o))
		}
	}
	for _, shard := range slices.Sorted(maps.Keys(s.Unreachable)) {
		fmt.Fprintf(w, "  shard %s: not checked: %s\n", shard, s.Unreachable[shard])
	}
	return nil
}

func printMove(w io.Writer, ms MoveStatus) {
	fmt.Fprintf(w, "move %d: region %s (%s) %s -> %s, phase %s, started %s, updated %s\n",
		ms.ID, ms.Region, ms.Region.Name(), ms.Source, ms.Target, ms.Phase,
		ms.StartedAt.Format(time.DateTime), ms.UpdatedAt.Format(time.DateTime))
	if ms.EpochAfter != nil {
		fmt.Fprintf(w, "  epoch %d -> %d", *ms.EpochBefore, *ms.EpochAfter)
		if ms.Freeze != nil {
			fmt.Fprintf(w, ", freeze %s (max %s)", ms.Freeze.Round(time.Millisecond), ms.MaxFreeze)
		}
		fmt.Fprintln(w)
	}
	if ms.Verification != nil {
		var v Verification
		if err := json.Unmarshal(ms.Verification, &v); err == nil {
			fmt.Fprintf(w, "  last verification %s: %s\n", v.At.Format(time.DateTime), summary(v))
		}
	}
	if ms.Lag != nil {
		fmt.Fprintf(w, "  lag: %d bytes, %.1f s\n", ms.Lag.Bytes, ms.Lag.Seconds)
	}
	if ms.Error != "" {
		fmt.Fprintf(w, "  last error: %s\n", ms.Error)
	}
	if ms.Problem != "" {
		fmt.Fprintf(w, "  not observed: %s\n", ms.Problem)
	}
	if len(ms.Tables) > 0 {
		tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "  table\tsource rows\ttarget rows\tstate")
		for _, t := range ms.Tables {
			fmt.Fprintln(tw, strings.TrimRight(fmt.Sprintf("  %s\t%d\t%d\t%s", t.Table, t.Source, t.Target, t.State), "\t"))
		}
		tw.Flush()
	}
}

// dropSQL is the statement that removes orphan o.
func dropSQL(o Orphan) string {
	switch o.Kind {
	case "slot":
		return fmt.Sprintf("SELECT pg_drop_replication_slot(%s)", literal(o.Name))
	case "subscription":
		return fmt.Sprintf("ALTER SUBSCRIPTION %[1]s DISABLE; ALTER SUBSCRIPTION %[1]s SET (slot_name = NONE); DROP SUBSCRIPTION %[1]s", ident(o.Name))
	}
	return "DROP PUBLICATION " + ident(o.Name)
}
