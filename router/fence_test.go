package router

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/control"
	"github.com/dmshub/dmsrouter/national"
	"github.com/dmshub/dmsrouter/pgtest"
)

// TestFence checks the router's side of the fence. Lombardia (03) is held
// by two shards, nw (where the router's file puts it) and rest, and moves
// between them: the database that owns it changes, and the control
// database's epoch names the new shard without a NOTIFY, so the router
// learns of the move only from the fence. A request that meets it reloads
// the assignments and is served by the shard that owns the region; without
// a control database it is 503 region-moved; a frozen region refuses
// writes with 503 region-frozen and goes on reading; the breaker stays
// closed and nothing is written by a refused request.
func TestFence(t *testing.T) {
	e := newEnv(t, "fence", false)
	ctx := context.Background()
	nw, rest := e.shardDSN(t, "nw"), e.shardDSN(t, "rest")
	// rest holds a copy of Lombardia that tells it apart: its market
	// with milano's id has another name.
	pgtest.Exec(t, rest, `INSERT INTO dms.shard_regions (region_id, owned) VALUES (3, false)`)
	pgtest.Exec(t, rest, `INSERT INTO markets (id, region_id, code, name, province, comune, comune_name)
		VALUES (dms.next_id('markets', 3::smallint), 3, 'MI001', 'Mercato spostato', '015', '015146', 'Milano')`)

	// The control database, unreachable while the router starts so that
	// the router serves its file (03 on nw) and, polling every ten
	// minutes, reads it again only when the fence asks.
	ctlDB := pgtest.Prefix("fence_control")
	drop := func() {
		pg.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{ctlDB}.Sanitize()+" WITH (FORCE)")
	}
	drop()
	if err := pg.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{ctlDB}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	ctl := pg.AdminDB(ctlDB)
	if r := control.Migrate(ctx, ctl, e.m.Config().Regions); r.Err != nil {
		t.Fatal(r.Err)
	}
	allow := func(ok bool) {
		t.Helper()
		pgtest.Exec(t, pg.AdminDSN, "ALTER DATABASE "+pgx.Identifier{ctlDB}.Sanitize()+" ALLOW_CONNECTIONS "+map[bool]string{true: "true", false: "false"}[ok])
	}
	allow(false)
	f, err := control.Follow(ctx, control.Config{DSN: ctl, PollInterval: 10 * time.Minute, RouterID: "fence"}, e.m.Config(), e.m, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	allow(true)
	// One read of the control database opens the follower's connection,
	// as its polls keep one open in production: a first refresh that had
	// to connect on a machine loaded by the rest of the suite outlasted
	// shardmap.RefreshTimeout once, and the leg of the moved region was
	// unavailable. Epoch 1 holds the file's regions.
	deadline := time.Now().Add(20 * time.Second)
	for err := f.Refresh(ctx); err != nil; err = f.Refresh(ctx) {
		if time.Now().After(deadline) {
			t.Fatalf("the follower cannot read the control database: %v", err)
		}
	}
	e.m.SetRefresher(f.Refresh)

	// own makes the database of shard to the only one that owns 03.
	own := func(t *testing.T, to string, frozen bool) {
		t.Helper()
		for name, dsn := range map[string]string{"nw": nw, "rest": rest} {
			pgtest.Exec(t, dsn, `UPDATE dms.shard_regions SET owned = $1, frozen = $2 WHERE region_id = 3`, name == to, name == to && frozen)
		}
	}
	// move moves 03 to shard to: its database owns it, and a new epoch
	// (written without a NOTIFY) names it. The epoch and its assignments
	// are one statement, as control.write_epoch writes them in one
	// transaction: a follower that read the epoch between two would find
	// it without assignments, refuse it, and never apply it.
	move := func(t *testing.T, to string) {
		t.Helper()
		own(t, to, false)
		pgtest.Exec(t, ctl, `WITH e AS (
				INSERT INTO control.epochs (epoch, note) SELECT max(epoch) + 1, 'move 03' FROM control.epochs RETURNING epoch)
			INSERT INTO control.assignments (epoch, region_id, shard)
			SELECT e.epoch, a.region_id, CASE WHEN a.region_id = '03' THEN $1 ELSE a.shard END
			FROM e JOIN control.assignments a ON a.epoch = e.epoch - 1`, to)
	}
	serving := func(t *testing.T, want string) {
		t.Helper()
		sh, err := e.m.For("03")
		if err != nil || sh.Name() != want || sh.State() != "closed" {
			t.Fatalf("the router serves 03 from %v (%v), want %s with its breaker closed", sh.Name(), err, want)
		}
	}
	markets := func(dsn, code string) int64 {
		return scalar(t, dsn, `SELECT count(*) FROM markets WHERE region_id = 3 AND code = $1`, code)
	}
	milanoName := func(t *testing.T) string {
		t.Helper()
		r := e.get(t, "lombardia", "/v1/markets/"+ids(milano))
		wantStatus(t, "GET milano", r, 200)
		return r.body["name"].(string)
	}
	wantProblem := func(t *testing.T, what string, r response, typ string) {
		t.Helper()
		wantStatus(t, what, r, 503)
		if r.body["type"] != typ || r.header.Get("Retry-After") != "1" {
			t.Errorf("%s = %s with Retry-After %q, want %s with Retry-After 1", what, r.raw, r.header.Get("Retry-After"), typ)
		}
	}
	leg03 := func(t *testing.T, date string) (string, national.SummaryResponse) {
		t.Helper()
		var got national.SummaryResponse
		decode(t, e.get(t, "national", "/v1/national/summary?date="+date), &got)
		for _, r := range got.Regions {
			if r.Region == "03" {
				return r.Status, got
			}
		}
		t.Fatalf("no leg of 03 in %+v", got)
		return "", got
	}

	t.Run("a national leg of a moved region reads the new shard", func(t *testing.T) {
		move(t, "rest")
		status, got := leg03(t, "2026-06-15")
		var figures national.RegionFigures
		for _, f := range got.ByRegion {
			if f.Region == "03" {
				figures = f
			}
		}
		if status != national.StatusOK || got.Partial || figures.MarketsActive != 1 {
			t.Errorf("leg 03 = %s, partial %v, 03's figures %+v; want ok, complete, rest's one market", status, got.Partial, figures)
		}
		serving(t, "rest")
	})
	t.Run("a write to a moved region is written on the new shard", func(t *testing.T) {
		move(t, "nw")
		r := e.do(t, "lombardia", "POST", "/v1/markets", `{"code":"MI777","name":"Mercato nuovo","comune":"015146"}`)
		wantStatus(t, "POST /v1/markets", r, 201)
		if n, m := markets(nw, "MI777"), markets(rest, "MI777"); n != 1 || m != 0 {
			t.Errorf("the new market is %d times on nw, %d on rest; want once, on nw", n, m)
		}
		serving(t, "nw")
	})
	t.Run("a read of a moved region reads the new shard", func(t *testing.T) {
		move(t, "rest")
		if got := milanoName(t); got != "Mercato spostato" {
			t.Errorf("GET milano after the move = %q, want rest's Mercato spostato", got)
		}
		serving(t, "rest")
	})
	t.Run("without a control database a moved region is 503 region-moved", func(t *testing.T) {
		e.m.SetRefresher(nil)
		defer e.m.SetRefresher(f.Refresh)
		own(t, "nw", false) // the router still says rest
		wantProblem(t, "GET milano", e.get(t, "lombardia", "/v1/markets/"+ids(milano)), "/problems/region-moved")
		wantProblem(t, "POST /v1/markets", e.do(t, "lombardia", "POST", "/v1/markets", `{"code":"MI778","name":"Mai scritto","comune":"015146"}`), "/problems/region-moved")
		if n, m := markets(nw, "MI778"), markets(rest, "MI778"); n+m != 0 {
			t.Errorf("a refused write left its market on nw %d, rest %d times", n, m)
		}
		if status, got := leg03(t, "2026-06-14"); status != national.StatusUnavailable || !got.Partial {
			t.Errorf("leg 03 = %s, partial %v; want unavailable, partial", status, got.Partial)
		}
		serving(t, "rest")
		if m := e.metrics(t); !strings.Contains(m, `dms_shard_fence_refusals_total{`) || !strings.Contains(m, `reason="not_owned"`) {
			t.Errorf("metrics have no fence refusals of reason not_owned")
		}
	})
	t.Run("a frozen region refuses writes and goes on reading", func(t *testing.T) {
		own(t, "rest", true)
		for range 4 { // more than the breaker's failures
			wantProblem(t, "POST /v1/markets", e.do(t, "lombardia", "POST", "/v1/markets", `{"code":"MI779","name":"Mai scritto","comune":"015146"}`, "Idempotency-Key", "frozen-1"), "/problems/region-frozen")
		}
		if n, m := markets(nw, "MI779"), markets(rest, "MI779"); n+m != 0 {
			t.Errorf("a refused write left its market on nw %d, rest %d times", n, m)
		}
		if got := milanoName(t); got != "Mercato spostato" {
			t.Errorf("GET milano while frozen = %q, want rest's Mercato spostato", got)
		}
		serving(t, "rest")
		own(t, "rest", false)
		wantStatus(t, "POST /v1/markets after the freeze, with the same key", e.do(t, "lombardia", "POST", "/v1/markets", `{"code":"MI779","name":"Mai scritto","comune":"015146"}`, "Idempotency-Key", "frozen-1"), 201)
	})
}
