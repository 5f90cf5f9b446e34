package shardmap_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &pg)) }

// twoShards puts the north-west regions on shard "nw" and the rest on "rest".
func twoShards() pgtest.Layout {
	return pgtest.Split("rest", pgtest.Layout{"01": "nw", "02": "nw", "03": "nw", "07": "nw"})
}

// withMarkets returns a deployment of twoShards named name with two
// markets of Lombardia (one in Milano, one in Bergamo) and one of Piemonte
// written on the "nw" shard as its owner.
func withMarkets(tb testing.TB, name string) shardmap.Config {
	tb.Helper()
	cfg := pgtest.NewDeployment(tb, pg, name, twoShards())
	admin := cfg.Shards[0].AdminDSN()
	if cfg.Shards[0].Name != "nw" {
		admin = cfg.Shards[1].AdminDSN()
	}
	pgtest.Exec(tb, admin, `INSERT INTO markets (id, region_id, code, name, province, comune) VALUES
		(dms.next_id('markets', 3::smallint), 3, 'MI001', 'Mercato di Milano', '015', '015146'),
		(dms.next_id('markets', 3::smallint), 3, 'BG001', 'Mercato di Bergamo', '016', '016024'),
		(dms.next_id('markets', 1::smallint), 1, 'TO001', 'Mercato di Torino', '001', '001272')`)
	return cfg
}

// lombardy returns the shard of region 03 in a map of cfg, closed when tb
// ends.
func lombardy(tb testing.TB, cfg shardmap.Config) *shardmap.Shard {
	tb.Helper()
	sh, err := pgtest.OpenMap(tb, cfg).For("03")
	if err != nil {
		tb.Fatal(err)
	}
	return sh
}

func marketNames(tb testing.TB, sh *shardmap.Shard, sc regions.Scope, sql string) []string {
	tb.Helper()
	var names []string
	err := sh.Read(context.Background(), sc, func(b *pgx.Batch) {
		b.Queue(sql).Query(func(rows pgx.Rows) error {
			var err error
			names, err = pgx.CollectRows(rows, pgx.RowTo[string])
			return err
		})
	})
	if err != nil {
		tb.Fatalf("Read: %v", err)
	}
	return names
}

func TestReadAppliesRowLevelSecurity(t *testing.T) {
	sh := lombardy(t, withMarkets(t, "rls"))
	// No region filter in the SQL: only row-level security narrows it.
	const all = `SELECT name FROM markets ORDER BY name`
	tests := []struct {
		name  string
		scope regions.Scope
		want  string
	}{
		{"region 03", regions.Scope{Region: "03"}, "Mercato di Bergamo,Mercato di Milano"},
		{"region 01 on the same shard", regions.Scope{Region: "01"}, "Mercato di Torino"},
		{"province 016", regions.Scope{Region: "03", Province: "016"}, "Mercato di Bergamo"},
		{"comune 015146", regions.Scope{Region: "03", Province: "015", Comune: "015146"}, "Mercato di Milano"},
		{"other comune", regions.Scope{Region: "03", Comune: "015139"}, ""},
		{"no scope", regions.Scope{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(marketNames(t, sh, tt.scope, all), ",")
			if got != tt.want {
				t.Errorf("Read(%+v) = %q, want %q", tt.scope, got, tt.want)
			}
		})
	}
}

func TestReadIsReadOnlyAndScopeDoesNotLeak(t *testing.T) {
	sh := lombardy(t, withMarkets(t, "ro"))
	ctx := context.Background()
	err := sh.Read(ctx, regions.Scope{Region: "03"}, func(b *pgx.Batch) {
		b.Queue(`UPDATE markets SET name = 'x'`)
	})
	if !errors.Is(err, err) || err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("Read(UPDATE) error = %v, want a read-only transaction error", err)
	}
	// The settings are transaction-local: the next use of the same
	// connection without a scope sees nothing.
	for range 10 {
		var n int
		err := sh.Tx(ctx, regions.Scope{}, pgx.ReadOnly, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, `SELECT count(*) FROM markets`).Scan(&n)
		})
		if err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Fatalf("unscoped count = %d, want 0", n)
		}
	}
}

func TestAppRoleIsBoundByRLS(t *testing.T) {
	cfg := pgtest.NewDeployment(t, pg, "role", twoShards())
	conn, err := pgx.Connect(context.Background(), cfg.Shards[0].Primary)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var super, bypass, owner bool
	err = conn.QueryRow(context.Background(), `SELECT rolsuper, rolbypassrls,
		(SELECT tableowner = current_user FROM pg_tables WHERE tablename = 'markets')
		FROM pg_roles WHERE rolname = current_user`).Scan(&super, &bypass, &owner)
	if err != nil {
		t.Fatal(err)
	}
	if super || bypass || owner {
		t.Errorf("dms_app: superuser=%v bypassrls=%v owner=%v, want all false", super, bypass, owner)
	}
	var forced int
	err = conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_class
		WHERE relname IN ('markets','stalls','vendors','concessions','vendor_presences','audit_log')
		AND relrowsecurity AND relforcerowsecurity`).Scan(&forced)
	if err != nil || forced != 6 {
		t.Errorf("tables with forced RLS = %d (%v), want 6", forced, err)
	}
}

// TestRegionReader checks the role a read runs as, and what that role may
// do when the router is bypassed.
func TestRegionReader(t *testing.T) {
	sh := lombardy(t, withMarkets(t, "rrole"))
	ctx := context.Background()
	for _, tt := range []struct {
		scope regions.Scope
		want  string
	}{
		{regions.Scope{Region: "03"}, shardmap.RegionReader},
		{regions.Scope{Region: "03", Province: "016"}, "dms_app"},
		{regions.Scope{Region: "03", Province: "015", Comune: "015146"}, "dms_app"},
		{regions.Scope{Region: "03", Market: 1}, "dms_app"},
	} {
		if got := strings.Join(marketNames(t, sh, tt.scope, `SELECT current_user::text`), ""); got != tt.want {
			t.Errorf("Read(%+v) runs as %q, want %q", tt.scope, got, tt.want)
		}
		// The switch ends with the read: a write transaction on the
		// same pool runs as the login role.
		var user string
		err := sh.Tx(ctx, tt.scope, pgx.ReadWrite, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, `SELECT current_user::text`).Scan(&user)
		})
		if err != nil || user != "dms_app" {
			t.Errorf("Tx(%+v) after a read runs as %q (%v), want dms_app", tt.scope, user, err)
		}
	}

	conn, err := pgx.Connect(ctx, sh.Config().Primary)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	sql := func(q string) error {
		_, err := conn.Exec(ctx, q)
		return err
	}
	// dms_region may read its region, and nothing else.
	if err := sql(`BEGIN; SET LOCAL ROLE dms_region; SELECT set_config('dms.region', '3', true)`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM markets`).Scan(&n); err != nil || n != 2 {
		t.Errorf("dms_region in region 03 counts %d markets (%v), want 2", n, err)
	}
	for _, q := range []string{
		`UPDATE markets SET name = 'x'`,
		`INSERT INTO audit_log (region_id) VALUES (3)`,
		`SELECT * FROM audit_log`,
		`SELECT * FROM idempotency_keys`,
	} {
		if err := sql(`SAVEPOINT s; ` + q); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("as dms_region, %s: %v, want permission denied", q, err)
		}
		if err := sql(`ROLLBACK TO SAVEPOINT s`); err != nil {
			t.Fatal(err)
		}
	}
	if err := sql(`ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	// Without the switch, dms_app holds none of dms_region's policies: a
	// comune scope still narrows.
	if err := sql(`BEGIN; SELECT set_config('dms.region', '3', true), set_config('dms.comune', '015146', true)`); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM markets`).Scan(&n); err != nil || n != 1 {
		t.Errorf("dms_app in comune 015146 counts %d markets (%v), want 1", n, err)
	}
	if err := sql(`ROLLBACK`); err != nil {
		t.Fatal(err)
	}
}

// validConfig is a shard map that validates: all 20 regions on shard s1.
func validConfig() shardmap.Config {
	cfg := shardmap.Config{
		Database: shardmap.DatabaseConfig{ConnectTimeout: 2 * time.Second, AcquireTimeout: time.Second,
			StatementTimeout: 5 * time.Second, BreakerFailures: 5, BreakerOpenTimeout: 10 * time.Second},
		Shards:  []shardmap.ShardConfig{{Name: "s1", Primary: "postgres://dms_app@127.0.0.1:5432/dms?sslmode=disable", MaxConns: 4}},
		Regions: map[string]string{},
	}
	for _, r := range regions.All() {
		cfg.Regions[string(r.Code)] = "s1"
	}
	return cfg
}

func TestValidate(t *testing.T) {
	valid := validConfig()
	if err := valid.Validate(); err != nil {
		t.Fatalf("Validate(valid) = %v", err)
	}
	tests := []struct {
		name string
		edit func(c *shardmap.Config)
		want string
	}{
		{"region missing", func(c *shardmap.Config) { delete(c.Regions, "07") }, `regions.07: region 07 (Liguria) is not mapped to a shard`},
		{"unknown shard", func(c *shardmap.Config) { c.Regions["07"] = "s9" }, `regions.07: unknown shard "s9"`},
		{"unquoted region", func(c *shardmap.Config) { c.Regions["7"] = "s1" }, `regions.7: unknown region code`},
		{"unknown region", func(c *shardmap.Config) { c.Regions["21"] = "s1" }, `regions.21: unknown region code`},
		{"bad dsn", func(c *shardmap.Config) { c.Shards[0].Primary = "postgres://x@host:notaport/db" }, `shards[s1].primary: cannot parse DSN`},
		{"empty dsn", func(c *shardmap.Config) { c.Shards[0].Primary = "" }, `shards[s1].primary: must not be empty`},
		{"bad replica", func(c *shardmap.Config) { c.Shards[0].Replicas = []string{"postgres://x@host:notaport/db"} }, `shards[s1].replicas[0]: cannot parse DSN`},
		{"bad name", func(c *shardmap.Config) { c.Shards[0].Name = "S 1" }, `shards[0].name: "S 1" must be lower case`},
		{"duplicate shard", func(c *shardmap.Config) { c.Shards = append(c.Shards, c.Shards[0]) }, `shards[1].name: shard "s1" is defined twice`},
		{"no shards", func(c *shardmap.Config) { c.Shards = nil }, `shards: at least one shard is required`},
		{"max conns", func(c *shardmap.Config) { c.Shards[0].MaxConns = 1001 }, `shards[s1].max_conns: 1001 is outside 1..1000`},
		{"timeout", func(c *shardmap.Config) { c.Database.StatementTimeout = 0 }, `database.statement_timeout: must be a positive duration`},
		{"breaker", func(c *shardmap.Config) { c.Database.BreakerFailures = 0 }, `database.breaker_failures: must be at least 1`},
		{"warm conns negative", func(c *shardmap.Config) { c.Database.WarmConns = -1 }, `database.warm_conns: -1 is outside 0..1000`},
		{"warm conns", func(c *shardmap.Config) { c.Database.WarmConns = 1001 }, `database.warm_conns: 1001 is outside 0..1000`},
		{"max waiting", func(c *shardmap.Config) { c.Database.MaxWaiting = -1 }, `database.max_waiting: -1 is outside 0..100000`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := validConfig()
			tt.edit(&cfg)
			if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v, want it to name %q", err, tt.want)
			}
		})
	}
}

func TestHolderReload(t *testing.T) {
	cfg := withMarkets(t, "reload")
	h, err := shardmap.NewHolder(cfg, shardmap.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	before := h.Map()
	nw, _ := before.For("03")
	rest, _ := before.For("05")

	// A bad configuration leaves the current map in place.
	bad := cfg
	bad.Regions = map[string]string{"03": "nw"}
	if _, err := h.Reload(bad); err == nil || h.Map() != before {
		t.Fatalf("Reload(bad) = %v, map replaced: %v; want an error and the old map", err, h.Map() != before)
	}

	// Move Lombardia to a new shard "lom" (here: the same database under
	// another name) and change nothing else.
	moved := cfg
	moved.Regions = map[string]string{}
	for k, v := range cfg.Regions {
		moved.Regions[k] = v
	}
	moved.Regions["03"] = "lom"
	moved.Shards = append(append([]shardmap.ShardConfig(nil), cfg.Shards...), shardmap.ShardConfig{
		Name: "lom", Primary: nw.Config().Primary, Admin: nw.Config().Admin, MaxConns: 2,
	})
	changes, err := h.Reload(moved)
	if err != nil {
		t.Fatalf("Reload(moved): %v", err)
	}
	want := []shardmap.Change{{Kind: "shard added", Name: "lom"}, {Kind: "region moved", Name: "03", Detail: "nw -> lom"}}
	if fmt.Sprint(changes) != fmt.Sprint(want) {
		t.Errorf("Reload changes = %v, want %v", changes, want)
	}
	after := h.Map()
	if s, _ := after.For("05"); s != rest {
		t.Errorf("unchanged shard was reopened")
	}
	if s, _ := after.For("01"); s != nw {
		t.Errorf("shard nw (still serving 01) was reopened")
	}
	lom, _ := after.For("03")
	if lom.Name() != "lom" || strings.Join(regionStrings(after.RegionsOf("nw")), ",") != "01,02,07" {
		t.Errorf("after the move: 03 on %s, nw serves %v", lom.Name(), after.RegionsOf("nw"))
	}
	if got := marketNames(t, lom, regions.Scope{Region: "03"}, `SELECT name FROM markets ORDER BY name`); len(got) != 2 {
		t.Errorf("markets of 03 on the new shard = %v", got)
	}
}

func regionStrings(rs []regions.Code) []string {
	var out []string
	for _, r := range rs {
		out = append(out, string(r))
	}
	return out
}

func TestBreakerCountsOnlyInfrastructureFailures(t *testing.T) {
	cfg := pgtest.NewDeployment(t, pg, "breaker", twoShards())
	// Shard "rest" points at a port where nothing listens.
	for i := range cfg.Shards {
		if cfg.Shards[i].Name == "rest" {
			cfg.Shards[i].Primary = "postgres://dms_app@127.0.0.1:1/nothing?sslmode=disable"
		}
	}
	cfg.Database.BreakerFailures = 3
	cfg.Database.BreakerOpenTimeout = 300 * time.Millisecond
	m := pgtest.OpenMap(t, cfg)
	ctx := context.Background()
	nw, _ := m.For("03")
	sc := regions.Scope{Region: "03"}

	clientErrors := map[string]func() error{
		"syntax error": func() error {
			return nw.Read(ctx, sc, func(b *pgx.Batch) { b.Queue(`SELEC 1`) })
		},
		"unique violation": func() error {
			return nw.Tx(ctx, sc, pgx.ReadWrite, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, `INSERT INTO markets (id, region_id, code, name, province, comune) VALUES
					(dms.next_id('markets', 3::smallint), 3, 'XX001', 'a', '015', '015146'),
					(dms.next_id('markets', 3::smallint), 3, 'XX001', 'b', '015', '015146')`)
				return err
			})
		},
		"no rows": func() error {
			return nw.Read(ctx, sc, func(b *pgx.Batch) {
				b.Queue(`SELECT 1 WHERE false`).QueryRow(func(row pgx.Row) error { var n int; return row.Scan(&n) })
			})
		},
		"canceled request": func() error {
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			return nw.Read(cctx, sc, func(b *pgx.Batch) { b.Queue(`SELECT pg_sleep(1)`) })
		},
		"callback error": func() error {
			return nw.Tx(ctx, sc, pgx.ReadOnly, func(pgx.Tx) error { return errors.New("validation failed") })
		},
	}
	for name, fn := range clientErrors {
		t.Run(name, func(t *testing.T) {
			for range 5 {
				err := fn()
				if err == nil {
					t.Fatalf("%s: no error", name)
				}
				if shardmap.IsInfrastructure(err) {
					t.Fatalf("IsInfrastructure(%v) = true, want false", err)
				}
			}
			if got := nw.State(); got != "closed" {
				t.Errorf("breaker after 5 x %s = %s, want closed", name, got)
			}
		})
	}

	dead, _ := m.For("05")
	var unavailable *shardmap.UnavailableError
	for i := range 3 {
		err := dead.Read(ctx, regions.Scope{Region: "05"}, func(b *pgx.Batch) { b.Queue(`SELECT 1`) })
		if !errors.As(err, &unavailable) {
			t.Fatalf("read %d on a dead shard: %v, want *UnavailableError", i, err)
		}
	}
	if got := dead.State(); got != "open" {
		t.Fatalf("breaker after 3 connection failures = %s, want open", got)
	}
	if got := nw.State(); got != "closed" {
		t.Errorf("a dead shard changed another shard's breaker to %s", got)
	}
	time.Sleep(350 * time.Millisecond)
	if got := dead.State(); got != "half-open" {
		t.Errorf("breaker after its open timeout = %s, want half-open", got)
	}
}

func TestReplicas(t *testing.T) {
	cfg := withMarkets(t, "replica")
	const dead = "postgres://dms_app@127.0.0.1:1/nothing?sslmode=disable"
	ctx := context.Background()
	for i := range cfg.Shards {
		if cfg.Shards[i].Name == "nw" {
			real := cfg.Shards[i].Primary
			cfg.Shards[i].Replicas = []string{real + "&application_name=replica0", dead}
		}
	}
	sh := lombardy(t, cfg)
	sc := regions.Scope{Region: "03"}
	// A replica gets reads once the lag monitor has measured it.
	waitReadable(t, sh, 0, true)
	// The dead replica is never measured, so it gets no reads: every read
	// goes to the live one. (A replica that dies between two measurements
	// has its read retried on the primary, as Read says.)
	seen := map[string]int{}
	for range 12 {
		err := sh.Read(ctx, sc, func(b *pgx.Batch) {
			b.Queue(`SELECT current_setting('application_name')`).QueryRow(func(row pgx.Row) error {
				var app string
				err := row.Scan(&app)
				seen[app]++
				return err
			})
		})
		if err != nil {
			t.Fatalf("Read with a dead replica: %v", err)
		}
	}
	if seen["replica0"] != 12 {
		t.Errorf("reads served by %v, want all 12 by the live replica", seen)
	}
	// Writes always go to the primary.
	err := sh.Tx(ctx, sc, pgx.ReadWrite, func(tx pgx.Tx) error {
		var app string
		if err := tx.QueryRow(ctx, `SELECT current_setting('application_name')`).Scan(&app); err != nil {
			return err
		}
		if app != "dmsrouter/nw" {
			return fmt.Errorf("write ran on %s", app)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

func TestFrozenDatabaseRefusesWrites(t *testing.T) {
	cfg := pgtest.NewDeployment(t, pg, "frozen", twoShards())
	for _, s := range cfg.Shards {
		c, _ := pgx.ParseConfig(s.AdminDSN())
		pgtest.Exec(t, s.AdminDSN(), "ALTER DATABASE "+pgx.Identifier{c.Database}.Sanitize()+" SET default_transaction_read_only = on")
	}
	sh := lombardy(t, cfg)
	ctx := context.Background()
	for range 6 {
		err := sh.Tx(ctx, regions.Scope{Region: "03"}, pgx.ReadWrite, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO markets (id, region_id, code, name, province, comune) VALUES
				(dms.next_id('markets', 3::smallint), 3, 'MI009', 'x', '015', '015146')`)
			return err
		})
		if !errors.Is(err, shardmap.ErrReadOnly) {
			t.Fatalf("write to a frozen database: %v, want ErrReadOnly", err)
		}
	}
	if got := sh.State(); got != "closed" {
		t.Errorf("breaker after refused writes = %s, want closed", got)
	}
}

// TestBatchIsOneTransaction checks that Batch's statements commit together
// or not at all, under the scope's row-level security.
func TestBatchIsOneTransaction(t *testing.T) {
	sh := lombardy(t, pgtest.NewDeployment(t, pg, "batch", twoShards()))
	ctx := context.Background()
	sc := regions.Scope{Region: "03"}
	insert := func(code string) string {
		return `INSERT INTO markets (id, region_id, code, name, province, comune)
			VALUES (dms.next_id('markets', 3::smallint), 3, '` + code + `', 'x', '015', '015146')`
	}
	count := func() int {
		var n int
		err := sh.Read(ctx, sc, func(b *pgx.Batch) {
			b.Queue(`SELECT count(*) FROM markets`).QueryRow(func(r pgx.Row) error { return r.Scan(&n) })
		})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	// The steps run in order on the same shard: a failed batch must leave
	// nothing behind for the next.
	for _, step := range []struct {
		name    string
		stmts   []string
		wantErr string // in the error; empty for none
		markets int    // after the step
	}{
		{"the second statement fails: the first one's row is gone too",
			[]string{insert("MI001"), `SELECT 1 / 0`}, "division by zero", 0},
		{"a row of another region is refused by row-level security, and the whole batch with it",
			[]string{insert("MI002"), `INSERT INTO markets (id, region_id, code, name, province, comune)
				VALUES (dms.next_id('markets', 1::smallint), 1, 'TO001', 'x', '001', '001272')`}, "row-level security", 0},
		{"a good batch", []string{insert("MI003"), insert("MI004")}, "", 2},
	} {
		err := sh.Batch(ctx, sc, func(b *pgx.Batch) {
			for _, q := range step.stmts {
				b.Queue(q)
			}
		})
		if step.wantErr == "" && err != nil || step.wantErr != "" && (err == nil || !strings.Contains(err.Error(), step.wantErr)) {
			t.Fatalf("%s: Batch = %v, want error %q", step.name, err, step.wantErr)
		}
		if n := count(); n != step.markets {
			t.Fatalf("%s: %d markets after the batch, want %d", step.name, n, step.markets)
		}
	}
}

// TestJITOff checks that the router's connections run without JIT
// compilation, which a shard's DSN may still ask for.
func TestJITOff(t *testing.T) {
	cfg := pgtest.NewDeployment(t, pg, "jit", twoShards())
	jit := func(cfg shardmap.Config) string {
		t.Helper()
		var v string
		err := lombardy(t, cfg).Read(context.Background(), regions.Scope{Region: "03"}, func(b *pgx.Batch) {
			b.Queue(`SELECT current_setting('jit')`).QueryRow(func(r pgx.Row) error { return r.Scan(&v) })
		})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if got := jit(cfg); got != "off" {
		t.Errorf("jit = %q, want off", got)
	}
	nw := shardIndex(t, cfg, "nw")
	primary := cfg.Shards[nw].Primary
	for _, set := range []string{"&jit=on", "&options=-c%20jit%3Don"} {
		cfg.Shards[nw].Primary = primary + set
		if got := jit(cfg); got != "on" {
			t.Errorf("jit with a DSN that sets it on (%s) = %q, want on", set, got)
		}
	}
}
