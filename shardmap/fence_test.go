package shardmap_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// adminOf returns the admin DSN of the shard named name in cfg.
func adminOf(tb testing.TB, cfg shardmap.Config, name string) string {
	tb.Helper()
	return cfg.Shards[shardIndex(tb, cfg, name)].AdminDSN()
}

// TestFence checks that every call scoped to a region meets the fence of
// its database: a region it does not serve refuses reads and writes
// (ErrNotOwned), a frozen one refuses writes only (ErrFrozen), nothing is
// written, and the breaker counts none of it.
func TestFence(t *testing.T) {
	cfg := pgtest.NewDeployment(t, pg, "fence", twoShards())
	admin := adminOf(t, cfg, "nw")
	sh := lombardy(t, cfg)
	ctx := context.Background()
	insert := `INSERT INTO markets (id, region_id, code, name, province, comune)
		VALUES (dms.next_id('markets', 3::smallint), 3, 'MI001', 'x', '015', '015146')`
	read := func(sc regions.Scope) error {
		return sh.Read(ctx, sc, func(b *pgx.Batch) { b.Queue(`SELECT count(*) FROM markets`) })
	}
	calls := []struct {
		name  string
		write bool
		call  func(sc regions.Scope) error
	}{
		{"Read", false, read},
		{"Tx read-only", false, func(sc regions.Scope) error {
			return sh.Tx(ctx, sc, pgx.ReadOnly, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, `SELECT count(*) FROM markets`)
				return err
			})
		}},
		{"Tx", true, func(sc regions.Scope) error {
			return sh.Tx(ctx, sc, pgx.ReadWrite, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, insert)
				return err
			})
		}},
		{"Batch", true, func(sc regions.Scope) error {
			return sh.Batch(ctx, sc, func(b *pgx.Batch) { b.Queue(insert) })
		}},
	}
	for _, tt := range []struct {
		name   string
		setup  string // run as the owner before the calls
		region regions.Code
		read   error // want for reads
		write  error // want for writes
	}{
		{"a region never held here", "", "05", shardmap.ErrNotOwned, shardmap.ErrNotOwned},
		{"a region held but not owned (moved away)", `UPDATE dms.shard_regions SET owned = false, frozen = false WHERE region_id = 3`, "03", shardmap.ErrNotOwned, shardmap.ErrNotOwned},
		{"a frozen region", `UPDATE dms.shard_regions SET owned = true, frozen = true WHERE region_id = 3`, "03", nil, shardmap.ErrFrozen},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != "" {
				pgtest.Exec(t, admin, tt.setup)
			}
			for _, c := range calls {
				want := tt.read
				if c.write {
					want = tt.write
				}
				// More refusals than BreakerFailures (3): the breaker must stay closed.
				for range 4 {
					err := c.call(regions.Scope{Region: tt.region})
					if !errors.Is(err, want) || want == nil && err != nil {
						t.Fatalf("%s of region %s = %v, want %v", c.name, tt.region, err, want)
					}
					var fence *shardmap.FenceError
					if want != nil && (!errors.As(err, &fence) || fence.Shard != "nw" || fence.Region != tt.region || shardmap.IsInfrastructure(err)) {
						t.Fatalf("%s of region %s = %#v, want a *FenceError of shard nw, region %s, not infrastructure", c.name, tt.region, err, tt.region)
					}
				}
			}
			if got := sh.State(); got != "closed" {
				t.Errorf("breaker after the fence's refusals = %s, want closed", got)
			}
			var n int
			if err := pgtest.Connect(t, admin).QueryRow(ctx, `SELECT count(*) FROM markets`).Scan(&n); err != nil || n != 0 {
				t.Errorf("markets after refused writes = %d, %v; want 0", n, err)
			}
		})
	}

	// A call with no region (the background jobs) passes the fence.
	pgtest.Exec(t, admin, `UPDATE dms.shard_regions SET owned = false WHERE region_id = 3`)
	if err := read(regions.Scope{}); err != nil {
		t.Errorf("Read with no region on a database that owns nothing = %v, want nil", err)
	}
}

// TestReadFenceCallsNoFunction checks that a read of a region its
// database serves passes the fence without calling dms.fence, whose
// PL/pgSQL call was most of the scope statement's own cost
// (fenceReadSQL), while a write still calls it (its fence takes a lock).
// It counts the function's calls in pg_stat_user_functions
// (track_functions), which a backend reports when it exits; calls that
// raise are not counted, so the refused reads and each connection's
// warm-up (warmScope) do not show.
func TestReadFenceCallsNoFunction(t *testing.T) {
	cfg := pgtest.NewDeployment(t, pg, "readfence", twoShards())
	admin := adminOf(t, cfg, "nw")
	pgtest.Exec(t, admin, `DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET track_functions = pl', current_database()); END $$`)
	m, err := shardmap.Open(cfg, shardmap.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	sh, err := m.For("03")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const reads, writes = 50, 2
	lombardia := regions.Scope{Region: "03"}
	for range reads {
		if err := sh.Read(ctx, lombardia, func(b *pgx.Batch) { b.Queue(`SELECT count(*) FROM markets`) }); err != nil {
			t.Fatalf("read of a region served here: %v", err)
		}
	}
	if err := sh.Read(ctx, regions.Scope{Region: "05"}, func(*pgx.Batch) {}); !errors.Is(err, shardmap.ErrNotOwned) {
		t.Fatalf("read of a region not served here = %v, want ErrNotOwned", err)
	}
	for range writes {
		if err := sh.Batch(ctx, lombardia, func(*pgx.Batch) {}); err != nil {
			t.Fatalf("write of a region served here: %v", err)
		}
	}
	m.Close() // the backends exit and report their calls

	conn := pgtest.Connect(t, admin)
	var calls int64
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		err := conn.QueryRow(ctx, `SELECT coalesce(sum(calls), 0)::int8 FROM pg_stat_user_functions
			WHERE schemaname = 'dms' AND funcname = 'fence'`).Scan(&calls)
		if err != nil {
			t.Fatal(err)
		}
		if calls >= writes || time.Now().After(deadline) {
			break
		}
	}
	if calls != writes {
		t.Errorf("dms.fence completed %d calls for %d reads and %d writes, want %d (the writes')", calls, reads, writes, writes)
	}
}

// TestHolderRunRefreshes checks Holder.Run: a call that a shard's fence
// refuses because the region moved reloads the assignments once for a
// whole burst and runs again on the shard they name; without a
// refresher, or for a frozen region, the refusal comes back.
func TestHolderRunRefreshes(t *testing.T) {
	cfg := pgtest.NewDeployment(t, pg, "fencerun", twoShards())
	// Lombardia moved from nw to rest: rest owns it, nw does not.
	pgtest.Exec(t, adminOf(t, cfg, "nw"), `UPDATE dms.shard_regions SET owned = false WHERE region_id = 3`)
	pgtest.Exec(t, adminOf(t, cfg, "rest"), `INSERT INTO dms.shard_regions (region_id, owned) VALUES (3, true)`)
	moved := cfg
	moved.Regions = map[string]string{}
	for k, v := range cfg.Regions {
		moved.Regions[k] = v
	}
	moved.Regions["03"] = "rest"

	h, err := shardmap.NewHolder(cfg, shardmap.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx := context.Background()
	read := func(sh *shardmap.Shard) error {
		return sh.Read(ctx, regions.Scope{Region: "03"}, func(b *pgx.Batch) { b.Queue(`SELECT count(*) FROM markets`) })
	}

	if err := h.Run(ctx, nil, "03", read); !errors.Is(err, shardmap.ErrNotOwned) {
		t.Fatalf("Run without a refresher = %v, want ErrNotOwned", err)
	}

	failing := errors.New("control database unreachable")
	h.SetRefresher(func(context.Context) error { return failing })
	if err := h.Run(ctx, nil, "03", read); !errors.Is(err, shardmap.ErrNotOwned) {
		t.Fatalf("Run with a failing refresher = %v, want ErrNotOwned", err)
	}

	var refreshes atomic.Int32
	h.SetRefresher(func(context.Context) error {
		refreshes.Add(1)
		_, err := h.Reload(moved)
		return err
	})
	const burst = 8
	var fenced sync.WaitGroup // every first try has been sent before any refresh starts
	fenced.Add(burst)
	served := make([]string, burst)
	errs := make([]error, burst)
	var wg sync.WaitGroup
	for i := range burst {
		wg.Go(func() {
			first := true
			errs[i] = h.Run(ctx, nil, "03", func(sh *shardmap.Shard) error {
				if first {
					first = false
					fenced.Done()
					fenced.Wait()
				}
				served[i] = sh.Name()
				return read(sh)
			})
		})
	}
	wg.Wait()
	for i := range burst {
		if errs[i] != nil || served[i] != "rest" {
			t.Errorf("Run #%d = %v, served by %s; want nil, by rest", i, errs[i], served[i])
		}
	}
	if n := refreshes.Load(); n != 1 {
		t.Errorf("a burst of %d fenced calls refreshed %d times, want 1", burst, n)
	}

	// A frozen region is not retried: the freeze outlasts a request.
	pgtest.Exec(t, adminOf(t, cfg, "rest"), `UPDATE dms.shard_regions SET frozen = true WHERE region_id = 3`)
	tries := 0
	err = h.Run(ctx, nil, "03", func(sh *shardmap.Shard) error {
		tries++
		return sh.Batch(ctx, regions.Scope{Region: "03"}, func(b *pgx.Batch) { b.Queue(`SELECT 1`) })
	})
	if !errors.Is(err, shardmap.ErrFrozen) || tries != 1 {
		t.Errorf("Run of a write to a frozen region = %v after %d tries, want ErrFrozen after 1", err, tries)
	}
}

// BenchmarkFence measures what the fence adds to a call: the scope
// statement alone, with the fence (a region) and without (no region), for
// a read and a write. The difference is the fence's cost per transaction
// plus noise of the round trip; docs/architecture.md#22 has the numbers.
func BenchmarkFence(b *testing.B) {
	sh := lombardy(b, pgtest.NewDeployment(b, pg, "fencebench", twoShards()))
	ctx := context.Background()
	for _, bb := range []struct {
		name string
		call func(sc regions.Scope) error
	}{
		{"read", func(sc regions.Scope) error { return sh.Read(ctx, sc, func(*pgx.Batch) {}) }},
		{"write", func(sc regions.Scope) error { return sh.Batch(ctx, sc, func(*pgx.Batch) {}) }},
	} {
		for _, sc := range []regions.Scope{{}, {Region: "03"}} {
			name := bb.name + "/unfenced"
			if sc.Region != "" {
				name = bb.name + "/fenced"
			}
			b.Run(name, func(b *testing.B) {
				for b.Loop() {
					if err := bb.call(sc); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
