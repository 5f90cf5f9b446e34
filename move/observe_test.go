package move

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// subscribe replicates tables of region 05 from p's source to its target
// as a move does (a row-filtered publication and a slot on the source, a
// subscription copying the data on the target), and removes them when tb
// ends.
func (p pair) subscribe(tb testing.TB, tables []Table) Names {
	tb.Helper()
	n := p.plan.Names()
	var list []string
	for _, t := range tables {
		list = append(list, t.Name+" WHERE "+t.Filter(region))
	}
	exec(tb, p.src, fmt.Sprintf(`CREATE PUBLICATION %s FOR TABLE %s WITH (publish = 'insert, update, delete', publish_via_partition_root = true)`,
		n.Publication, strings.Join(list, ", ")))
	exec(tb, p.src, `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, n.Slot)
	exec(tb, p.dst, fmt.Sprintf(`CREATE SUBSCRIPTION %s CONNECTION '%s' PUBLICATION %s WITH (create_slot = false, slot_name = '%s', copy_data = true)`,
		n.Subscription, p.plan.Source.AdminDSN(), n.Publication, n.Slot))
	tb.Cleanup(func() {
		ctx := context.Background()
		for _, q := range []string{
			"ALTER SUBSCRIPTION " + n.Subscription + " DISABLE",
			"ALTER SUBSCRIPTION " + n.Subscription + " SET (slot_name = NONE)",
			"DROP SUBSCRIPTION " + n.Subscription,
		} {
			if _, err := p.dst.Exec(ctx, q); err != nil {
				tb.Errorf("%s: %v", q, err)
			}
		}
		// The walsender lets go of the slot once the apply worker is gone.
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			var gone bool
			p.src.QueryRow(ctx, `SELECT NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = $1 AND active)`, n.Slot).Scan(&gone)
			if gone {
				break
			}
		}
		if _, err := p.src.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, n.Slot); err != nil {
			tb.Errorf("drop slot: %v", err)
		}
		if _, err := p.src.Exec(ctx, "DROP PUBLICATION "+n.Publication); err != nil {
			tb.Errorf("drop publication: %v", err)
		}
	})
	return n
}

// movedTables are the tables the observation test replicates: Tables but
// the per-shard stamps every shard holds for every region.
func movedTables() []Table {
	var out []Table
	for _, t := range Tables {
		if t.Name != everyRegionTable {
			out = append(out, t)
		}
	}
	return out
}

func TestObserveReplication(t *testing.T) {
	ctx := context.Background()
	p := newPair(t, "observe")
	const rows = 5000
	audit(t, p.src, 1, rows)
	mark(t, p.src, 1)
	n := p.subscribe(t, movedTables())

	totals, err := RegionRows(ctx, p.src, region, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	show := NewProgress(&out, false)
	var ts []TableProgress
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if ts, err = CopyProgress(ctx, p.src, p.dst, p.plan, totals); err != nil {
			t.Fatal(err)
		}
		ts = slices.DeleteFunc(ts, func(tp TableProgress) bool { return tp.Table == everyRegionTable })
		show.Update(ts)
		if AllReady(ts) || time.Now().After(deadline) {
			break
		}
		for _, tp := range ts {
			if tp.Copied > tp.Total || tp.Copied < 0 {
				t.Errorf("CopyProgress: %s copied %d of %d", tp.Table, tp.Copied, tp.Total)
			}
		}
	}
	show.Done()
	t.Logf("progress:\n%s", out.String())
	want := map[string]int64{"public.audit_log": rows, "dms.move_marks": 1}
	for _, tp := range ts {
		if tp.State != StateReady || tp.Copied != want[tp.Table] || tp.Total != want[tp.Table] {
			t.Errorf("CopyProgress: %+v, want ready with %d of %d rows", tp, want[tp.Table], want[tp.Table])
		}
	}

	// Replicated rows read the same on both sides.
	v, err := Verify(ctx, p.src, p.dst, region, VerifyOptions{RangeRows: 1000, Tables: movedTables()})
	if err != nil || !v.OK() {
		t.Errorf("Verify after the copy: %v, differing %v", err, v.Differing)
	}

	lag, err := ReplicationLag(ctx, p.src, n.Slot)
	if err != nil || lag.Bytes < 0 || lag.Seconds < 0 {
		t.Errorf("ReplicationLag(%s) = %+v, %v; want a lag >= 0", n.Slot, lag, err)
	}
	if _, err := ReplicationLag(ctx, p.src, "dms_move_0_r99"); !errors.Is(err, ErrNoSlot) {
		t.Errorf("ReplicationLag(no slot) error = %v, want ErrNoSlot", err)
	}

	// Writes after the copy arrive too: the mark moves.
	mark(t, p.src, 2)
	waitMark(t, p.dst, 2)
	if lag, err = ReplicationLag(ctx, p.src, n.Slot); err != nil {
		t.Error(err)
	}
	t.Logf("lag after a mark arrived: %+v", lag)

	other := Plan{ID: 2, Region: region}.Names()
	orphans := []struct {
		name string
		conn *pgx.Conn
		keep func(string) bool
		want string
	}{
		{"source, none kept", p.src, nil, "publication " + n.Publication + ", slot " + n.Slot},
		{"target, none kept", p.dst, nil, "subscription " + n.Subscription},
		{"source, the move kept", p.src, func(s string) bool { return s == n.Slot || s == n.Publication }, ""},
		{"source, another move kept", p.src, func(s string) bool { return s == other.Slot || s == other.Publication }, "publication " + n.Publication + ", slot " + n.Slot},
	}
	for _, tt := range orphans {
		got, err := Orphans(ctx, tt.conn, tt.keep)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, o := range got {
			names = append(names, o.String())
		}
		if s := strings.Join(names, ", "); s != tt.want {
			t.Errorf("Orphans(%s) = %q, want %q", tt.name, s, tt.want)
		}
	}
}

// waitMark waits until conn shows region 05's mark n.
func waitMark(tb testing.TB, conn *pgx.Conn, n int64) {
	tb.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var got int64
		err := conn.QueryRow(context.Background(), `SELECT mark FROM dms.move_marks WHERE region_id = $1`, region.Num()).Scan(&got)
		if err == nil && got == n {
			return
		}
	}
	tb.Fatalf("mark %d did not arrive", n)
}
