package router

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/national"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/registry"
)

// nationalSQL adds to every region (the regions of the shard it runs on,
// given as %s = ARRAY[...]) a few markets whose names repeat across regions,
// stalls, vendors whose partite IVA repeat across neighbouring regions,
// concessions expiring around the test's today and presences over three
// months and a new year. Every row goes through the ordinary INSERT paths,
// so the presence rollup is kept by its triggers.
const nationalSQL = `
DO $$
DECLARE
    r int;
    prov text;
BEGIN
    FOREACH r IN ARRAY %s LOOP
        prov := (ARRAY['001','007','015','021','023','030','008','037','048','054',
                       '041','058','066','070','063','072','076','078','082','092'])[r];
        INSERT INTO markets (id, region_id, code, name, province, comune, comune_name, status)
        SELECT dms.next_id('markets', r::smallint), r, 'NT' || lpad((r * 10 + g)::text, 3, '0'),
               (ARRAY['Mercato Centrale', 'Mercato del Borgo', 'Mercato Nuovo', 'mercato rionale', 'Mercato Vecchio'])[1 + (r * 7 + g) %% 5],
               prov, prov || lpad(g::text, 3, '0'), 'Comune ' || g,
               CASE WHEN (r + g) %% 5 = 0 THEN 'INACTIVE' ELSE 'ACTIVE' END
        FROM generate_series(1, 1 + r %% 4) g;

        INSERT INTO stalls (id, region_id, market_id, comune, number, type, status, area_mq)
        SELECT dms.next_id('stalls', r::smallint), r, m.id, m.comune, g,
               (ARRAY['FISSO', 'SPUNTA', 'STRAORDINARIO'])[1 + g %% 3],
               (ARRAY['LIBERO', 'OCCUPATO', 'RISERVATO'])[1 + (g + r + (m.id %% 2)::int) %% 3], 10
        FROM markets m, generate_series(1, 3) g
        WHERE m.region_id = r AND m.code LIKE 'NT%%';

        INSERT INTO vendors (id, region_id, partita_iva, codice_fiscale, denominazione, comune)
        SELECT dms.next_id('vendors', r::smallint), r, '1000000' || lpad(k::text, 4, '0'),
               '1000000' || lpad(k::text, 4, '0'), 'Impresa ' || k, prov || '001'
        FROM generate_series(r, r + 5) k;

        INSERT INTO concessions (id, region_id, market_id, comune, stall_id, vendor_id, valid_from, valid_to, status)
        SELECT dms.next_id('concessions', r::smallint), r, s.market_id, s.comune, s.id,
               (SELECT v.id FROM vendors v WHERE v.region_id = r AND v.denominazione LIKE 'Impresa %%'
                ORDER BY v.id OFFSET (s.number + s.market_id %% 3) %% 6 LIMIT 1),
               DATE '2016-01-01',
               DATE '2026-06-15' + ((r * 13 + s.number * 29 + (s.market_id %% 7)::int * 11) %% 150 - 10),
               CASE WHEN s.number = 2 AND r %% 3 = 0 THEN 'SOSPESA' ELSE 'ATTIVA' END
        FROM stalls s JOIN markets m ON m.id = s.market_id
        WHERE s.region_id = r AND m.code LIKE 'NT%%' AND s.number <= 2;

        INSERT INTO vendor_presences (id, region_id, market_id, comune, vendor_id, stall_id, date, kind, checkin_at)
        SELECT dms.next_id('vendor_presences', r::smallint), r, m.id, m.comune, v.id,
               CASE WHEN v.k = 0 THEN (SELECT s.id FROM stalls s WHERE s.market_id = m.id AND s.number = 1) END,
               d::date, CASE WHEN v.k = 0 THEN 'CONCESSION' ELSE 'SPUNTA' END, d + time '07:00'
        FROM markets m
        CROSS JOIN (SELECT generate_series(DATE '2026-05-20', DATE '2026-07-05', interval '1 day')
                    UNION ALL
                    SELECT generate_series(DATE '2025-12-28', DATE '2026-01-03', interval '1 day')) AS days (d)
        CROSS JOIN LATERAL (
            SELECT id, row_number() OVER (ORDER BY id) - 1 AS k
            FROM vendors WHERE region_id = r AND denominazione LIKE 'Impresa %%'
            ORDER BY id LIMIT 1 + (m.id %% 2)::int) v
        WHERE m.region_id = r AND m.code LIKE 'NT%%' AND (d::date - DATE '2026-01-01' + (m.id %% 5)::int) %% 3 <> 0;
    END LOOP;
END
$$`

// newNationalEnv is startEnv with nationalSQL loaded on every shard and a
// leg timeout of 5s. The cache is off unless a test turns it on.
func newNationalEnv(t *testing.T, name string, withOwned bool, onLeg func(regions.Code)) *env {
	t.Helper()
	e := startEnv(t, name, withOwned, onLeg)
	cfg := e.m.Config()
	for _, sh := range cfg.Shards {
		var nums []string
		for code, shard := range cfg.Regions {
			if shard == sh.Name {
				nums = append(nums, strconv.Itoa(regions.Code(code).Num()))
			}
		}
		exec(t, sh.AdminDSN(), fmt.Sprintf(nationalSQL, "ARRAY["+strings.Join(nums, ",")+"]"))
	}
	e.national.SetConfig(national.Config{LegTimeout: 5 * time.Second})
	return e
}

// admin runs fn with a superuser connection to every shard: row-level
// security does not apply, so fn sees every row, as a brute-force count must.
func (e *env) admin(t *testing.T, fn func(conn *pgx.Conn)) {
	t.Helper()
	for _, sh := range e.m.Config().Shards {
		conn, err := pgx.Connect(context.Background(), sh.AdminDSN())
		if err != nil {
			t.Fatal(err)
		}
		fn(conn)
		conn.Close(context.Background())
	}
}

// each runs sql on every shard as the admin and calls fn with each row's values.
func (e *env) each(t *testing.T, sql string, args []any, fn func(vals []any)) {
	t.Helper()
	e.admin(t, func(conn *pgx.Conn) {
		rows, err := conn.Query(context.Background(), sql, args...)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			fn(vals)
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	})
}

func regionOf(v any) string { return fmt.Sprintf("%02d", v.(int16)) }

// decode decodes the body of r into v.
func decode(t *testing.T, r response, v any) {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("status %d, body %s", r.status, r.raw)
	}
	if err := json.Unmarshal([]byte(r.raw), v); err != nil {
		t.Fatalf("decode %s: %v", r.raw, err)
	}
}

// allOK checks that every region answered.
func allOK(t *testing.T, partial bool, statuses []national.RegionStatus) {
	t.Helper()
	if partial || len(statuses) != 20 {
		t.Fatalf("partial = %v with %d regions, want a complete answer of 20", partial, len(statuses))
	}
	for _, st := range statuses {
		if st.Status != national.StatusOK {
			t.Errorf("region %s: %s, want ok", st.Region, st.Status)
		}
	}
}

// TestNational checks every national endpoint against a brute-force
// computation over all shards, on one deployment.
func TestNational(t *testing.T) {
	e := newNationalEnv(t, "national", false, nil)
	for _, tt := range []struct {
		name string
		test func(*testing.T, *env)
	}{
		{"summary", testNationalSummary},
		{"vendor sets", testNationalVendorSets},
		{"presences", testNationalPresences},
		{"expiring", testNationalExpiring},
		{"markets", testNationalMarkets},
		{"vendor", testNationalVendor},
		{"territory", testNationalNeedsNationalTerritory},
		{"telemetry", testNationalTelemetry},
		{"lifecycle", testNationalLifecycle},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.test(t, e) })
	}
}

func testNationalSummary(t *testing.T, e *env) {
	for _, date := range []string{"", "2026-06-03", "2026-01-01", "2026-09-01"} {
		t.Run("date="+date, func(t *testing.T) {
			day := fixedNow.Format(time.DateOnly)
			path := "/v1/national/summary"
			if date != "" {
				day, path = date, path+"?date="+date
			}
			var got national.SummaryResponse
			decode(t, e.get(t, "national", path), &got)
			allOK(t, got.Partial, got.Regions)

			d, _ := time.Parse(time.DateOnly, day)
			month := time.Date(d.Year(), d.Month(), 1, 0, 0, 0, 0, time.UTC)
			want := national.SummaryResponse{Date: day, Month: day[:7], Report: national.Report{Regions: got.Regions},
				Total: national.SummaryFigures{Stalls: zero(registry.StallStatuses), Concessions: zero(registry.ConcessionStatuses)}}
			byRegion := map[string]*national.RegionFigures{}
			for _, r := range regions.All() {
				f := &national.RegionFigures{Region: string(r.Code), Name: r.Name,
					SummaryFigures: national.SummaryFigures{Stalls: zero(registry.StallStatuses), Concessions: zero(registry.ConcessionStatuses)}}
				byRegion[string(r.Code)] = f
			}
			e.each(t, `SELECT region_id, count(*) FROM markets WHERE status = 'ACTIVE' GROUP BY 1`, nil, func(v []any) {
				byRegion[regionOf(v[0])].MarketsActive = v[1].(int64)
			})
			e.each(t, `SELECT region_id, status, count(*) FROM stalls GROUP BY 1, 2`, nil, func(v []any) {
				byRegion[regionOf(v[0])].Stalls[v[1].(string)] = v[2].(int64)
			})
			e.each(t, `SELECT region_id, status, count(*) FROM concessions GROUP BY 1, 2`, nil, func(v []any) {
				byRegion[regionOf(v[0])].Concessions[v[1].(string)] = v[2].(int64)
			})
			pivas := map[string]bool{}
			e.each(t, `SELECT region_id, partita_iva FROM vendors`, nil, func(v []any) {
				byRegion[regionOf(v[0])].Vendors++
				pivas[v[1].(string)] = true
			})
			e.each(t, `SELECT region_id, count(*) FILTER (WHERE date = $1), count(*) FROM vendor_presences
				WHERE date >= $2 AND date < $3 GROUP BY 1`, []any{d, month, month.AddDate(0, 1, 0)}, func(v []any) {
				byRegion[regionOf(v[0])].PresencesDay = v[1].(int64)
				byRegion[regionOf(v[0])].PresencesMonth = v[2].(int64)
			})
			for r, c := range bruteMarketDays(t, e, d, d) {
				byRegion[r].MarketDaysHeld, byRegion[r].MarketDaysCancelled = c.Held, c.Cancelled
			}
			e.each(t, `SELECT region_id, count(*) FROM concessions WHERE status = 'ATTIVA' AND decadenza_proposed_on IS NOT NULL GROUP BY 1`, nil, func(v []any) {
				byRegion[regionOf(v[0])].DecadenzaProposed = v[1].(int64)
			})
			for _, r := range regions.All() {
				f := byRegion[string(r.Code)]
				want.ByRegion = append(want.ByRegion, *f)
				want.Total.MarketDaysHeld += f.MarketDaysHeld
				want.Total.MarketDaysCancelled += f.MarketDaysCancelled
				want.Total.DecadenzaProposed += f.DecadenzaProposed
				want.Total.MarketsActive += f.MarketsActive
				want.Total.PresencesDay += f.PresencesDay
				want.Total.PresencesMonth += f.PresencesMonth
				for k, n := range f.Stalls {
					want.Total.Stalls[k] += n
				}
				for k, n := range f.Concessions {
					want.Total.Concessions[k] += n
				}
			}
			want.Total.Vendors = int64(len(pivas))
			if !reflect.DeepEqual(got, want) {
				t.Errorf("GET %s =\n%+v\nwant (brute force over all shards)\n%+v", path, got, want)
			}
			var sum int64
			for _, f := range got.ByRegion {
				sum += f.Vendors
			}
			if got.Total.Vendors >= sum || got.Total.Vendors < 20 {
				t.Errorf("national vendors %d, sum of regions %d: a vendor in several regions must count once", got.Total.Vendors, sum)
			}
			if date == "2026-06-03" && got.Total.PresencesDay == 0 {
				t.Errorf("no presences on %s: the fixture should have some", date)
			}
		})
	}
}

// testNationalVendorSets checks that the summary's national count of
// vendors follows a change to a region's vendors although the router keeps
// the regions' sets between requests.
func testNationalVendorSets(t *testing.T, e *env) {
	count := func() (all, veneto int64) {
		t.Helper()
		var got national.SummaryResponse
		decode(t, e.get(t, "national", "/v1/national/summary"), &got)
		allOK(t, got.Partial, got.Regions)
		return got.Total.Vendors, got.ByRegion[4].Vendors
	}
	all, veneto := count()
	sh, err := e.m.For("05")
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		sql                string
		dNational, dVeneto int64
	}{
		{`INSERT INTO vendors (id, region_id, partita_iva, codice_fiscale, denominazione, comune)
		  VALUES (dms.next_id('vendors', 5::smallint), 5, '77777777777', '77777777777', 'Nuova srl', '023001')`, 1, 1},
		// A partita IVA Veneto did not know but Lombardia does: national stays.
		{`INSERT INTO vendors (id, region_id, partita_iva, codice_fiscale, denominazione, comune)
		  VALUES (dms.next_id('vendors', 5::smallint), 5, '01234567897', '01234567897', 'Rossi Mario', '023001')`, 1, 2},
		{`DELETE FROM vendors WHERE partita_iva IN ('77777777777', '01234567897') AND region_id = 5`, 0, 0},
	} {
		exec(t, sh.Config().AdminDSN(), step.sql)
		n, v := count()
		if n != all+step.dNational || v != veneto+step.dVeneto {
			t.Errorf("after %.60s: national %d, Veneto %d; want %d, %d", step.sql, n, v, all+step.dNational, veneto+step.dVeneto)
		}
	}
}

func zero(keys []string) map[string]int64 {
	m := map[string]int64{}
	for _, k := range keys {
		m[k] = 0
	}
	return m
}

func testNationalPresences(t *testing.T, e *env) {
	for _, rng := range [][2]string{
		{"2026-05-25", "2026-07-02"}, // partial months at both ends
		{"2026-06-01", "2026-06-30"}, // one whole month
		{"2025-12-01", "2026-07-31"}, // whole months only
		{"2026-06-03", "2026-06-20"}, // inside one month
		{"2025-12-31", "2026-01-01"}, // across a new year
	} {
		from, to := rng[0], rng[1]
		counts := map[string]map[string]int64{} // region -> day -> n
		e.each(t, `SELECT region_id, to_char(date, 'YYYY-MM-DD'), count(*) FROM vendor_presences
			WHERE date BETWEEN $1 AND $2 GROUP BY 1, 2`, []any{from, to}, func(v []any) {
			r := regionOf(v[0])
			if counts[r] == nil {
				counts[r] = map[string]int64{}
			}
			counts[r][v[1].(string)] = v[2].(int64)
		})
		for _, groupBy := range []string{"region", "day", "month"} {
			t.Run(from+"/"+to+"/"+groupBy, func(t *testing.T) {
				var got national.PresencesResponse
				decode(t, e.get(t, "national", "/v1/national/presences?from="+from+"&to="+to+"&group_by="+groupBy), &got)
				allOK(t, got.Partial, got.Regions)
				want := map[string]int64{}
				var keys []string
				f, _ := time.Parse(time.DateOnly, from)
				t2, _ := time.Parse(time.DateOnly, to)
				switch groupBy {
				case "region":
					for _, r := range regions.All() {
						keys = append(keys, string(r.Code))
					}
				case "day":
					for d := f; !d.After(t2); d = d.AddDate(0, 0, 1) {
						keys = append(keys, d.Format(time.DateOnly))
					}
				case "month":
					for m := f.AddDate(0, 0, 1-f.Day()); !m.After(t2); m = m.AddDate(0, 1, 0) {
						keys = append(keys, m.Format("2006-01"))
					}
				}
				var total int64
				for r, days := range counts {
					for day, n := range days {
						k := map[string]string{"region": r, "day": day, "month": day[:7]}[groupBy]
						want[k] += n
						total += n
					}
				}
				var wantItems []national.KeyCount
				for _, k := range keys {
					wantItems = append(wantItems, national.KeyCount{Key: k, N: want[k]})
				}
				if !reflect.DeepEqual(got.Items, wantItems) || got.Total != total || total == 0 {
					t.Errorf("items %v total %d, want %v total %d", got.Items, got.Total, wantItems, total)
				}
			})
		}
	}
	for _, bad := range []string{
		"/v1/national/presences?to=2026-06-01",
		"/v1/national/presences?from=2026-06-02&to=2026-06-01",
		"/v1/national/presences?from=2025-01-01&to=2026-01-02",
		"/v1/national/presences?from=2026-01-01&to=2026-02-01&group_by=week",
		"/v1/national/presences?from=2026-01-01&to=2026-02-01&limit=5",
	} {
		if r := e.get(t, "national", bad); r.status != 400 {
			t.Errorf("GET %s = %d %s, want 400", bad, r.status, r.raw)
		}
	}
	if r := e.get(t, "national", "/v1/national/presences?from=2025-01-02&to=2026-01-02"); r.status != 200 {
		t.Errorf("366 days = %d %s, want 200", r.status, r.raw)
	}
}
