package migrations_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// writerFixtureSQL adds to the wall fixture what a check-in reads and
// writes at each of its two markets: a market day, a concession and a
// presence today.
const writerFixtureSQL = `
INSERT INTO market_days (market_id, region_id, comune, date, status, updated_by) VALUES
  (%[1]d, 3, '015146', current_date, 'HELD', 'test'),
  (%[2]d, 3, '016024', current_date, 'HELD', 'test');
INSERT INTO concessions (id, region_id, market_id, comune, stall_id, vendor_id, valid_from, valid_to) VALUES
  (%[6]d, 3, %[1]d, '015146', %[3]d, %[5]d, current_date - 30, current_date + 30),
  (%[7]d, 3, %[2]d, '016024', %[4]d, %[5]d, current_date - 30, current_date + 30);
INSERT INTO vendor_presences (id, region_id, market_id, comune, vendor_id, stall_id, date, kind, checkin_at) VALUES
  (%[6]d, 3, %[1]d, '015146', %[5]d, %[3]d, current_date, 'CONCESSION', now()),
  (%[7]d, 3, %[2]d, '016024', %[5]d, %[4]d, current_date, 'CONCESSION', now());`

// writerTx begins a transaction as dms_app with scope sc set and switched
// to the role shardmap.RowWriter, as Shard.BatchAsWriter does; the caller
// rolls it back.
func writerTx(tb testing.TB, dsn string, sc narrowed) pgx.Tx {
	tb.Helper()
	tx := appTx(tb, dsn, sc)
	if _, err := tx.Exec(context.Background(), `SELECT set_config('role', $1, true)`, shardmap.RowWriter); err != nil {
		tb.Fatal(err)
	}
	return tx
}

// rowsOf returns the first column of query's rows in tx.
func rowsOf(tb testing.TB, tx pgx.Tx, query string) []int64 {
	tb.Helper()
	rows, _ := tx.Query(context.Background(), query)
	got, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
	return got
}

// TestRowWriterAdmitsWhatTheLoginRoleAdmits checks migration 00022's role:
// under every kind of scope, dms_writer sees exactly the markets, market
// days, stalls, concessions and presences that dms_app sees, and may insert
// a presence exactly where dms_app may; its policies start no InitPlan; and
// it holds no right beyond a check-in's.
func TestRowWriterAdmitsWhatTheLoginRoleAdmits(t *testing.T) {
	ctx := context.Background()
	cfg := deploy(t, "rowwriter")
	sh := pgtest.Shard(t, cfg, "lombardia")
	app := sh.Primary
	first, second := regions.MakeID("03", 1), regions.MakeID("03", 2)
	pgtest.Exec(t, sh.AdminDSN(), fmt.Sprintf(writerFixtureSQL, milano, bergamo, milanoStall, bergamoStall, vendor, first, second))

	m, b := fmt.Sprint(milano), fmt.Sprint(bergamo)
	scopes := []struct {
		name string
		sc   narrowed
	}{
		{"the region", narrowed{region: "03"}},
		{"Milano's province", narrowed{region: "03", province: "015"}},
		{"Milano's comune", narrowed{region: "03", province: "015", comune: "015146"}},
		{"Bergamo's comune", narrowed{region: "03", province: "016", comune: "016024"}},
		{"Milano's market", narrowed{region: "03", market: m}},
		{"Bergamo's market", narrowed{region: "03", market: b}},
		{"Milano's market under Bergamo's comune", narrowed{region: "03", comune: "016024", market: m}},
		{"another region", narrowed{region: "05"}},
		{"no scope", narrowed{}},
	}
	queries := []string{
		"SELECT id FROM markets ORDER BY 1",
		"SELECT market_id FROM market_days ORDER BY 1",
		"SELECT id FROM stalls ORDER BY 1",
		"SELECT id FROM concessions ORDER BY 1",
		"SELECT id FROM vendor_presences ORDER BY 1",
		"SELECT id FROM vendors ORDER BY 1",
	}
	for _, s := range scopes {
		t.Run(s.name, func(t *testing.T) {
			for _, q := range queries {
				want := visibleIDs(t, app, s.sc, q)
				tx := writerTx(t, app, s.sc)
				got := rowsOf(t, tx, q)
				tx.Rollback(ctx)
				if !slices.Equal(got, want) {
					t.Errorf("%s: dms_writer sees %v, dms_app %v", q, got, want)
				}
				if s.name == "the region" && len(want) == 0 {
					t.Errorf("%s: nothing seen in the whole region: the fixture is missing", q)
				}
			}
		})
	}

	// A presence in scope is written; one outside it is refused as it is
	// to dms_app.
	presence := func(market int64, comune string, stall int64) string {
		return fmt.Sprintf(`INSERT INTO vendor_presences (id, region_id, market_id, comune, vendor_id, stall_id, date, kind, checkin_at)
			VALUES (dms.next_id('vendor_presences', 3::smallint), 3, %d, '%s', %d, %d, current_date + 1, 'CONCESSION', now())`,
			market, comune, vendor, stall)
	}
	milanoComune := narrowed{region: "03", province: "015", comune: "015146"}
	for _, w := range []struct {
		name, sql   string
		writer, app string // SQLSTATE as dms_writer and as dms_app, "" for none
	}{
		{"a presence at Milano's market", presence(milano, "015146", milanoStall), "", ""},
		{"a presence at Bergamo's market", presence(bergamo, "016024", bergamoStall), "42501", "42501"},
		{"an audit row", `INSERT INTO audit_log (id, region_id, user_sub, role, action, entity, entity_id)
			VALUES (dms.next_id('audit_log', 3::smallint), 3, 'mallory', 'admin', 'checkin', 'presence', 1)`, "", ""},
		{"a market renamed", fmt.Sprintf(`UPDATE markets SET name = 'x' WHERE id = %d`, milano), "42501", ""},
		{"a presence moved", fmt.Sprintf(`UPDATE vendor_presences SET checkin_at = now() WHERE id = %d`, first), "42501", ""},
		{"a presence deleted", fmt.Sprintf(`DELETE FROM vendor_presences WHERE id = %d`, first), "42501", ""},
		{"a stall added", fmt.Sprintf(`INSERT INTO stalls (id, region_id, market_id, comune, number, type, area_mq)
			VALUES (%d, 3, %d, '015146', 9, 'FISSO', 10)`, regions.MakeID("03", 9), milano), "42501", ""},
		{"the audit read", `SELECT count(*) FROM audit_log`, "42501", ""},
	} {
		t.Run(w.name, func(t *testing.T) {
			tx := appTx(t, app, milanoComune)
			_, err := tx.Exec(ctx, w.sql)
			tx.Rollback(ctx)
			if got := sqlState(err); got != w.app {
				t.Errorf("as dms_app: SQLSTATE %q, want %q", got, w.app)
			}
			tx = writerTx(t, app, milanoComune)
			_, err = tx.Exec(ctx, w.sql)
			tx.Rollback(ctx)
			if got := sqlState(err); got != w.writer {
				t.Errorf("as %s: SQLSTATE %q, want %q", shardmap.RowWriter, got, w.writer)
			}
		})
	}

	// The policies dms_writer meets in a check-in read no setting in a
	// subquery, but for vendors' and audit_log's, which every role shares.
	var writers int
	for _, p := range policies(t, sh.AdminDSN()) {
		f := strings.Fields(p)
		checkIn := []string{"markets", "market_days", "stalls", "concessions", "vendor_presences", "idempotency_keys"}
		if !slices.Contains(checkIn, f[0]) || f[3] != "{"+shardmap.RowWriter+"}" && f[3] != "{public}" {
			continue
		}
		writers++
		if strings.Contains(p, "( SELECT dms.") {
			t.Errorf("policy %s reads the scope in a subquery: %s", f[1], p)
		}
	}
	if writers != 7 { // five tables' and idempotency_keys' two
		t.Errorf("%d policies apply to %s in a check-in beyond vendors' and audit_log's, want 7", writers, shardmap.RowWriter)
	}
}

// TestRowWriterDown checks that migration 00022's Down leaves the policies
// and the role's rights as migration 00021 left them.
func TestRowWriterDown(t *testing.T) {
	dsn := freshDB(t, "rowwriterdown")
	checkPoliciesDown(t, dsn, 22)
	var rights int
	if err := pgtest.Connect(t, dsn).QueryRow(context.Background(), `SELECT (SELECT count(*) FROM information_schema.role_table_grants WHERE grantee = $1)
		+ (SELECT count(*) FROM information_schema.role_usage_grants WHERE grantee = $1)
		+ (SELECT count(*) FROM information_schema.role_routine_grants WHERE grantee = $1)`, shardmap.RowWriter).Scan(&rights); err != nil {
		t.Fatal(err)
	}
	if rights != 0 {
		t.Errorf("after 00022's Down %s holds %d rights in the database, want none", shardmap.RowWriter, rights)
	}
}
