package control_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/control"
	"github.com/dmshub/dmsrouter/internal/clitest"
	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/shardmap"
)

// TestWarmAhead checks that a router warms the pools of the shard that
// will serve a region before a move switches it there: nothing while the
// move copies, as many connections as the region's shard holds once it
// catches up (the router learns it from the NOTIFY of control.moves, its
// poll being ten minutes), and the source's pools when a move rolls back.
// Each warmed connection ran the Warm hook. Without the warm-up the
// target's pools stay empty until the first requests after the switch
// open their connections. Each switch near is logged warm once, whether
// the router filled its next shard's pools or found them filled already.
func TestWarmAhead(t *testing.T) {
	ctx := context.Background()
	cfg := pgtest.NewDeployment(t, pg, "warmahead", pgtest.Split("a", pgtest.Layout{"03": "b", "05": "c"}))
	cfg.Regions["03"], cfg.Regions["05"] = "a", "a" // b and c serve nothing yet
	var mu sync.Mutex
	warmed := map[string]int{} // database -> connections warmed
	holder, err := shardmap.NewHolder(cfg, shardmap.Options{Warm: func(_ context.Context, conn *pgx.Conn) error {
		mu.Lock()
		defer mu.Unlock()
		warmed[conn.Config().Database]++
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(holder.Close)
	shard := func(name string) *shardmap.Shard {
		s := holder.Map().Shard(name)
		if s == nil {
			t.Fatalf("no shard %s", name)
		}
		return s
	}
	warmedOn := func(name string) int {
		pc, err := pgx.ParseConfig(pgtest.Shard(t, cfg, name).Primary)
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		return warmed[pc.Database]
	}
	// a serves every region, with three connections open.
	if err := shard("a").WarmPools(ctx, 3); err != nil {
		t.Fatal(err)
	}
	ctl := controlDB(t)
	var logs clitest.Buffer
	f, err := control.Follow(ctx, control.Config{DSN: ctl, PollInterval: 10 * time.Minute, RouterID: "warm"}, cfg, holder, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)

	conns := func(name string) int32 { return shard(name).Stat().TotalConns() }
	waitConns := func(t *testing.T, name string, want int32) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for (conns(name) < want || warmedOn(name) < int(want)) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if got := conns(name); got != want {
			t.Fatalf("shard %s holds %d connections, want %d", name, got, want)
		}
		if got := warmedOn(name); got != int(want) {
			t.Errorf("the Warm hook ran on %d connections of shard %s, want %d", got, name, want)
		}
	}
	// listening reports whether the follower's LISTEN connection is up:
	// a NOTIFY sent before it listens is lost, and the poll is ten minutes.
	waitListening := func(t *testing.T) {
		t.Helper()
		conn := pgtest.Connect(t, ctl)
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			var n int
			conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
				WHERE application_name = 'dmsrouter listen warm' AND query LIKE 'LISTEN dms_moves%'`).Scan(&n)
			if n == 1 {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatal("the follower does not listen on dms_moves")
	}
	waitListening(t)

	t.Run("a move that copies warms nothing", func(t *testing.T) {
		pgtest.Exec(t, ctl, `INSERT INTO control.moves (region_id, source, target, phase, max_freeze)
			VALUES ('03', 'a', 'b', 'copying', '5 s')`)
		if err := f.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		if got := conns("b"); got != 0 {
			t.Errorf("shard b holds %d connections while the move copies, want 0", got)
		}
	})
	t.Run("a move that catches up warms its target", func(t *testing.T) {
		pgtest.Exec(t, ctl, `UPDATE control.moves SET phase = 'catching_up' WHERE region_id = '03'`)
		waitConns(t, "b", 3)
	})
	t.Run("a rollback warms the source", func(t *testing.T) {
		pgtest.Exec(t, ctl, `INSERT INTO control.moves (region_id, source, target, phase, max_freeze)
			VALUES ('05', 'c', 'a', 'rolling_back', '5 s')`)
		waitConns(t, "c", 3)
	})
	// warmedLogs counts the lines that log region's next shard warm.
	warmedLogs := func(region, shard string) (n int) {
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, `"msg":"pools warmed ahead of the switch"`) &&
				strings.Contains(line, `"shard":"`+shard+`"`) && strings.Contains(line, `"region":"`+region+`"`) {
				n++
			}
		}
		return n
	}
	t.Run("a target found warm is logged warm, once", func(t *testing.T) {
		// b holds the three connections region 03's move warmed; a move
		// of 07 to b finds them and opens none.
		pgtest.Exec(t, ctl, `INSERT INTO control.moves (region_id, source, target, phase, max_freeze)
			VALUES ('07', 'a', 'b', 'catching_up', '5 s')`)
		pgtest.Exec(t, ctl, `NOTIFY `+control.MovesChannel)
		deadline := time.Now().Add(20 * time.Second)
		for warmedLogs("07", "b") == 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		// Two more polls, each woken by a phase change, log nothing more.
		for _, phase := range []string{"switching", "catching_up"} {
			pgtest.Exec(t, ctl, `UPDATE control.moves SET phase = $1 WHERE region_id = '07'`, phase)
			time.Sleep(300 * time.Millisecond)
		}
		if got := conns("b"); got != 3 {
			t.Errorf("shard b holds %d connections, want the 3 it held", got)
		}
		for _, w := range []struct{ region, shard string }{{"07", "b"}, {"03", "b"}, {"05", "c"}} {
			if n := warmedLogs(w.region, w.shard); n != 1 {
				t.Errorf("%d lines log shard %s warm ahead of region %s's switch, want 1:\n%s", n, w.shard, w.region, logs.String())
			}
		}
	})
}
