package migrations_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/migrations"
	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/regions"
)

// statusFixture gives each region of the array %s three markets of three
// stalls with every stall status, and concessions on the first two stalls
// of each market: ATTIVA ending on various days, SOSPESA on stall 2 of the
// regions divisible by 3.
const statusFixture = `
DO $$
DECLARE
    r int;
    p text; -- a province of region r

BEGIN
    FOREACH r IN ARRAY %s LOOP
        p := CASE r WHEN 3 THEN '015' WHEN 12 THEN '058' WHEN 19 THEN '082' END;
        INSERT INTO markets (id, region_id, code, name, province, comune, comune_name, status)
        SELECT dms.next_id('markets', r::smallint), r, 'RT' || lpad((r * 10 + g)::text, 3, '0'), 'Mercato ' || g,
               p, p || lpad(g::text, 3, '0'), 'Comune ' || g, 'ACTIVE'
        FROM generate_series(1, 3) g;
        INSERT INTO stalls (id, region_id, market_id, comune, number, type, status, area_mq)
        SELECT dms.next_id('stalls', r::smallint), r, m.id, m.comune, g, 'FISSO',
               (ARRAY['LIBERO', 'OCCUPATO', 'RISERVATO'])[1 + (g + r + (m.id %% 2)::int) %% 3], 10
        FROM markets m, generate_series(1, 3) g
        WHERE m.region_id = r;
        INSERT INTO vendors (id, region_id, partita_iva, codice_fiscale, denominazione, comune)
        VALUES (dms.next_id('vendors', r::smallint), r, '1000000' || lpad(r::text, 4, '0'),
                '1000000' || lpad(r::text, 4, '0'), 'Impresa ' || r, p || '001');
        INSERT INTO concessions (id, region_id, market_id, comune, stall_id, vendor_id, valid_from, valid_to, status)
        SELECT dms.next_id('concessions', r::smallint), r, s.market_id, s.comune, s.id,
               (SELECT v.id FROM vendors v WHERE v.region_id = r),
               DATE '2016-01-01', DATE '2026-06-15' + ((r * 13 + s.number * 29 + (s.market_id %% 7)::int * 11) %% 150 - 10),
               CASE WHEN s.number = 2 AND r %% 3 = 0 THEN 'SOSPESA' ELSE 'ATTIVA' END
        FROM stalls s
        WHERE s.region_id = r AND s.number <= 2;
    END LOOP;
END
$$`

// TestPresenceRollup checks that presence_daily equals a count of
// vendor_presences after every kind of write: multi-row INSERT, COPY,
// concurrent inserts into the same market days, an UPDATE that moves rows
// to another day (and partition) or kind, one that changes nothing counted,
// DELETE, INSERT ... ON CONFLICT, a rolled-back transaction, writes as the
// router's role under row-level security, and TRUNCATE.
func TestPresenceRollup(t *testing.T) {
	ctx := context.Background()
	sh := pgtest.NewDeployment(t, pg, "rollup", pgtest.SingleShard()).Shards[0]
	admin := pgtest.Connect(t, sh.AdminDSN())
	// The months of the rows below, which the migration makes only while
	// they are within 13 months of today.
	if _, err := admin.Exec(ctx, `SELECT dms.ensure_presence_partitions('2026-06-01', '2026-07-31')`); err != nil {
		t.Fatal(err)
	}
	market := func(r regions.Code, seq int64) int64 { return regions.MakeID(r, seq) }
	m1, m2, m3 := market("03", 1), market("03", 2), market("12", 1)
	comune := map[int64]string{m1: "015146", m2: "016024", m3: "058091"}
	if _, err := admin.Exec(ctx, `INSERT INTO markets (id, region_id, code, name, province, comune) VALUES
		($1, 3, 'MI001', 'Milano', '015', '015146'), ($2, 3, 'BG001', 'Bergamo', '016', '016024'), ($3, 12, 'RM001', 'Roma', '058', '058091')`,
		m1, m2, m3); err != nil {
		t.Fatal(err)
	}
	nextID := map[int16]int64{}
	row := func(m int64, vendor int64, day string, kind string) []any {
		r := int16(m >> regions.IDShift)
		nextID[r]++
		d, _ := time.Parse(time.DateOnly, day)
		return []any{regions.MakeID(regions.Code(fmt.Sprintf("%02d", r)), nextID[r]), r, m, comune[m], vendor, nil, d, kind, d.Add(7 * time.Hour)}
	}
	cols := []string{"id", "region_id", "market_id", "comune", "vendor_id", "stall_id", "date", "kind", "checkin_at"}
	insert := func(rows ...[]any) string {
		var vals []string
		for _, r := range rows {
			vals = append(vals, fmt.Sprintf("(%d, %d, %d, '%s', %d, NULL, '%s', '%s', '%s')",
				r[0], r[1], r[2], r[3], r[4], r[6].(time.Time).Format(time.DateOnly), r[7], r[8].(time.Time).Format(time.RFC3339)))
		}
		return "INSERT INTO vendor_presences (" + strings.Join(cols, ", ") + ") VALUES " + strings.Join(vals, ", ")
	}
	check := func(step string) {
		t.Helper()
		diff := rollupDiff(t, admin, step,
			`SELECT 'day' AS t, market_id::text AS k, date, kind, count(*) AS n FROM vendor_presences GROUP BY 2, 3, 4
			 UNION ALL
			 SELECT 'month', region_id::text, date_trunc('month', date)::date, kind, count(*) FROM vendor_presences GROUP BY 2, 3, 4`,
			`SELECT 'day' AS t, market_id::text AS k, date, kind, n::int8 FROM presence_daily WHERE n > 0
			 UNION ALL
			 SELECT 'month', region_id::text, month, kind, sum(n) FROM presence_monthly GROUP BY 2, 3, 4 HAVING sum(n) > 0`)
		if diff != 0 {
			t.Fatalf("after %s, presence_daily and presence_monthly differ from vendor_presences in %d rows", step, diff)
		}
	}
	mustExec := func(step, sql string, args ...any) {
		t.Helper()
		if _, err := admin.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		check(step)
	}

	mustExec("multi-row insert", insert(
		row(m1, 1, "2026-06-01", "CONCESSION"), row(m1, 2, "2026-06-01", "SPUNTA"), row(m1, 3, "2026-06-01", "SPUNTA"),
		row(m2, 1, "2026-06-01", "CONCESSION"), row(m3, 1, "2026-07-01", "CONCESSION")))

	var copyRows [][]any
	for v := int64(10); v < 1010; v++ {
		kind := "CONCESSION"
		if v%3 == 0 {
			kind = "SPUNTA"
		}
		copyRows = append(copyRows, row([]int64{m1, m2, m3}[v%3], v, fmt.Sprintf("2026-06-%02d", 1+v%28), kind))
	}
	if n, err := admin.CopyFrom(ctx, pgx.Identifier{"vendor_presences"}, cols, pgx.CopyFromRows(copyRows)); err != nil || n != 1000 {
		t.Fatalf("COPY: %d rows, %v", n, err)
	}
	check("COPY")

	// Concurrent writers on the same market days, each in its own
	// transaction of several statements, in different market orders.
	var wg sync.WaitGroup
	var mu sync.Mutex
	for w := range 8 {
		var stmts []string
		for i := range 5 {
			markets := []int64{m1, m2}
			if w%2 == 1 {
				markets = []int64{m2, m1}
			}
			mu.Lock()
			stmts = append(stmts, insert(
				row(markets[0], int64(2000+w*100+i), "2026-06-02", "SPUNTA"),
				row(markets[1], int64(2000+w*100+i), "2026-06-02", "SPUNTA"),
				row(markets[0], int64(2000+w*100+i), "2026-06-03", "CONCESSION")))
			mu.Unlock()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := pgx.Connect(ctx, sh.AdminDSN())
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close(ctx)
			err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				for _, s := range stmts {
					if _, err := tx.Exec(ctx, s); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Errorf("writer %d: %v", w, err)
			}
		}()
	}
	wg.Wait()
	check("concurrent inserts")
	var n int32
	if err := admin.QueryRow(ctx, `SELECT n FROM presence_daily WHERE market_id = $1 AND date = '2026-06-02' AND kind = 'SPUNTA'`, m1).Scan(&n); err != nil || n < 40 {
		t.Fatalf("concurrent inserts counted %d on one market day (%v), want at least 40", n, err)
	}

	mustExec("update moving rows to another month", `UPDATE vendor_presences SET date = date + 30 WHERE market_id = $1 AND date < '2026-06-05'`, m2)
	mustExec("update of kind", `UPDATE vendor_presences SET kind = 'SPUNTA' WHERE market_id = $1 AND kind = 'CONCESSION' AND vendor_id % 2 = 0`, m1)
	mustExec("update of checkout only", `UPDATE vendor_presences SET checkout_at = checkin_at + interval '5 hours' WHERE market_id = $1`, m1)
	mustExec("delete", `DELETE FROM vendor_presences WHERE vendor_id % 5 = 0`)
	mustExec("upsert", insert(row(m1, 1, "2026-06-01", "CONCESSION"), row(m1, 4, "2026-06-01", "CONCESSION"))+
		` ON CONFLICT (market_id, date, vendor_id) DO UPDATE SET kind = 'SPUNTA'`)

	tx, err := admin.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, insert(row(m3, 9, "2026-06-09", "SPUNTA"))); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM vendor_presences WHERE market_id = $1`, m2); err != nil {
		t.Fatal(err)
	}
	tx.Rollback(ctx)
	check("rollback")

	// The router's role, under row-level security, needs no privilege on the rollup.
	app := pgtest.Connect(t, sh.Primary)
	err = pgx.BeginFunc(ctx, app, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('dms.region', '3', true), set_config('dms.comune', '015146', true)`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, insert(row(m1, 7777, "2026-06-20", "SPUNTA"))); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM vendor_presences WHERE vendor_id = 11`)
		return err
	})
	if err != nil {
		t.Fatalf("write as dms_app: %v", err)
	}
	check("writes as dms_app")
	if _, err := app.Exec(ctx, `INSERT INTO presence_daily VALUES (3, $1, '015146', '2026-06-21', 'SPUNTA', 1)`, m1); err == nil {
		t.Error("dms_app wrote to presence_daily directly")
	}
	// dms_app reads the rollup only within its scope.
	var seen int64
	err = pgx.BeginFunc(ctx, app, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('dms.region', '3', true), set_config('dms.comune', '016024', true)`); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM presence_daily WHERE market_id <> $1) + (SELECT count(*) FROM presence_monthly)`, m2).Scan(&seen)
	})
	if err != nil || seen != 0 {
		t.Errorf("dms_app scoped to comune 016024 sees %d rollup rows of other comuni or of the whole region (%v), want 0", seen, err)
	}
	err = pgx.BeginFunc(ctx, app, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('dms.region', '3', true)`); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT count(DISTINCT region_id) FROM presence_monthly`).Scan(&seen)
	})
	if err != nil || seen != 1 {
		t.Errorf("dms_app scoped to region 03 sees the monthly rollup of %d regions (%v), want 1", seen, err)
	}

	// Writing a partition directly bypasses the triggers; the writer keeps
	// presence_daily itself, as the seed does, and presence_monthly follows.
	direct := strings.Replace(insert(row(m1, 8888, "2026-06-21", "SPUNTA"), row(m2, 8888, "2026-06-21", "SPUNTA")),
		"INSERT INTO vendor_presences", "INSERT INTO vendor_presences_2026_06", 1)
	mustExec("a partition written directly, with its rollup", `WITH ins AS (`+direct+` RETURNING region_id, market_id, comune, date, kind)
		INSERT INTO presence_daily AS d (region_id, market_id, comune, date, kind, n)
		SELECT min(region_id), market_id, min(comune), date, kind, count(*) FROM ins GROUP BY market_id, date, kind
		ON CONFLICT (market_id, date, kind) DO UPDATE SET n = d.n + excluded.n`)
	mustExec("truncate", `TRUNCATE vendor_presences`)
	var left int64
	if err := admin.QueryRow(ctx, `SELECT (SELECT count(*) FROM presence_daily) + (SELECT count(*) FROM presence_monthly)`).Scan(&left); err != nil || left != 0 {
		t.Errorf("after TRUNCATE presence_daily has %d rows (%v)", left, err)
	}
}

// TestStatusCountsRollup checks that region_status_counts equals a count of
// stalls and concessions by region and status after inserts, status
// updates (and updates that change no status), deletes and TRUNCATE.
func TestStatusCountsRollup(t *testing.T) {
	ctx := context.Background()
	admin := adminConn(t, "counts")
	for _, step := range []struct{ name, sql string }{
		{"insert", fmt.Sprintf(statusFixture, "ARRAY[3, 12, 19]")},
		{"stall status update", `UPDATE stalls SET status = 'OCCUPATO' WHERE number = 1`},
		{"update of no counted column", `UPDATE stalls SET area_mq = 12`},
		{"concession status update", `UPDATE concessions SET status = 'SCADUTA' WHERE valid_to < '2026-06-15'`},
		{"concession moved to another market", `UPDATE concessions c SET market_id = s.market_id, stall_id = s.id, comune = s.comune
			FROM stalls s WHERE c.id = (SELECT min(id) FROM concessions WHERE region_id = 19)
			AND s.id = (SELECT max(id) FROM stalls WHERE region_id = 19 AND number = 3)`},
		{"delete", `DELETE FROM concessions WHERE status = 'SOSPESA'`},
		{"truncate", `TRUNCATE vendor_presences, absence_justifications, concessions`},
	} {
		if _, err := admin.Exec(ctx, step.sql); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		checkStatusCounts(t, admin, step.name)
	}
	var n int64
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM region_status_counts WHERE entity = 'stalls' AND n > 0`).Scan(&n); err != nil || n == 0 {
		t.Errorf("after TRUNCATE of concessions, %d stall counts are left (%v); want them kept", n, err)
	}
}

// checkStatusCounts fails tb when region_status_counts differs from a count
// of stalls and concessions (and of markets, from migration 00020 on) by
// region and status after step.
func checkStatusCounts(tb testing.TB, admin *pgx.Conn, step string) {
	tb.Helper()
	diff := rollupDiff(tb, admin, step,
		`SELECT region_id, 'stalls' AS entity, status, count(*) AS n FROM stalls GROUP BY 1, 3
		 UNION ALL
		 SELECT region_id, 'concessions', status, count(*) FROM concessions GROUP BY 1, 3
		 UNION ALL
		 SELECT region_id, 'markets', status, count(*) FROM markets
		 WHERE EXISTS (SELECT FROM pg_trigger WHERE tgname = 'market_counts_insert') GROUP BY 1, 3`,
		`SELECT region_id, entity, status, sum(n) FROM region_status_counts GROUP BY 1, 2, 3 HAVING sum(n) > 0`)
	if diff != 0 {
		tb.Fatalf("after %s, region_status_counts differs from markets, stalls and concessions in %d rows", step, diff)
	}
}

// marketDaysFixture records market days of every market of the fixture
// from 2026-06-01 to 2026-06-04: HELD, and CANCELLED on the days that fall
// on the market's id modulo 3.
const marketDaysFixture = `INSERT INTO market_days (market_id, region_id, comune, date, status, reason, call_at, updated_by)
	SELECT m.id, m.region_id, m.comune, d::date, s.status, s.reason, NULL, 'test'
	FROM markets m, generate_series(DATE '2026-06-01', DATE '2026-06-04', '1 day') d,
	    LATERAL (SELECT CASE WHEN (m.id + extract(day FROM d)::int8) % 3 = 0 THEN 'CANCELLED' ELSE 'HELD' END AS status,
	        CASE WHEN (m.id + extract(day FROM d)::int8) % 3 = 0 THEN 'maltempo' ELSE '' END AS reason) s`

// TestMarketRollups checks the rollups of migration 00020 against their
// tables after every kind of write: region_status_counts' count of markets
// by status, and market_day_counts' count of market_days by region, date
// and status, after inserts (one statement of many rows), status changes,
// cancellations, updates of no counted column, moves to another day,
// deletes and TRUNCATE (of market_days alone, and of markets with what
// references them).
func TestMarketRollups(t *testing.T) {
	ctx := context.Background()
	admin := adminConn(t, "marketcounts")
	for _, step := range []struct{ name, sql string }{
		{"insert", fmt.Sprintf(statusFixture, "ARRAY[3, 12, 19]")},
		{"market days insert", marketDaysFixture},
		{"market deactivated", `UPDATE markets SET status = 'INACTIVE' WHERE id = (SELECT min(id) FROM markets WHERE region_id = 12)`},
		{"market update of no counted column", `UPDATE markets SET name = name || ' (centro)'`},
		{"market days cancelled", `UPDATE market_days SET status = 'CANCELLED', reason = 'sciopero', call_at = NULL
			WHERE date = '2026-06-02' AND status = 'HELD' AND region_id IN (3, 19)`},
		{"market days held again", `UPDATE market_days SET status = 'HELD', reason = '' WHERE date = '2026-06-03' AND status = 'CANCELLED'`},
		{"market day update of no counted column", `UPDATE market_days SET updated_by = 'ufficio'`},
		{"market days moved to another day", `UPDATE market_days SET date = '2026-06-10' WHERE date = '2026-06-04' AND region_id = 3`},
		{"market days deleted", `DELETE FROM market_days WHERE date = '2026-06-01' AND region_id = 12`},
		{"market inserted and deleted", `WITH m AS (
				INSERT INTO markets (id, region_id, code, name, province, comune, comune_name, status)
				VALUES (dms.next_id('markets', 3::smallint), 3, 'RT999', 'Mercato nuovo', '015', '015146', 'Milano', 'INACTIVE') RETURNING id)
			SELECT id FROM m`},
		{"market deleted", `DELETE FROM markets WHERE code = 'RT999'`},
		{"market days truncated", `TRUNCATE market_days, absence_justifications`},
		{"market days again", marketDaysFixture},
		{"markets truncated", `TRUNCATE markets CASCADE`},
	} {
		if _, err := admin.Exec(ctx, step.sql); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		checkStatusCounts(t, admin, step.name)
		checkMarketDayCounts(t, admin, step.name)
	}
	var n int64
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM market_day_counts`).Scan(&n); err != nil || n != 0 {
		t.Errorf("after TRUNCATE of markets, market_day_counts holds %d rows (%v); want none", n, err)
	}
}

// checkMarketDayCounts fails tb when market_day_counts differs from a count
// of market_days by region, date and status after step.
func checkMarketDayCounts(tb testing.TB, admin *pgx.Conn, step string) {
	tb.Helper()
	diff := rollupDiff(tb, admin, step,
		`SELECT region_id, date, status, count(*) AS n FROM market_days GROUP BY 1, 2, 3`,
		`SELECT region_id, date, status, sum(n) FROM market_day_counts GROUP BY 1, 2, 3 HAVING sum(n) > 0`)
	if diff != 0 {
		tb.Fatalf("after %s, market_day_counts differs from market_days in %d rows", step, diff)
	}
}

// TestMarketRollupsUpAndDown checks migration 00020 on a database that
// holds rows already: its backfill makes the rollups equal their tables,
// and its Down removes them (the markets' rows of region_status_counts, the
// table market_day_counts), leaving the counts of stalls and concessions
// and the constraint of region_status_counts as migration 00018 left them.
func TestMarketRollupsUpAndDown(t *testing.T) {
	ctx := context.Background()
	dsn := freshDB(t, "marketcountsdown")
	if err := migrations.UpTo(ctx, dsn, 18); err != nil {
		t.Fatal(err)
	}
	admin := pgtest.Connect(t, dsn)
	constraint := func() string {
		t.Helper()
		var def string
		if err := admin.QueryRow(ctx, `SELECT pg_get_constraintdef(oid) FROM pg_constraint
			WHERE conname = 'region_status_counts_entity_check'`).Scan(&def); err != nil {
			t.Fatal(err)
		}
		return def
	}
	want := constraint()
	for _, sql := range []string{`INSERT INTO dms.shard_regions (region_id) VALUES (3), (12)`,
		fmt.Sprintf(statusFixture, "ARRAY[3, 12]"), marketDaysFixture,
		`UPDATE markets SET status = 'INACTIVE' WHERE id = (SELECT min(id) FROM markets)`} {
		if _, err := admin.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	if err := migrations.UpTo(ctx, dsn, 20); err != nil {
		t.Fatal(err)
	}
	checkStatusCounts(t, admin, "the backfill")
	checkMarketDayCounts(t, admin, "the backfill")
	if err := migrations.DownTo(ctx, dsn, 18); err != nil {
		t.Fatal(err)
	}
	var tables, markets int64
	if err := admin.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_class WHERE relname = 'market_day_counts'),
		(SELECT count(*) FROM region_status_counts WHERE entity = 'markets')`).Scan(&tables, &markets); err != nil {
		t.Fatal(err)
	}
	if tables != 0 || markets != 0 {
		t.Errorf("after 00020's Down: %d tables market_day_counts, %d rows of markets in region_status_counts; want none", tables, markets)
	}
	if got := constraint(); got != want {
		t.Errorf("after 00020's Down region_status_counts_entity_check = %s, want %s", got, want)
	}
	if _, err := admin.Exec(ctx, `UPDATE markets SET status = 'ACTIVE'`); err != nil {
		t.Errorf("a write of markets after 00020's Down: %v", err)
	}
	diff := rollupDiff(t, admin, "00020's Down",
		`SELECT region_id, 'stalls' AS entity, status, count(*) AS n FROM stalls GROUP BY 1, 3
		 UNION ALL
		 SELECT region_id, 'concessions', status, count(*) FROM concessions GROUP BY 1, 3`,
		`SELECT region_id, entity, status, sum(n) FROM region_status_counts GROUP BY 1, 2, 3 HAVING sum(n) > 0`)
	if diff != 0 {
		t.Errorf("after 00020's Down, region_status_counts differs from stalls and concessions in %d rows", diff)
	}
}

// rollupDiff returns how many rows the query truth (a count of the base
// tables) and the query roll (the rollup) do not share, failing tb on an
// error after step.
func rollupDiff(tb testing.TB, admin *pgx.Conn, step, truth, roll string) int64 {
	tb.Helper()
	var diff int64
	err := admin.QueryRow(context.Background(), `WITH truth AS (`+truth+`), roll AS (`+roll+`)
		SELECT count(*) FROM (
		    (SELECT * FROM truth EXCEPT SELECT * FROM roll) UNION ALL (SELECT * FROM roll EXCEPT SELECT * FROM truth)) x`).Scan(&diff)
	if err != nil {
		tb.Fatalf("%s: %v", step, err)
	}
	return diff
}
