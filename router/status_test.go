package router

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/auth"
	"github.com/dmshub/dmsrouter/control"
	"github.com/dmshub/dmsrouter/fleet"
	"github.com/dmshub/dmsrouter/migrations"
	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/regions"
)

// newStatusEnv is newEnv with tokens for the status's callers (dba and
// super_admin see it, admin_pa does not) and some calls made on every
// shard, so that their windows hold calls. With stopLazio, shard lazio's
// cluster is then halted and its breaker opened; its breaker stays open
// for a minute, so that what the test reads does not depend on how fast
// it reads it.
func newStatusEnv(t *testing.T, name string, stopLazio bool) *env {
	t.Helper()
	e := newEnv(t, name, stopLazio)
	e.addToken(t, "dba", "dba", "national")
	e.addToken(t, "super", "super_admin", "national")
	if stopLazio {
		cfg := e.m.Config()
		cfg.Database.BreakerOpenTimeout = time.Minute
		if _, err := e.m.Reload(cfg); err != nil {
			t.Fatal(err)
		}
	}
	for _, who := range []string{"lombardia", "lazio", "national"} {
		wantStatus(t, "GET /v1/markets as "+who, e.get(t, who, "/v1/markets"), http.StatusOK)
	}
	if !stopLazio {
		return e
	}
	if err := e.owned.Halt(); err != nil {
		t.Fatal(err)
	}
	lazio, err := e.m.For("12")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; lazio.State() != "open"; i++ {
		if i == 10 {
			t.Fatalf("lazio's breaker is %s after %d failed reads", lazio.State(), i)
		}
		wantStatus(t, "GET /v1/markets as lazio, its shard stopped", e.get(t, "lazio", "/v1/markets"), http.StatusServiceUnavailable)
	}
	return e
}

func TestAdminShards(t *testing.T) {
	e := newStatusEnv(t, "status", true)
	latest, err := migrations.Latest()
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		who, path string
		want      int
	}{
		{"", "/v1/admin/shards", http.StatusUnauthorized},
		{"national", "/v1/admin/shards", http.StatusForbidden}, // admin_pa, national
		{"lombardia", "/v1/admin/shards", http.StatusForbidden},
		{"", "/status", http.StatusUnauthorized},
		{"national", "/status", http.StatusForbidden},
		{"super", "/v1/admin/shards", http.StatusOK},
		{"super", "/status", http.StatusOK},
	} {
		r := e.get(t, tc.who, tc.path)
		wantStatus(t, "GET "+tc.path+" as "+tc.who, r, tc.want)
		if tc.want != http.StatusOK && r.header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("GET %s as %q: Content-Type %q, want problem+json", tc.path, tc.who, r.header.Get("Content-Type"))
		}
		if tc.want == http.StatusForbidden && !strings.Contains(r.raw, "neither dba nor super_admin") {
			t.Errorf("GET %s as %q = %s, want it to say who may", tc.path, tc.who, r.raw)
		}
	}

	r := e.get(t, "dba", "/v1/admin/shards")
	wantStatus(t, "GET /v1/admin/shards as dba", r, http.StatusOK)
	var st fleet.Status
	if err := json.Unmarshal([]byte(r.raw), &st); err != nil {
		t.Fatal(err)
	}
	if st.Source != "router" || st.Control != nil {
		t.Errorf("status source %q, control %+v; want router, none (no control database)", st.Source, st.Control)
	}
	byName := map[string]fleet.Shard{}
	for _, sh := range st.Shards {
		byName[sh.Name] = sh
	}
	if got := slices.Sorted(func(yield func(string) bool) {
		for n := range byName {
			if !yield(n) {
				return
			}
		}
	}); !slices.Equal(got, []string{"lazio", "nw", "rest"}) {
		t.Fatalf("shards %v, want lazio, nw, rest", got)
	}

	nw := byName["nw"]
	if !nw.Available || nw.Error != "" || nw.SchemaVersion != latest || nw.LatestVersion != latest || nw.Frozen {
		t.Errorf("nw = available %v, error %q, schema %d of %d, frozen %v; want available at %d, not frozen",
			nw.Available, nw.Error, nw.SchemaVersion, nw.LatestVersion, nw.Frozen, latest)
	}
	if want := []regions.Code{"01", "03"}; !slices.Equal(nw.Regions, want) || !slices.Equal(nw.Held, want) {
		t.Errorf("nw serves %v and holds %v, want %v", nw.Regions, nw.Held, want)
	}
	if len(nw.Servers) != 1 || nw.Servers[0].Role != "primary" || nw.Servers[0].Breaker != "closed" ||
		nw.Servers[0].Pool.Max != 4 || nw.Servers[0].Latency.Calls == 0 || nw.Servers[0].Latency.P50 <= 0 {
		t.Errorf("nw servers = %+v, want its primary, closed, a pool of 4, calls with a latency", nw.Servers)
	}

	lazio := byName["lazio"]
	if lazio.Available || lazio.Error == "" || !slices.Equal(lazio.Regions, []regions.Code{"12"}) {
		t.Errorf("lazio = available %v, error %q, regions %v; want unavailable with why, region 12", lazio.Available, lazio.Error, lazio.Regions)
	}
	if len(lazio.Servers) != 1 || lazio.Servers[0].Breaker != "open" || lazio.Servers[0].Latency.Failed == 0 {
		t.Errorf("lazio servers = %+v, want its primary's breaker open, failed calls counted", lazio.Servers)
	}
}

// TestAdminShardsControl reads the control database's part (the epoch,
// this router among the routers, a move in progress with its phase) and
// the freezes a shard's database holds: a region a move froze, and the
// database frozen for maintenance.
func TestAdminShardsControl(t *testing.T) {
	e := newEnv(t, "statusctl", false)
	ctx := context.Background()
	e.addToken(t, "dba", "dba", "national")
	ctlDB := pgtest.Prefix("statusctl_control")
	if err := pg.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{ctlDB}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pg.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{ctlDB}.Sanitize()+" WITH (FORCE)")
	})
	ctl := pg.AdminDB(ctlDB)
	if r := control.Migrate(ctx, ctl, e.m.Config().Regions); r.Err != nil {
		t.Fatal(r.Err)
	}
	f, err := control.Follow(ctx, control.Config{DSN: ctl, RouterID: "status-test"}, e.m.Config(), e.m, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	v, err := auth.NewVerifier(auth.Config{HS256Secret: pgtest.TestSecret})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(e.m, v, e.national, Options{Control: f, Now: func() time.Time { return fixedNow }})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(loadContract(t).validated(e.senders.of, s))
	t.Cleanup(e.srv.Close)

	pgtest.Exec(t, ctl, `INSERT INTO control.moves (region_id, source, target, phase, max_freeze) VALUES ('05', 'rest', 'nw', 'catching_up', '5s')`)
	pgtest.Exec(t, e.shardDSN(t, "nw"), `UPDATE dms.shard_regions SET frozen = true WHERE region_id = 3`)
	pgtest.Exec(t, e.shardDSN(t, "rest"), "ALTER DATABASE "+pgx.Identifier{pgtest.Prefix("statusctl") + "_rest"}.Sanitize()+" SET default_transaction_read_only = on")

	var st fleet.Status
	decode(t, e.get(t, "dba", "/v1/admin/shards"), &st)
	c := st.Control
	if c == nil || c.Error != "" {
		t.Fatalf("control = %+v, want it read", c)
	}
	if c.Epoch != 1 || len(c.Routers) != 1 || c.Routers[0].ID != "status-test" || c.Routers[0].EpochApplied != 1 || !c.Routers[0].Live {
		t.Errorf("control epoch %d, routers %+v; want epoch 1 and this router, live, on it", c.Epoch, c.Routers)
	}
	if len(c.Moves) != 1 || c.Moves[0].Region != "05" || c.Moves[0].Phase != "catching_up" || c.Moves[0].Target != "nw" {
		t.Errorf("moves = %+v, want region 05 to nw, catching_up", c.Moves)
	}
	for _, sh := range st.Shards {
		wantFrozen, wantRegions := sh.Name == "rest", []regions.Code{}
		if sh.Name == "nw" {
			wantRegions = []regions.Code{"03"}
		}
		if sh.Frozen != wantFrozen || !slices.Equal(sh.FrozenRegions, wantRegions) {
			t.Errorf("shard %s: frozen %v, frozen regions %v; want %v, %v", sh.Name, sh.Frozen, sh.FrozenRegions, wantFrozen, wantRegions)
		}
	}
	page := e.get(t, "dba", "/status")
	for _, want := range []string{`<b id="control-epoch">1</b>`, "catching_up", "status-test", "region 03 frozen by a move", "frozen (read-only)"} {
		if !strings.Contains(page.raw, want) {
			t.Errorf("/status lacks %q", want)
		}
	}
}
