package shardmap_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/internal/clitest"
	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// openWarmed opens a map of cfg whose new connections run warm, logging to
// log, closed when tb ends.
func openWarmed(tb testing.TB, cfg shardmap.Config, warm func(context.Context, *pgx.Conn) error, log *slog.Logger) *shardmap.Map {
	tb.Helper()
	m, err := shardmap.Open(cfg, shardmap.Options{Warm: warm, Logger: log})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(m.Close)
	return m
}

// warmedSetting reads, on a connection of sh's pool, the session setting
// dms.warmed that the tests' warm-ups set.
func warmedSetting(tb testing.TB, sh *shardmap.Shard) string {
	tb.Helper()
	var v string
	err := sh.Read(context.Background(), regions.Scope{Region: "03"}, func(b *pgx.Batch) {
		b.Queue(`SELECT coalesce(current_setting('dms.warmed', true), '')`).QueryRow(func(r pgx.Row) error { return r.Scan(&v) })
	})
	if err != nil {
		tb.Fatalf("read on shard %s: %v", sh.Name(), err)
	}
	return v
}

// countedWarm returns a warm-up that counts its runs in n and sets the
// session setting dms.warmed to value.
func countedWarm(n *atomic.Int32, value string) func(context.Context, *pgx.Conn) error {
	return func(ctx context.Context, conn *pgx.Conn) error {
		n.Add(1)
		_, err := conn.Exec(ctx, "SET dms.warmed = "+pgx.Identifier{value}.Sanitize())
		return err
	}
}

// TestWarmRunsOnEveryNewConnection checks that Options.Warm runs once on
// every connection a pool opens, before it serves, whether WarmPools or a
// request's acquire opens it, and never again on a reused one.
func TestWarmRunsOnEveryNewConnection(t *testing.T) {
	ctx := context.Background()
	cfg := pgtest.NewDeployment(t, pg, "warmcount", twoShards())
	var warmed atomic.Int32
	m := openWarmed(t, cfg, countedWarm(&warmed, "yes"), nil)

	if err := m.WarmPools(ctx, 3); err != nil {
		t.Fatal(err)
	}
	// Two shards, a primary each, no replicas.
	if got := warmed.Load(); got != 6 {
		t.Errorf("after WarmPools(3) on 2 pools, Warm ran %d times, want 6", got)
	}
	if err := m.WarmPools(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if got := warmed.Load(); got != 6 {
		t.Errorf("after a second WarmPools(3), Warm ran %d times, want still 6 (the connections are reused)", got)
	}
	if err := m.WarmPools(ctx, 100); err != nil {
		t.Fatal(err)
	}
	var max int32
	for _, sh := range m.Shards() {
		max += sh.Stat().MaxConns()
	}
	if got := warmed.Load(); got != max {
		t.Errorf("after WarmPools(100), Warm ran %d times, want %d (every pool filled to its max_conns)", got, max)
	}

	// A map that no one warmed opens its connections on the requests'
	// acquires: each one is warmed before the request uses it.
	var cold atomic.Int32
	lazy := openWarmed(t, cfg, countedWarm(&cold, "lazy"), nil)
	sh, err := lazy.For("03")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 5 {
				if got := warmedSetting(t, sh); got != "lazy" {
					t.Errorf("a request's connection has dms.warmed = %q, want \"lazy\": it served before its warm-up", got)
				}
			}
		})
	}
	wg.Wait()
	opened := sh.Stat().TotalConns()
	if got := cold.Load(); got != opened || got == 0 {
		t.Errorf("Warm ran %d times for the %d connections the requests opened", got, opened)
	}
}

// TestFailingWarmKeepsThePool checks that a warm-up that fails, leaves an
// aborted transaction or outlives the statement timeout is logged and
// leaves a connection that serves.
func TestFailingWarmKeepsThePool(t *testing.T) {
	ctx := context.Background()
	cfg := pgtest.NewDeployment(t, pg, "warmfail", twoShards())
	cfg.Database.StatementTimeout = 200 * time.Millisecond
	for _, tc := range []struct {
		name string
		warm func(context.Context, *pgx.Conn) error
	}{
		{"error before any statement", func(context.Context, *pgx.Conn) error {
			return errors.New("no statements today")
		}},
		{"error inside a transaction", func(ctx context.Context, conn *pgx.Conn) error {
			if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
				return err
			}
			_, err := conn.Exec(ctx, "SELECT 1 / 0")
			return err
		}},
		{"statement timeout", func(ctx context.Context, conn *pgx.Conn) error {
			_, err := conn.Exec(ctx, "SELECT pg_sleep(30)")
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logged clitest.Buffer
			m := openWarmed(t, cfg, tc.warm, slog.New(slog.NewTextHandler(&logged, nil)))
			if err := m.WarmPools(ctx, 2); err != nil {
				t.Fatalf("WarmPools = %v, want nil: a failed warm-up must not fail the pool", err)
			}
			sh, err := m.For("03")
			if err != nil {
				t.Fatal(err)
			}
			for range 4 {
				if got := warmedSetting(t, sh); got != "" {
					t.Errorf("dms.warmed = %q, want unset", got)
				}
			}
			if n := sh.Stat().TotalConns(); n != 2 {
				t.Errorf("the pool holds %d connections, want the 2 WarmPools opened", n)
			}
			if n := strings.Count(logged.String(), `msg="connection not warmed"`); n != 4 {
				t.Errorf("%d warm-ups logged as failed, want 4 (2 pools x 2):\n%s", n, logged.String())
			}
		})
	}
}

// TestFillServesWhileWarming checks that a pool WarmPools is filling
// serves a request with its first warmed connection while the others are
// still warming, rather than hold every connection until the slowest is
// ready.
func TestFillServesWhileWarming(t *testing.T) {
	ctx := context.Background()
	cfg := pgtest.NewDeployment(t, pg, "warmfill", pgtest.SingleShard())
	cfg.Shards[0].MaxConns = 3
	cfg.Database.AcquireTimeout = 30 * time.Second
	gate := make(chan struct{})
	var started atomic.Int32
	m := openWarmed(t, cfg, func(ctx context.Context, conn *pgx.Conn) error {
		if started.Add(1) > 1 {
			select { // every warm-up but the first waits for the read below
			case <-gate:
			case <-ctx.Done():
			}
		}
		return nil
	}, nil)
	filled := make(chan error, 1)
	go func() { filled <- m.WarmPools(ctx, 3) }()
	sh, err := m.For("03")
	if err != nil {
		t.Fatal(err)
	}
	for started.Load() < 3 { // the fill's three connections are open or opening
		time.Sleep(time.Millisecond)
	}
	warmedSetting(t, sh) // fails (after the query timeout) while the fill holds the first connection
	close(gate)
	if err := <-filled; err != nil {
		t.Fatal(err)
	}
	if n := sh.Stat().TotalConns(); n != 3 {
		t.Errorf("the pool holds %d connections after the fill, want 3", n)
	}
}

// TestWarmPreparesTheReadScope checks that a new connection's warm-up
// prepares the scope statements of the reads scoped to a region, so that
// its first reads of each shape (a comune's, a whole region's, each with
// and without generic plans) prepare nothing, and that it calls the read
// fence and accepts only its refusal of no region.
func TestWarmPreparesTheReadScope(t *testing.T) {
	ctx := context.Background()
	noop := func(context.Context, *pgx.Conn) error { return nil }
	t.Run("prepared", func(t *testing.T) {
		cfg := pgtest.NewDeployment(t, pg, "warmscope", twoShards())
		for i := range cfg.Shards {
			cfg.Shards[i].MaxConns = 1 // every read below on the one warmed connection
		}
		var logged clitest.Buffer
		m := openWarmed(t, cfg, noop, slog.New(slog.NewTextHandler(&logged, nil)))
		if err := m.WarmPools(ctx, 1); err != nil {
			t.Fatal(err)
		}
		// Both databases refuse the fence's call with no region; the one
		// that holds none of the warm-up's scopes' regions too.
		if strings.Contains(logged.String(), "not warmed") {
			t.Fatalf("a warm-up failed:\n%s", logged.String())
		}
		sh, err := m.For("03")
		if err != nil {
			t.Fatal(err)
		}
		const probe = `SELECT statement FROM pg_prepared_statements ORDER BY statement`
		prepared := func(read func(context.Context, regions.Scope, func(*pgx.Batch)) error, sc regions.Scope) []string {
			t.Helper()
			var stmts []string
			err := read(ctx, sc, func(b *pgx.Batch) {
				b.Queue(probe).Query(func(rows pgx.Rows) error {
					var err error
					stmts, err = pgx.CollectRows(rows, pgx.RowTo[string])
					return err
				})
			})
			if err != nil {
				t.Fatalf("read as %+v: %v", sc, err)
			}
			return stmts
		}
		comune := regions.Scope{Region: "03", Province: "015", Comune: "015146", User: "u"}
		region := regions.Scope{Region: "03", User: "u"}
		first := prepared(sh.Read, comune)
		fenced := 0
		for _, s := range first {
			if strings.Contains(s, "dms.fence(") {
				fenced++
			}
		}
		if fenced != 4 {
			t.Errorf("%d scope statements prepared before the first read, want 4:\n%s", fenced, strings.Join(first, "\n"))
		}
		for _, r := range []struct {
			name string
			read func(context.Context, regions.Scope, func(*pgx.Batch)) error
			sc   regions.Scope
		}{
			{"a comune's generic read", sh.ReadGeneric, comune},
			{"a region's read", sh.Read, region},
			{"a region's generic read", sh.ReadGeneric, region},
			{"a market's read", sh.Read, regions.Scope{Region: "03", Province: "015", Comune: "015146", Market: 7, User: "u"}},
		} {
			if got := prepared(r.read, r.sc); !slices.Equal(got, first) {
				t.Errorf("%s prepared a statement the warm-up did not:\n%s\nwant\n%s", r.name, strings.Join(got, "\n"), strings.Join(first, "\n"))
			}
		}
	})
	t.Run("on a standby", func(t *testing.T) {
		// The replicas' pools are warmed as the primaries' are: the fence's
		// read and its refusal work on a hot standby.
		cfg, _, _ := streamingReplica(t)
		var logged clitest.Buffer
		m := openWarmed(t, cfg, noop, slog.New(slog.NewTextHandler(&logged, nil)))
		if err := m.WarmPools(ctx, 1); err != nil {
			t.Fatal(err)
		}
		sh, err := m.For("03")
		if err != nil {
			t.Fatal(err)
		}
		if len(sh.ReplicaLags()) != 1 || !sh.Filled(1) {
			t.Fatalf("shard nw has %d replicas, and its pools filled: %v; want 1 replica, every pool filled", len(sh.ReplicaLags()), sh.Filled(1))
		}
		if strings.Contains(logged.String(), "not warmed") {
			t.Errorf("a warm-up failed:\n%s", logged.String())
		}
		waitReadable(t, sh, 0, true)
		if _, server := readMarket(t, ctx, sh, "none"); server != "replica0" {
			t.Errorf("a read went to %s, want replica0", server)
		}
	})
	t.Run("the fence's answer", func(t *testing.T) {
		cfg := pgtest.NewDeployment(t, pg, "warmfence", twoShards())
		// A fence that refuses no region with another error than its own:
		// the warm-up calls it, and takes only DMF01 for the answer.
		for _, s := range cfg.Shards {
			pgtest.Exec(t, s.AdminDSN(), `CREATE OR REPLACE FUNCTION dms.fence(region text, for_write boolean) RETURNS void
				LANGUAGE plpgsql AS $$ BEGIN IF region IS NULL THEN RAISE EXCEPTION 'no region' USING ERRCODE = 'DMF99'; END IF; END $$`)
		}
		var logged clitest.Buffer
		m := openWarmed(t, cfg, noop, slog.New(slog.NewTextHandler(&logged, nil)))
		if err := m.WarmPools(ctx, 1); err != nil {
			t.Fatalf("WarmPools = %v, want nil: a failed warm-up must not fail the pool", err)
		}
		if n := strings.Count(logged.String(), `msg="connection not warmed"`); n != 2 || !strings.Contains(logged.String(), "DMF99") {
			t.Errorf("%d warm-ups logged as failed, want 2 naming the fence's DMF99:\n%s", n, logged.String())
		}
		sh, err := m.For("03")
		if err != nil {
			t.Fatal(err)
		}
		if got := warmedSetting(t, sh); got != "" { // and the connection serves
			t.Errorf("dms.warmed = %q, want unset", got)
		}
	})
}

// TestPingDoesNotWaitForAWarmUp checks that Ping on a shard whose pool has
// no idle connection answers on a connection of its own, without opening
// one in the pool and waiting for its warm-up: a readiness probe must not
// depend on how long a warm-up takes (here one that never ends, and an
// acquire_timeout that a pooled ping would run into).
func TestPingDoesNotWaitForAWarmUp(t *testing.T) {
	cfg := pgtest.NewDeployment(t, pg, "pingwarm", pgtest.SingleShard())
	cfg.Database.AcquireTimeout = 200 * time.Millisecond
	var started atomic.Int32
	m := openWarmed(t, cfg, func(ctx context.Context, conn *pgx.Conn) error {
		started.Add(1)
		<-ctx.Done() // the router's deadline
		return ctx.Err()
	}, nil)
	sh, err := m.For("03")
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := sh.Ping(context.Background()); err != nil {
			t.Fatalf("Ping with no idle connection = %v, want nil", err)
		}
	}
	if n, w := sh.Stat().TotalConns(), started.Load(); n != 0 || w != 0 {
		t.Errorf("after the pings the pool holds %d connections and %d warm-ups started, want 0 and 0", n, w)
	}
}
