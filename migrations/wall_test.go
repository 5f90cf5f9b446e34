package migrations_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dmshub/dmsrouter/migrations"
	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// The rows every wall test starts from, in region 03's database: two markets
// of two comuni, a stall at each, a vendor.
var (
	milano       = regions.MakeID("03", 1)
	bergamo      = regions.MakeID("03", 2)
	milanoStall  = regions.MakeID("03", 1)
	bergamoStall = regions.MakeID("03", 2)
	vendor       = regions.MakeID("03", 1)
	veneto       = regions.MakeID("05", 1)
)

const fixtureSQL = `
INSERT INTO markets (id, region_id, code, name, province, comune, days) VALUES
  (%[1]d, 3, 'MI001', 'Mercato di Milano', '015', '015146', '{2,6}'),
  (%[2]d, 3, 'BG001', 'Mercato di Bergamo', '016', '016024', '{1}');
INSERT INTO stalls (id, region_id, market_id, comune, number, type, area_mq) VALUES
  (%[3]d, 3, %[1]d, '015146', 2, 'FISSO', 10),
  (%[4]d, 3, %[2]d, '016024', 1, 'FISSO', 10);
INSERT INTO vendors (id, region_id, partita_iva, codice_fiscale, denominazione, comune) VALUES
  (%[5]d, 3, '01234567897', '01234567897', 'Rossi', '015146');`

// deploy makes a deployment with region 03 alone on shard "lombardia",
// regions 05 and 06 on "nordest" and the rest on "rest", with the fixture
// rows in lombardia.
func deploy(tb testing.TB, name string) shardmap.Config {
	tb.Helper()
	cfg := pgtest.NewDeployment(tb, pg, name, pgtest.Split("rest", pgtest.Layout{"03": "lombardia", "05": "nordest", "06": "nordest"}))
	pgtest.Exec(tb, pgtest.Shard(tb, cfg, "lombardia").AdminDSN(),
		fmt.Sprintf(fixtureSQL, milano, bergamo, milanoStall, bergamoStall, vendor))
	return cfg
}

// freshDB creates an empty database for tb, dropped when tb ends, and
// returns its admin DSN.
func freshDB(tb testing.TB, name string) string {
	tb.Helper()
	ctx := context.Background()
	db := pgtest.Prefix(name)
	for _, sql := range []string{"DROP DATABASE IF EXISTS " + db + " WITH (FORCE)", "CREATE DATABASE " + db} {
		if err := pg.Exec(ctx, sql); err != nil {
			tb.Fatal(err)
		}
	}
	tb.Cleanup(func() { pg.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)") })
	return pg.AdminDB(db)
}

// scope is what a session sets by hand before it writes.
type scope struct{ region, comune string }

// asApp runs sql as dms_app in one transaction with scope sc set, as an
// attacker holding the role's password would, and rolls it back.
func asApp(tb testing.TB, dsn string, sc scope, sql string) error {
	tb.Helper()
	ctx := context.Background()
	tx := appTx(tb, dsn, narrowed{region: sc.region, province: sc.comune[:min(len(sc.comune), 3)], comune: sc.comune})
	defer tx.Rollback(ctx)
	_, err := tx.Exec(ctx, sql)
	return err
}

// narrowed is a scope as the router sets it: a region and its narrowings,
// "" where unset.
type narrowed struct{ region, province, comune, market string }

// appTx begins a transaction as dms_app with scope sc set (and the user
// mallory); the caller rolls it back.
func appTx(tb testing.TB, dsn string, sc narrowed) pgx.Tx {
	tb.Helper()
	ctx := context.Background()
	tx, err := pgtest.Connect(tb, dsn).Begin(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT set_config('dms.region', $1, true), set_config('dms.province', $2, true),
		set_config('dms.comune', $3, true), set_config('dms.market', $4, true), set_config('dms.user', 'mallory', true)`,
		sc.region, sc.province, sc.comune, sc.market); err != nil {
		tb.Fatal(err)
	}
	return tx
}

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	if err != nil {
		return err.Error()
	}
	return ""
}

// TestWall writes as dms_app what the router would refuse: every write
// fails with the SQLSTATE of the constraint that stops it, and the honest
// writes beside them pass.
func TestWall(t *testing.T) {
	cfg := deploy(t, "wall")
	lombardia := pgtest.Shard(t, cfg, "lombardia").Primary
	region05, region03 := scope{region: "05"}, scope{region: "03"}
	comuneMilano := scope{region: "03", comune: "015146"}
	presence := func(market int64, comune string, stall any, vendor int64, checkin string) string {
		r, _ := regions.IDRegion(market)
		return fmt.Sprintf(`INSERT INTO vendor_presences (id, region_id, market_id, comune, vendor_id, stall_id, date, kind, checkin_at)
			VALUES (%d, %d, %d, '%s', %d, %v, current_date, 'SPUNTA', %s)`,
			regions.MakeID(r, 100), r.Num(), market, comune, vendor, stall, checkin)
	}
	tests := []struct {
		name string
		sc   scope
		sql  string
		want string // SQLSTATE, "" for success
	}{
		// A region the database does not hold.
		{"a market of region 05 in region 03's database", region05, fmt.Sprintf(`INSERT INTO markets (id, region_id, code, name, province, comune)
			VALUES (%d, 5, 'VE001', 'Rialto', '027', '027042')`, veneto), "23503"},
		{"a vendor of region 05", region05, fmt.Sprintf(`INSERT INTO vendors (id, region_id, partita_iva, codice_fiscale, denominazione, comune)
			VALUES (%d, 5, '01234567897', '01234567897', 'x', '027042')`, veneto), "23503"},
		{"an audit row of region 05", region05, fmt.Sprintf(`INSERT INTO audit_log (id, region_id, user_sub, role, action, entity)
			VALUES (%d, 5, 'mallory', 'admin_pa', 'create', 'market')`, veneto), "23503"},
		{"an idempotency key of region 05", region05, `INSERT INTO idempotency_keys (region_id, user_sub, role, territory, key, fingerprint, created, response)
			VALUES (5, 'mallory', 'admin_pa', 'region:05', 'k', '\x00', true, '{}')`, "23503"},
		{"a presence of region 05", region05, presence(veneto, "027042", "NULL", veneto, "now()"), "23503"},

		// A comune of another region.
		{"a market of region 03 in a comune of Veneto", region03, fmt.Sprintf(`INSERT INTO markets (id, region_id, code, name, province, comune)
			VALUES (%d, 3, 'VE002', 'Rialto', '027', '027042')`, regions.MakeID("03", 50)), "23514"},
		{"a market of region 03 in a comune of Lombardia", region03, fmt.Sprintf(`INSERT INTO markets (id, region_id, code, name, province, comune)
			VALUES (%d, 3, 'CO001', 'Como', '013', '013075')`, regions.MakeID("03", 50)), ""},

		// Copied columns that lie.
		{"a stall at another comune's market, own comune copied in", comuneMilano, fmt.Sprintf(`INSERT INTO stalls (id, region_id, market_id, comune, number, type, area_mq)
			VALUES (%d, 3, %d, '015146', 99, 'FISSO', 9)`, regions.MakeID("03", 99), bergamo), "23503"},
		{"moving a stall to another comune's market", comuneMilano, fmt.Sprintf(`UPDATE stalls SET market_id = %d WHERE id = %d`, bergamo, milanoStall), "42501"},
		{"changing a market's comune", region03, fmt.Sprintf(`UPDATE markets SET comune = '015100', province = '015' WHERE id = %d`, milano), "42501"},
		{"a stall at own comune's market", comuneMilano, fmt.Sprintf(`INSERT INTO stalls (id, region_id, market_id, comune, number, type, area_mq)
			VALUES (%d, 3, %d, '015146', 99, 'FISSO', 9)`, regions.MakeID("03", 99), milano), ""},
		{"a presence at another comune's market, own comune copied in", comuneMilano, presence(bergamo, "015146", "NULL", vendor, "now()"), "23503"},
		{"a presence naming a stall of another market", region03, presence(milano, "015146", bergamoStall, vendor, "now()"), "23503"},
		{"a presence at own comune's market", comuneMilano, presence(milano, "015146", milanoStall, vendor, "now()"), ""},
		{"a presence written to its partition, past the checks of the parent", comuneMilano, fmt.Sprintf(`DO $$ BEGIN
			EXECUTE format('INSERT INTO %%I (id, region_id, market_id, comune, vendor_id, date, kind, checkin_at)
				VALUES (%d, 3, %d, %%L, %d, current_date, %%L, now())', 'vendor_presences_' || to_char(current_date, 'YYYY_MM'), '015146', 'SPUNTA');
			END $$`, regions.MakeID("03", 100), bergamo, vendor), "42501"},
		{"a concession at another comune's market, own comune copied in", comuneMilano, fmt.Sprintf(`INSERT INTO concessions (id, region_id, market_id, comune, stall_id, vendor_id, valid_from, valid_to)
			VALUES (%d, 3, %d, '015146', %d, %d, '2026-01-01', '2026-12-31')`, regions.MakeID("03", 99), bergamo, bergamoStall, vendor), "23503"},
		{"a concession naming a stall of another market", region03, fmt.Sprintf(`INSERT INTO concessions (id, region_id, market_id, comune, stall_id, vendor_id, valid_from, valid_to)
			VALUES (%d, 3, %d, '015146', %d, %d, '2026-01-01', '2026-12-31')`, regions.MakeID("03", 99), milano, bergamoStall, vendor), "23503"},

		// The partition function's window.
		{"partitions of 1990", region03, `SELECT dms.ensure_presence_partitions('1990-01-01', '1990-12-31')`, "22023"},
		{"partitions of year 1", region03, `SELECT dms.ensure_presence_partitions('0001-01-01', '0001-01-31')`, "22023"},
		{"partitions of 2005", region03, `SELECT dms.ensure_presence_partitions('2005-01-01', '2005-12-31')`, "42501"},
		{"partitions three years ahead", region03, `SELECT dms.ensure_presence_partitions(current_date, (current_date + interval '36 months')::date)`, "42501"},
		{"the partition job's call", region03, `SELECT dms.ensure_presence_partitions(current_date, (current_date + interval '12 months')::date)`, ""},

		// Codes, days and dates.
		{"a market without days", region03, fmt.Sprintf(`INSERT INTO markets (id, region_id, code, name, province, comune, days)
			VALUES (%d, 3, 'MI002', 'x', '015', '015146', '{}')`, regions.MakeID("03", 50)), "23514"},
		{"a market code taken in the region", region03, fmt.Sprintf(`INSERT INTO markets (id, region_id, code, name, province, comune, days)
			VALUES (%d, 3, 'MI001', 'x', '015', '015146', '{1}')`, regions.MakeID("03", 50)), "23505"},
		{"a spunta in 1 BC", comuneMilano, fmt.Sprintf(`INSERT INTO spunta_runs (region_id, market_id, comune, date, run_by, result)
			VALUES (3, %d, '015146', '0001-01-01 BC', 'mallory', '{}')`, milano), "23514"},
		{"a concession from 1900", region03, fmt.Sprintf(`INSERT INTO concessions (id, region_id, market_id, comune, stall_id, vendor_id, valid_from, valid_to)
			VALUES (%d, 3, %d, '015146', %d, %d, '1900-01-01', '1900-12-31')`, regions.MakeID("03", 99), milano, milanoStall, vendor), "23514"},
		{"a concession to 2200", region03, fmt.Sprintf(`INSERT INTO concessions (id, region_id, market_id, comune, stall_id, vendor_id, valid_from, valid_to)
			VALUES (%d, 3, %d, '015146', %d, %d, '2026-01-01', '2200-12-31')`, regions.MakeID("03", 99), milano, milanoStall, vendor), "23514"},
		{"a check-in in 1900", region03, presence(milano, "015146", "NULL", vendor, "'1900-01-01 08:00+01'"), "23514"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sqlState(asApp(t, lombardia, tt.sc, tt.sql)); got != tt.want {
				t.Errorf("as dms_app in scope %+v: %s = %q, want SQLSTATE %q", tt.sc, tt.name, got, tt.want)
			}
		})
	}
}

// TestMarketCodeUniquePerRegion: two regions of one database may use the
// same market code; one region may not use it twice.
func TestMarketCodeUniquePerRegion(t *testing.T) {
	cfg := deploy(t, "codes")
	nordest := pgtest.Shard(t, cfg, "nordest").AdminDSN()
	pgtest.Exec(t, nordest, `INSERT INTO markets (id, region_id, code, name, province, comune)
		VALUES (dms.next_id('markets', 5::smallint), 5, 'XX001', 'Rialto', '027', '027042')`)
	insert06 := `INSERT INTO markets (id, region_id, code, name, province, comune)
		VALUES (dms.next_id('markets', 6::smallint), 6, 'XX001', 'Trieste', '032', '032006')`
	if err := asApp(t, pgtest.Shard(t, cfg, "nordest").Primary, scope{region: "06"}, insert06); err != nil {
		t.Errorf("market XX001 of region 06 beside XX001 of region 05: %v", err)
	}
	insert05 := `INSERT INTO markets (id, region_id, code, name, province, comune)
		VALUES (dms.next_id('markets', 5::smallint), 5, 'XX001', 'Padova', '028', '028060')`
	if got := sqlState(asApp(t, pgtest.Shard(t, cfg, "nordest").Primary, scope{region: "05"}, insert05)); got != "23505" {
		t.Errorf("a second XX001 in region 05 = %q, want 23505", got)
	}
}

// TestCodeColumnsCollateC: codes compare bytewise, whatever the database's
// collation.
func TestCodeColumnsCollateC(t *testing.T) {
	cfg := deploy(t, "collate")
	ctx := context.Background()
	conn := pgtest.Connect(t, pgtest.Shard(t, cfg, "lombardia").AdminDSN())
	for _, col := range []string{
		"markets.code", "markets.province", "markets.comune",
		"vendors.partita_iva", "vendors.codice_fiscale", "vendors.comune",
		"stalls.comune", "concessions.comune", "vendor_presences.comune", "presence_daily.comune", "spunta_runs.comune",
	} {
		table, column, _ := strings.Cut(col, ".")
		var coll string
		err := conn.QueryRow(ctx, `SELECT coalesce(c.collname, '') FROM pg_attribute a LEFT JOIN pg_collation c ON c.oid = a.attcollation
			WHERE a.attrelid = to_regclass('public.' || $1) AND a.attname = $2`, table, column).Scan(&coll)
		if err != nil {
			t.Fatalf("%s: %v", col, err)
		}
		if coll != "C" {
			t.Errorf("collation of %s = %q, want C", col, coll)
		}
	}
}

// heldRegions returns the regions dms.shard_regions records, with whether
// each is owned.
func heldRegions(tb testing.TB, dsn string) map[int16]bool {
	tb.Helper()
	held := map[int16]bool{}
	rows, _ := pgtest.Connect(tb, dsn).Query(context.Background(), `SELECT region_id, owned FROM dms.shard_regions`)
	var r int16
	var owned bool
	if _, err := pgx.ForEachRow(rows, []any{&r, &owned}, func() error { held[r] = owned; return nil }); err != nil {
		tb.Fatal(err)
	}
	return held
}

// TestHoldRegions: a deployment's databases hold the regions of the layout;
// holding them again changes nothing, and keeps a region an online move
// marked not owned so.
func TestHoldRegions(t *testing.T) {
	cfg := deploy(t, "hold")
	nordest := pgtest.Shard(t, cfg, "nordest").AdminDSN()
	if got, want := heldRegions(t, pgtest.Shard(t, cfg, "lombardia").AdminDSN()), map[int16]bool{3: true}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("lombardia holds %v, want %v", got, want)
	}
	if got, want := heldRegions(t, nordest), map[int16]bool{5: true, 6: true}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("nordest holds %v, want %v", got, want)
	}
	if got := len(heldRegions(t, pgtest.Shard(t, cfg, "rest").AdminDSN())); got != 17 {
		t.Errorf("rest holds %d regions, want 17", got)
	}
	pgtest.Exec(t, nordest, `UPDATE dms.shard_regions SET owned = false WHERE region_id = 5`)
	ctx := context.Background()
	for range 2 {
		if err := migrations.HoldRegions(ctx, nordest, []regions.Code{"05", "06", "07"}); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := heldRegions(t, nordest), map[int16]bool{5: false, 6: true, 7: true}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after HoldRegions(05, 06, 07) twice nordest holds %v, want %v", got, want)
	}
	if err := migrations.HoldRegions(ctx, nordest, []regions.Code{"21"}); err == nil {
		t.Error("HoldRegions(21) = nil, want an error")
	}
}

// TestUpgradeKeepsRows migrates a database holding rows of version 9 to
// version 10 (00010, the second wall), keeping its policies: the
// regions of its rows are held besides the target's, and a market without
// days is held every day.
func TestUpgradeKeepsRows(t *testing.T) {
	ctx := context.Background()
	dsn := freshDB(t, "upgrade")
	if err := migrations.UpTo(ctx, dsn, 9); err != nil {
		t.Fatal(err)
	}
	policiesBefore := policies(t, dsn)
	pgtest.Exec(t, dsn, fmt.Sprintf(`INSERT INTO markets (id, region_id, code, name, province, comune) VALUES (%d, 3, 'MI001', 'x', '015', '015146');
		INSERT INTO vendors (id, region_id, partita_iva, codice_fiscale, denominazione, comune)
		VALUES (%d, 5, '01234567897', '01234567897', 'x', '027042')`, milano, veneto))
	// Up to 00010 only: later migrations add policies of their own.
	if err := migrations.UpTo(ctx, dsn, 10); err != nil {
		t.Fatal(err)
	}
	if err := migrations.HoldRegions(ctx, dsn, []regions.Code{"03", "12"}); err != nil {
		t.Fatal(err)
	}
	if got, want := heldRegions(t, dsn), map[int16]bool{3: true, 5: true, 12: true}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after the upgrade the database holds %v, want %v", got, want)
	}
	if got := policies(t, dsn); !slices.Equal(got, policiesBefore) {
		t.Errorf("policies after the upgrade:\n%s\nwant as before:\n%s", strings.Join(got, "\n"), strings.Join(policiesBefore, "\n"))
	}
	var days []int16
	if err := pgtest.Connect(t, dsn).QueryRow(ctx, `SELECT days FROM markets`).Scan(&days); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(days, []int16{1, 2, 3, 4, 5, 6, 7}) {
		t.Errorf("days of a market stored without = %v, want every day", days)
	}
}

// policies returns every row-level security policy of the database at dsn,
// one line each.
func policies(tb testing.TB, dsn string) []string {
	tb.Helper()
	rows, _ := pgtest.Connect(tb, dsn).Query(context.Background(), `SELECT concat_ws(' ', tablename, policyname, permissive, roles::text, cmd, qual, with_check)
		FROM pg_policies ORDER BY tablename, policyname`)
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		tb.Fatal(err)
	}
	return got
}

// checkPoliciesDown migrates the database at dsn to version-1 and then to
// version, checks that migration version changed some policy and that its
// Down restores them as version-1 left them, and leaves the database at
// version-1.
func checkPoliciesDown(tb testing.TB, dsn string, version int64) {
	tb.Helper()
	ctx := context.Background()
	if err := migrations.UpTo(ctx, dsn, version-1); err != nil {
		tb.Fatal(err)
	}
	want := policies(tb, dsn)
	if err := migrations.UpTo(ctx, dsn, version); err != nil {
		tb.Fatal(err)
	}
	if got := policies(tb, dsn); slices.Equal(got, want) {
		tb.Fatalf("migration %05d changed no policy", version)
	}
	if err := migrations.DownTo(ctx, dsn, version-1); err != nil {
		tb.Fatal(err)
	}
	if got := policies(tb, dsn); !slices.Equal(got, want) {
		tb.Errorf("after %05d's Down the policies are\n%s\nwant\n%s", version, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// prefixRegion returns the region of the comuni whose ISTAT codes start
// with prefix, and whether any does.
func prefixRegion(prefix string) (regions.Code, bool) {
	cs := regions.ProvinceComuni(prefix)
	if len(cs) == 0 || cs[0].Code[:3] != prefix {
		return "", false
	}
	return cs[0].Region, true
}

// TestComuneRegionMatchesRegions keeps dms.comune_region equal to package
// regions for every three-digit prefix; when they differ it prints the
// function's CASE as regions has it, for a new migration.
func TestComuneRegionMatchesRegions(t *testing.T) {
	ctx := context.Background()
	dsn := freshDB(t, "comuni")
	for _, r := range migrations.Up(ctx, []migrations.Target{{Name: "comuni", DSN: dsn}}) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	rows, _ := pgtest.Connect(t, dsn).Query(ctx, `SELECT lpad(p::text, 3, '0'), coalesce(dms.comune_region(lpad(p::text, 3, '0') || '999'), 0)
		FROM generate_series(0, 999) p ORDER BY p`)
	var (
		prefix string
		got    int16
		differ bool
	)
	_, err := pgx.ForEachRow(rows, []any{&prefix, &got}, func() error {
		want := 0
		if r, ok := prefixRegion(prefix); ok {
			want = r.Num()
		}
		if int(got) != want {
			t.Errorf("dms.comune_region('%s999') = %d, want %d (0: no region)", prefix, got, want)
			differ = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if differ {
		var sb strings.Builder
		for _, r := range regions.All() {
			var ps []string
			for p := range 1000 {
				s := fmt.Sprintf("%03d", p)
				if c, ok := prefixRegion(s); ok && c == r.Code {
					ps = append(ps, "'"+s+"'")
				}
			}
			fmt.Fprintf(&sb, "        WHEN left(comune, 3) IN (%s) THEN %d\n", strings.Join(ps, ", "), r.Code.Num())
		}
		t.Logf("package regions has:\n%s", sb.String())
	}
}
