package jobs

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dmshub/dmsrouter/pgtest"
)

// lifecycleScaleSQL builds a Lombardia at full scale (DOMAIN.md: 17% of
// 8,000 markets): 1,360 markets held on one or two weekdays, 17,000 stalls
// with a concession each (12,000 vendors), and a year of presences up to
// yesterday: holders come 92% of the market days, 2% of them only half;
// 1% of the market days were cancelled, and one absence in five of the
// frequent absentees is justified. A tenth of the titles carry a printed
// end before 2025-12-31, which the legal extension moves.
const lifecycleScaleSQL = `
INSERT INTO markets (id, region_id, code, name, province, comune, comune_name, days, status, cost_per_sqm)
SELECT dms.next_id('markets', 3::smallint), 3, 'LB' || lpad(g::text, 5, '0'), 'Mercato ' || g, '015',
       '015' || lpad((g % 200 + 1)::text, 3, '0'), 'Comune ' || (g % 200 + 1),
       CASE WHEN g % 2 = 0 THEN '{2}' ELSE '{3,6}' END::smallint[], 'ACTIVE', 1
FROM generate_series(1, 1360) g;

INSERT INTO stalls (id, region_id, market_id, comune, number, type, status, area_mq)
SELECT dms.next_id('stalls', 3::smallint), 3, m.id, m.comune, n, 'FISSO', 'OCCUPATO', 10
FROM markets m CROSS JOIN LATERAL generate_series(1, 12 + (m.id % 2)::int) n
WHERE m.code LIKE 'LB%'
ORDER BY m.id, n
LIMIT 17000;

INSERT INTO vendors (id, region_id, partita_iva, codice_fiscale, denominazione, comune)
SELECT dms.next_id('vendors', 3::smallint), 3, lpad(k::text, 11, '0'), lpad(k::text, 11, '0'), 'Impresa ' || k, '015146'
FROM generate_series(1, 12000) k;

WITH s AS (SELECT s.*, row_number() OVER (ORDER BY s.id) AS k FROM stalls s WHERE s.comune LIKE '015%'),
     v AS (SELECT v.id, row_number() OVER (ORDER BY v.id) - 1 AS k FROM vendors v WHERE v.denominazione LIKE 'Impresa %')
INSERT INTO concessions (id, region_id, market_id, comune, stall_id, vendor_id, valid_from, valid_to, status)
SELECT dms.next_id('concessions', 3::smallint), 3, s.market_id, s.comune, s.id, v.id, DATE '2016-01-01',
       CASE WHEN s.k % 10 = 0 THEN DATE '2024-06-30' ELSE DATE '2029-12-31' + (s.k % 2000)::int END, 'ATTIVA'
FROM s JOIN v ON v.k = s.k % 12000;

INSERT INTO market_days (market_id, region_id, comune, date, status, reason, updated_by)
SELECT m.id, 3, m.comune, d::date, 'CANCELLED', 'maltempo', 'bench'
FROM markets m, generate_series(current_date - 365, current_date - 1, interval '1 day') d
WHERE m.code LIKE 'LB%' AND extract(isodow FROM d)::smallint = ANY (m.days) AND hashtext(m.id::text || d::text) % 100 = 0;

INSERT INTO vendor_presences (id, region_id, market_id, comune, vendor_id, stall_id, date, kind, checkin_at)
SELECT dms.next_id('vendor_presences', 3::smallint), 3, c.market_id, c.comune, c.vendor_id, c.stall_id, d::date, 'CONCESSION',
       d + time '07:30'
FROM concessions c JOIN markets m ON m.id = c.market_id,
     generate_series(current_date - 365, current_date - 1, interval '1 day') d
WHERE extract(isodow FROM d)::smallint = ANY (m.days)
  AND abs(hashtext(c.id::text || d::text)) % 100 < CASE WHEN c.id % 50 = 0 THEN 50 ELSE 92 END
  AND NOT EXISTS (SELECT FROM market_days x WHERE x.market_id = m.id AND x.date = d::date);

INSERT INTO absence_justifications (concession_id, date, region_id, market_id, comune, reason, recorded_by)
SELECT c.id, d::date, 3, c.market_id, c.comune, 'MALATTIA', 'bench'
FROM concessions c JOIN markets m ON m.id = c.market_id,
     generate_series(current_date - 365, current_date - 1, interval '1 day') d
WHERE c.id % 50 = 0 AND extract(isodow FROM d)::smallint = ANY (m.days)
  AND abs(hashtext(c.id::text || d::text)) % 100 >= 50 AND abs(hashtext(d::text || c.id::text)) % 5 = 0;
ANALYZE;
`

// TestLifecycleScale measures the lifecycle job on a full-scale Lombardia
// (BENCHMARKS.md, "Lifecycle job (issue 13)"). It takes minutes to build,
// so it runs only with DMS_LIFECYCLE_SCALE=1; it asserts what the runs did,
// never how long they took.
func TestLifecycleScale(t *testing.T) {
	if os.Getenv("DMS_LIFECYCLE_SCALE") == "" {
		t.Skip("set DMS_LIFECYCLE_SCALE=1 to build a full-scale Lombardia and time the lifecycle job")
	}
	ctx := context.Background()
	cfg, m := deployment(t, "jobs_lifecycle_scale")
	admin := pgtest.Connect(t, cfg.Shards[0].AdminDSN())
	start := time.Now()
	if _, err := admin.Exec(ctx, lifecycleScaleSQL); err != nil {
		t.Fatal(err)
	}
	var concessions, presences int64
	if err := admin.QueryRow(ctx, `SELECT (SELECT count(*) FROM concessions), (SELECT count(*) FROM vendor_presences)`).Scan(&concessions, &presences); err != nil {
		t.Fatal(err)
	}
	t.Logf("built %d concessions and %d presences in %s", concessions, presences, time.Since(start).Round(time.Second))

	if os.Getenv("DMS_LIFECYCLE_EXPLAIN") != "" {
		explainLifecycle(t, cfg.Shards[0].AdminDSN())
	}
	job := &Lifecycle{Shards: m.Shards, Extensions: DefaultConfig().Lifecycle.Extensions}
	for _, run := range []string{"first run", "second run (the daily steady state)"} {
		start := time.Now()
		rs := job.RunOnce(ctx)
		if len(rs) != 1 || rs[0].Err != nil {
			t.Fatalf("%s: %+v", run, rs)
		}
		t.Logf("%s: %s, %v", run, time.Since(start).Round(time.Millisecond), rs[0].Counts)
		if run == "first run" && (rs[0].Counts[LifecycleExpired] < 1000 || rs[0].Counts[LifecycleProposed] == 0) {
			t.Errorf("%s: %v, want the printed ends of 2024 extended and then expired, and proposals", run, rs[0].Counts)
		}
	}
}

// explainLifecycle logs the plans of the lifecycle's statements, through
// auto_explain, for a run as the owner that rolls back.
func explainLifecycle(t *testing.T, dsn string) {
	ctx := context.Background()
	pc, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	pc.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { t.Log(n.Message) }
	conn, err := pgx.ConnectConfig(ctx, pc)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	for _, q := range []string{"LOAD 'auto_explain'", "SET auto_explain.log_min_duration = 200", "SET auto_explain.log_analyze = on",
		"SET auto_explain.log_nested_statements = on", "SET client_min_messages = log",
		`SELECT * FROM dms.concession_lifecycle((now() AT TIME ZONE 'Europe/Rome')::date, '[{"in_force_on":"2023-12-31","until":"2025-12-31"}]')`} {
		if _, err := tx.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}
