package router

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/dmshub/dmsrouter/auth"
	"github.com/dmshub/dmsrouter/config"
	"github.com/dmshub/dmsrouter/national"
	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/registry"
	"github.com/dmshub/dmsrouter/shardmap"
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
			for _, r := range regions.All() {
				f := byRegion[string(r.Code)]
				want.ByRegion = append(want.ByRegion, *f)
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

// pages follows next_cursor from path (which has no cursor yet) and returns
// every item's id in order, checking that each page is complete.
func pages(t *testing.T, e *env, path string) (ids []int64, total int64) {
	t.Helper()
	cursor := ""
	for range 200 {
		p := path
		if cursor != "" {
			p += "&cursor=" + url.QueryEscape(cursor)
		}
		var page struct {
			Items []struct {
				ID int64 `json:"id"`
			} `json:"items"`
			Total      int64                   `json:"total"`
			NextCursor string                  `json:"next_cursor"`
			Partial    bool                    `json:"partial"`
			Regions    []national.RegionStatus `json:"regions"`
		}
		decode(t, e.get(t, "national", p), &page)
		allOK(t, page.Partial, page.Regions)
		for _, it := range page.Items {
			ids = append(ids, it.ID)
		}
		total = page.Total
		if page.NextCursor == "" {
			return ids, total
		}
		cursor = page.NextCursor
	}
	t.Fatalf("%s: more than 200 pages", path)
	return nil, 0
}

func testNationalExpiring(t *testing.T, e *env) {
	for _, within := range []int{0, 30, 90, 3650} {
		t.Run(strconv.Itoa(within), func(t *testing.T) {
			type conc struct {
				id      int64
				validTo time.Time
			}
			var all []conc
			e.each(t, `SELECT id, valid_to FROM concessions WHERE status = 'ATTIVA' AND valid_to BETWEEN $1 AND $2`,
				[]any{fixedNow, fixedNow.AddDate(0, 0, within)}, func(v []any) {
					all = append(all, conc{v[0].(int64), v[1].(time.Time)})
				})
			slices.SortFunc(all, func(a, b conc) int { return cmp.Or(a.validTo.Compare(b.validTo), cmp.Compare(a.id, b.id)) })
			var want []int64
			for _, c := range all {
				want = append(want, c.id)
			}
			for _, limit := range []int{3, 50} {
				got, total := pages(t, e, fmt.Sprintf("/v1/national/concessions/expiring?within_days=%d&limit=%d", within, limit))
				if !slices.Equal(got, want) || total != int64(len(want)) {
					t.Errorf("within_days=%d limit=%d: ids %v total %d, want %v total %d", within, limit, got, total, want, len(want))
				}
			}
			if within == 90 && len(want) < 10 {
				t.Errorf("only %d concessions expire within 90 days: the fixture should have more", len(want))
			}
		})
	}
	for _, bad := range []string{"?within_days=-1", "?within_days=3651", "?offset=3", "?cursor=abc", "?partial=maybe"} {
		if r := e.get(t, "national", "/v1/national/concessions/expiring"+bad); r.status != 400 {
			t.Errorf("expiring%s = %d %s, want 400", bad, r.status, r.raw)
		}
	}
}

func testNationalMarkets(t *testing.T, e *env) {
	type market struct {
		id   int64
		name string
	}
	for _, filter := range []string{"", "&status=INACTIVE", "&q=mercato+n"} {
		t.Run(filter, func(t *testing.T) {
			var all []market
			sql := `SELECT id, name FROM markets WHERE true`
			switch filter {
			case "&status=INACTIVE":
				sql += ` AND status = 'INACTIVE'`
			case "&q=mercato+n":
				sql += ` AND name ILIKE '%mercato n%'`
			}
			e.each(t, sql, nil, func(v []any) { all = append(all, market{v[0].(int64), v[1].(string)}) })
			slices.SortFunc(all, func(a, b market) int { return cmp.Or(strings.Compare(a.name, b.name), cmp.Compare(a.id, b.id)) })
			var want []int64
			for _, m := range all {
				want = append(want, m.id)
			}
			if len(want) == 0 {
				t.Fatal("the fixture has no such market")
			}
			for _, limit := range []int{1, 4, 100} {
				got, total := pages(t, e, fmt.Sprintf("/v1/markets?limit=%d%s", limit, filter))
				if !slices.Equal(got, want) || total != int64(len(want)) {
					t.Errorf("limit=%d: ids %v total %d, want %v total %d", limit, got, total, want, len(want))
				}
			}
			for _, offset := range []int{0, 1, 5, len(want) - 1, len(want), len(want) + 3} {
				var page national.ListResponse[registry.Market]
				decode(t, e.get(t, "national", fmt.Sprintf("/v1/markets?limit=3&offset=%d%s", offset, filter)), &page)
				var got []int64
				for _, m := range page.Items {
					got = append(got, m.ID)
				}
				wantPage := want[min(offset, len(want)):min(offset+3, len(want))]
				if !slices.Equal(got, wantPage) || page.Offset != offset || page.Total != int64(len(want)) {
					t.Errorf("offset=%d: ids %v offset %d total %d, want %v", offset, got, page.Offset, page.Total, wantPage)
				}
			}
		})
	}
	if r := e.get(t, "national", "/v1/markets?offset=1001"); r.status != 400 || !strings.Contains(r.raw, `"field":"offset"`) {
		t.Errorf("offset past the cap = %d %s, want 400 naming offset", r.status, r.raw)
	}
	if r := e.get(t, "national", "/v1/markets?offset=1000"); r.status != 200 {
		t.Errorf("offset at the cap = %d %s, want 200", r.status, r.raw)
	}
	// A regional cursor is not a national one, and the other way round.
	regional := e.get(t, "national", "/v1/markets?region=03&limit=1")
	if r := e.get(t, "national", "/v1/markets?limit=1&cursor="+regional.body["next_cursor"].(string)); r.status != 400 {
		t.Errorf("national list with a regional cursor = %d, want 400", r.status)
	}
	// Naming a region still reads that region alone.
	if r := e.get(t, "national", "/v1/markets?region=12"); r.field("region") != "12,12" || r.body["regions"] != nil {
		t.Errorf("national with region=12 = %s", r.raw)
	}
	// A regional principal still gets its own region.
	if r := e.get(t, "lazio", "/v1/markets"); r.status != 200 || r.body["regions"] != nil || r.field("region") != "12,12" {
		t.Errorf("regional list = %d %s", r.status, r.raw)
	}
}

func testNationalVendor(t *testing.T, e *env) {
	yearStart := time.Date(fixedNow.Year(), 1, 1, 0, 0, 0, 0, time.UTC)
	for _, piva := range []string{"10000000006", "10000000001", "10000000025", "01234567897"} {
		t.Run(piva, func(t *testing.T) {
			type regionWant struct {
				vendorID          int64
				concessions       []int64
				presencesThisYear int64
			}
			want := map[string]*regionWant{}
			e.each(t, `SELECT v.region_id, v.id,
				    coalesce((SELECT array_agg(c.id ORDER BY c.id) FROM concessions c WHERE c.vendor_id = v.id), '{}'),
				    (SELECT count(*) FROM vendor_presences p WHERE p.vendor_id = v.id AND p.date >= $2)
				FROM vendors v WHERE v.partita_iva = $1`, []any{piva, yearStart}, func(v []any) {
				w := &regionWant{vendorID: v[1].(int64), presencesThisYear: v[3].(int64)}
				for _, c := range v[2].([]any) {
					w.concessions = append(w.concessions, c.(int64))
				}
				want[regionOf(v[0])] = w
			})
			var got national.VendorResponse
			decode(t, e.get(t, "national", "/v1/vendors?partita_iva="+piva), &got)
			allOK(t, got.Partial, got.Regions)
			if len(got.AppearsIn) != len(want) {
				t.Fatalf("appears in %d regions, want %d: %s", len(got.AppearsIn), len(want), e.get(t, "national", "/v1/vendors?partita_iva="+piva).raw)
			}
			var concessions, presences int64
			for _, a := range got.AppearsIn {
				w := want[a.Region]
				if w == nil {
					t.Fatalf("appears in region %s, which does not know it", a.Region)
				}
				var ids []int64
				for _, c := range a.Concessions {
					ids = append(ids, c.ID)
				}
				if a.Vendor.ID != w.vendorID || a.Vendor.PartitaIVA != piva || !slices.Equal(ids, w.concessions) ||
					a.ConcessionsTotal != int64(len(w.concessions)) || a.PresencesThisYear != w.presencesThisYear {
					t.Errorf("region %s: %+v, want %+v", a.Region, a, *w)
				}
				concessions += int64(len(w.concessions))
				presences += w.presencesThisYear
			}
			if got.ConcessionsTotal != concessions || got.PresencesThisYear != presences {
				t.Errorf("totals %d concessions, %d presences; want %d, %d", got.ConcessionsTotal, got.PresencesThisYear, concessions, presences)
			}
			if piva == "10000000006" && (len(want) != 6 || presences == 0) {
				t.Errorf("fixture: vendor %s should be in 6 regions with presences, is in %d with %d", piva, len(want), presences)
			}
		})
	}
	if r := e.get(t, "national", "/v1/vendors?partita_iva=99999999999"); r.status != 404 {
		t.Errorf("unknown vendor = %d %s, want 404", r.status, r.raw)
	}
	if r := e.get(t, "national", "/v1/vendors?codice_fiscale=10000000006"); r.status != 400 {
		t.Errorf("national codice_fiscale without region = %d, want 400", r.status)
	}
}

func testNationalNeedsNationalTerritory(t *testing.T, e *env) {
	for _, who := range []string{"lombardia", "lazio", "bergamo", "milano", "market"} {
		for _, path := range []string{"/v1/national/summary", "/v1/national/presences?from=2026-06-01&to=2026-06-02", "/v1/national/concessions/expiring"} {
			if r := e.get(t, who, path); r.status != 403 || r.header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("GET %s as %s = %d %s, want 403", path, who, r.status, r.raw)
			}
		}
	}
	if r := e.get(t, "", "/v1/national/summary"); r.status != 401 {
		t.Errorf("without a token = %d, want 401", r.status)
	}
	// A regional principal asking a vendor by partita IVA reads its own region.
	if r := e.get(t, "lombardia", "/v1/vendors?partita_iva=10000000006"); r.status != 200 || r.field("region") != "03" || r.body["appears_in"] != nil {
		t.Errorf("regional vendor lookup = %d %s", r.status, r.raw)
	}
}

func TestNationalPartial(t *testing.T) {
	e := newNationalEnv(t, "natpart", true, nil)
	e.national.SetConfig(national.Config{LegTimeout: 5 * time.Second, CacheTTL: time.Minute})
	var before national.SummaryResponse
	decode(t, e.get(t, "national", "/v1/national/summary"), &before)
	allOK(t, before.Partial, before.Regions)
	if err := e.owned.Halt(); err != nil {
		t.Fatal(err)
	}
	// The complete answer is still cached: a halted shard does not evict it.
	if r := e.get(t, "national", "/v1/national/summary"); r.status != 200 || r.header.Get("X-Dms-National") != "cache" {
		t.Errorf("cached summary = %d %s", r.status, r.header.Get("X-Dms-National"))
	}
	for _, path := range []string{
		"/v1/national/summary?date=2026-06-03",
		"/v1/national/presences?from=2026-06-01&to=2026-06-30",
		"/v1/national/concessions/expiring",
		"/v1/markets?limit=5",
		"/v1/vendors?partita_iva=10000000012",
	} {
		t.Run(path, func(t *testing.T) {
			r := e.get(t, "national", path)
			var got struct {
				Partial bool                    `json:"partial"`
				Regions []national.RegionStatus `json:"regions"`
			}
			decode(t, r, &got)
			if !got.Partial || len(got.Regions) != 20 {
				t.Fatalf("partial = %v, %d regions; want a partial answer listing 20: %s", got.Partial, len(got.Regions), r.raw)
			}
			for _, st := range got.Regions {
				want := national.StatusOK
				if st.Region == "12" {
					want = national.StatusUnavailable
				}
				if st.Status != want {
					t.Errorf("region %s: %s, want %s", st.Region, st.Status, want)
				}
			}
			sep := "?"
			if strings.Contains(path, "?") {
				sep = "&"
			}
			r = e.get(t, "national", path+sep+"partial=false")
			if r.status != 503 || r.header.Get("Retry-After") == "" || r.header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("partial=false = %d %v %s, want 503 with Retry-After", r.status, r.header, r.raw)
			}
			if regs, _ := r.body["regions"].([]any); len(regs) != 1 || regs[0] != "12" {
				t.Errorf("partial=false names regions %v, want [12]", r.body["regions"])
			}
		})
	}
	// Partial answers are counted by region.
	if m := e.get(t, "", "/metrics"); !strings.Contains(m.raw, `dms_national_partial_total{`) ||
		!regexp.MustCompile(`dms_national_partial_total\{[^}]*region="12"[^}]*status="unavailable"[^}]*\} [1-9]`).MatchString(m.raw) {
		t.Errorf("/metrics lacks the partial counter for region 12")
	}
}

func TestNationalHungShard(t *testing.T) {
	e := newNationalEnv(t, "nathung", true, nil)
	const deadline = 400 * time.Millisecond
	e.national.SetConfig(national.Config{LegTimeout: deadline})
	decode(t, e.get(t, "national", "/v1/national/summary"), new(national.SummaryResponse))
	if err := e.owned.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.owned.Continue(); err != nil {
			t.Error(err)
		}
	})
	lazio, _ := e.m.For("12")
	// Until the breaker opens, Lazio's leg times out at its deadline and
	// the answer arrives within the deadline plus a margin.
	const margin = 1500 * time.Millisecond
	for i := 0; lazio.State() != "open"; i++ {
		if i == 10 {
			t.Fatalf("the breaker is still %s after %d timed-out legs", lazio.State(), i)
		}
		start := time.Now()
		r := e.get(t, "national", "/v1/national/summary")
		elapsed := time.Since(start)
		var got national.SummaryResponse
		decode(t, r, &got)
		if elapsed > deadline+margin {
			t.Errorf("answer %d took %s, want at most %s", i, elapsed, deadline+margin)
		}
		st := got.Regions[11]
		if !got.Partial || st.Region != "12" || st.Status != national.StatusTimeout || st.MS < deadline.Milliseconds()-50 {
			t.Errorf("answer %d: partial %v, region %+v; want 12 timed out after ~%s", i, got.Partial, st, deadline)
		}
	}
	// The open breaker skips the leg at once.
	start := time.Now()
	var got national.SummaryResponse
	decode(t, e.get(t, "national", "/v1/national/summary"), &got)
	if st := got.Regions[11]; st.Status != national.StatusUnavailable || st.MS > 100 || time.Since(start) > deadline {
		t.Errorf("with the breaker open: region %+v after %s; want unavailable at once", st, time.Since(start))
	}
	// Once the server runs again, the breaker's probe closes it and Lazio answers.
	if err := e.owned.Continue(); err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(20 * time.Second)
	for {
		var got national.SummaryResponse
		decode(t, e.get(t, "national", "/v1/national/summary"), &got)
		if !got.Partial {
			break
		}
		if time.Now().After(until) {
			t.Fatalf("Lazio did not come back: %+v", got.Regions[11])
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestNationalSingleflight(t *testing.T) {
	// Every leg counts itself and, until release is closed, waits.
	var legCount atomic.Int64
	release := make(chan struct{})
	var once sync.Once
	started := make(chan struct{})
	e := newNationalEnv(t, "natsf", false, func(regions.Code) {
		legCount.Add(1)
		once.Do(func() { close(started) })
		<-release
	})
	e.national.SetConfig(national.Config{LegTimeout: 10 * time.Second, Concurrency: 20, CacheTTL: time.Minute})
	const clients = 8
	bodies := make([]string, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.get(t, "national", "/v1/national/summary?date=2026-06-03")
			if r.status != 200 {
				t.Errorf("client %d: %d %s", i, r.status, r.raw)
			}
			bodies[i] = r.raw
		}()
	}
	<-started
	// Give every client time to arrive: without singleflight each would
	// start its own fan-out and count its legs before blocking.
	time.Sleep(300 * time.Millisecond)
	legs := legCount.Load()
	close(release)
	wg.Wait()
	if legs != 20 || legCount.Load() != 20 {
		t.Errorf("%d clients ran %d legs (%d before release), want one fan-out of 20", clients, legCount.Load(), legs)
	}
	for i := range bodies {
		if bodies[i] != bodies[0] {
			t.Errorf("client %d got %s, client 0 %s", i, bodies[i], bodies[0])
		}
	}
	// The complete answer is cached for the same scope...
	if r := e.get(t, "national", "/v1/national/summary?date=2026-06-03"); r.header.Get("X-Dms-National") != "cache" || legCount.Load() != 20 {
		t.Errorf("repeat: source %q, legs %d; want the cache", r.header.Get("X-Dms-National"), legCount.Load())
	}
	// ...and another request is another fan-out.
	if r := e.get(t, "national", "/v1/national/summary?date=2026-06-04"); r.header.Get("X-Dms-National") != "fanout" || legCount.Load() != 40 {
		t.Errorf("another date: source %q, legs %d; want a new fan-out", r.header.Get("X-Dms-National"), legCount.Load())
	}
}

func testNationalTelemetry(t *testing.T, e *env) {
	e.get(t, "national", "/v1/national/summary?date=2026-06-10")
	var server sdktrace.ReadOnlySpan
	for _, sp := range e.spans.Ended() {
		if sp.Name() == "GET /v1/national/summary" {
			server = sp // the last one
		}
	}
	if server == nil {
		t.Fatal("no request span")
	}
	seen := map[string]bool{}
	for _, sp := range e.spans.Ended() {
		if sp.Name() != "national.leg" || sp.Parent().SpanID() != server.SpanContext().SpanID() {
			continue
		}
		for _, kv := range sp.Attributes() {
			if kv.Key == "region" {
				seen[kv.Value.AsString()] = true
			}
		}
	}
	if len(seen) != 20 {
		t.Errorf("the request span has leg spans for %d regions, want 20", len(seen))
	}
}

// BenchmarkNationalSummary measures GET /v1/national/summary through the
// whole router (HTTP on loopback, authentication, fan-out, merge, JSON) and
// one region's leg alone. It runs against the deployment configured in the
// file named by DMSROUTER_BENCH_CONFIG (a seeded one: see BENCHMARKS.md,
// "National fan-out"), else against the test fixture on 20 shards. It
// reports percentiles of the latencies it measured:
//
//   - uncached/1-client: the cache off, one client: the fan-out's latency;
//   - uncached/same: the cache off, 8 clients asking the same summary, which
//     singleflight collapses into shared fan-outs;
//   - uncached/distinct: the cache off, 8 clients each asking another date,
//     so every request is a fan-out of its own;
//   - cached: 8 clients, answers from the cache;
//   - leg/RR: region RR's leg alone (registry.Summary on its shard), one
//     client; the slowest region's percentiles are also reported as leg/slowest;
//   - scan/all-regions: the same figures without the rollups, every region's
//     tables scanned one region after another (what one database without
//     rollups does), one client.
func BenchmarkNationalSummary(b *testing.B) {
	ctx := context.Background()
	var cfg config.Config
	if path := os.Getenv("DMSROUTER_BENCH_CONFIG"); path != "" {
		var err error
		if cfg, err = config.Load(path, os.Getenv); err != nil {
			b.Fatal(err)
		}
	} else {
		var err error
		cfg.Auth.HS256Secret = pgtest.TestSecret
		cfg.ShardMap, err = pg.Deployment(ctx, pgtest.Prefix("natbench"), pgtest.OnePerRegion())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { pg.DropDeployment(context.Background(), cfg.ShardMap) })
		for _, sh := range cfg.ShardMap.Shards {
			exec(b, sh.AdminDSN(), fmt.Sprintf(nationalSQL, "ARRAY["+strconv.Itoa(regions.Code(sh.Name[1:]).Num())+"]"))
		}
	}
	m, err := shardmap.NewHolder(cfg.ShardMap, shardmap.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(m.Close)
	v, err := auth.NewVerifier(cfg.Auth)
	if err != nil {
		b.Fatal(err)
	}
	fan, err := national.New(cfg.National, national.Options{})
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(m, v, fan, Options{})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(s)
	b.Cleanup(srv.Close)
	secret := cfg.Auth.HS256Secret
	tok, err := auth.SignHS256(secret, auth.Principal{Subject: "bench", Role: "auditor", Territory: regions.Territory{Level: regions.National}}, time.Hour, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	get := func(path string) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || bytes.Contains(body, []byte(`"partial":true`)) {
			b.Fatalf("GET %s = %d %.300s", path, res.StatusCode, body)
		}
	}
	today := s.today()
	var dbs []string // the shard databases, whose backends' CPU time the benchmark reports
	for _, sh := range cfg.ShardMap.Shards {
		if c, err := pgx.ParseConfig(sh.Primary); err == nil {
			dbs = append(dbs, c.Database)
		}
	}
	measure := func(name string, clients int, cacheTTL time.Duration, path func(client, i int) string) {
		b.Run(name, func(b *testing.B) {
			nc := cfg.National
			nc.CacheTTL = cacheTTL
			fan.SetConfig(nc)
			get(path(0, 0)) // warm the pools (and the cache)
			var lat latencies
			cpu, pgCPU, wait := processCPU(), backendsCPU(dbs), runQueueWait()
			b.ResetTimer()
			var wg sync.WaitGroup
			per := (b.N + clients - 1) / clients
			for c := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range per {
						start := time.Now()
						get(path(c, i))
						lat.add(time.Since(start))
					}
				}()
			}
			wg.Wait()
			lat.report(b)
			perOp := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(len(lat.d)) }
			b.ReportMetric(perOp(processCPU()-cpu), "proc-cpu-ms/op")
			b.ReportMetric(perOp(backendsCPU(dbs)-pgCPU), "pg-cpu-ms/op")
			b.ReportMetric(perOp(runQueueWait()-wait), "runq-wait-ms/op")
		})
	}
	measure("uncached/1-client", 1, 0, func(int, int) string { return "/v1/national/summary" })
	measure("uncached/same", 8, 0, func(int, int) string { return "/v1/national/summary" })
	measure("uncached/distinct", 8, 0, func(c, i int) string {
		// Another day of the month for every request in flight.
		return "/v1/national/summary?date=" + today.AddDate(0, 0, -((c*7+i)%27)).Format(time.DateOnly)
	})
	measure("cached", 8, time.Minute, func(int, int) string { return "/v1/national/summary" })

	var slowest *latencies
	var slowestRegion string
	for _, r := range regions.All() {
		sh, err := m.For(r.Code)
		if err != nil {
			b.Fatal(err)
		}
		sc := regions.Scope{Region: r.Code, User: "bench"}
		var lat latencies
		b.Run("leg/"+string(r.Code), func(b *testing.B) {
			lat = latencies{}
			first, err := registry.Summary(ctx, sh, sc, today, 0)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				// As the router asks: the set of partite IVA is known.
				if _, err := registry.Summary(ctx, sh, sc, today, first.VendorsVersion); err != nil {
					b.Fatal(err)
				}
				lat.add(time.Since(start))
			}
			lat.report(b)
		})
		if slowest == nil || lat.percentile(50) > slowest.percentile(50) {
			slowest, slowestRegion = &lat, string(r.Code)
		}
	}
	// The same figures without rollups, as one database without them would
	// compute them: every region's tables scanned, one region after another.
	b.Run("scan/all-regions", func(b *testing.B) {
		month := time.Date(today.Year(), today.Month(), 1, 0, 0, 0, 0, time.UTC)
		var lat latencies
		for range b.N {
			start := time.Now()
			for _, r := range regions.All() {
				sh, _ := m.For(r.Code)
				err := sh.Read(ctx, regions.Scope{Region: r.Code, User: "bench"}, func(batch *pgx.Batch) {
					n := int16(r.Code.Num())
					for _, q := range []string{
						`SELECT count(*) FROM markets WHERE region_id = $1 AND status = 'ACTIVE'`,
						`SELECT status, count(*) FROM stalls WHERE region_id = $1 GROUP BY 1`,
						`SELECT status, count(*) FROM concessions WHERE region_id = $1 GROUP BY 1`,
						`SELECT partita_iva FROM vendors WHERE region_id = $1`,
					} {
						batch.Queue(q, n)
					}
					batch.Queue(`SELECT count(*) FILTER (WHERE date = $2), count(*) FROM vendor_presences
						WHERE region_id = $1 AND date >= $3 AND date < $4`, n, today, month, month.AddDate(0, 1, 0))
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			lat.add(time.Since(start))
		}
		lat.report(b)
	})
	b.Run("leg/slowest", func(b *testing.B) {
		b.Logf("slowest leg alone: region %s, p50 %s, p99 %s", slowestRegion, slowest.percentile(50), slowest.percentile(99))
		b.ReportMetric(float64(slowest.percentile(50).Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(slowest.percentile(99).Microseconds())/1000, "p99-ms")
	})
}

// processCPU returns the CPU time this process has used (the router and its
// benchmark clients).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// backendsCPU returns the CPU time used so far by the PostgreSQL backends
// of this machine that serve dms_app on one of the databases dbs (their
// process title is "postgres: dms_app DB ..."). The pools keep their
// connections, so the difference over a run is the run's database CPU.
func backendsCPU(dbs []string) time.Duration {
	var ticks int64
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range stats {
		title, err := os.ReadFile(filepath.Join(filepath.Dir(path), "cmdline"))
		if err != nil || !bytes.HasPrefix(title, []byte("postgres: dms_app ")) {
			continue
		}
		f := strings.Fields(strings.TrimPrefix(string(title), "postgres: dms_app "))
		if len(f) == 0 || !slices.Contains(dbs, f[0]) {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(b[i+1:]))
		if len(fields) > 12 {
			u, _ := strconv.ParseInt(fields[11], 10, 64)
			s, _ := strconv.ParseInt(fields[12], 10, 64)
			ticks += u + s
		}
	}
	return time.Duration(ticks) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

// runQueueWait returns how long this process's threads have waited for a
// CPU so far (the second field of /proc/self/task/*/schedstat): the cost of
// sharing the machine.
func runQueueWait() time.Duration {
	var ns int64
	tasks, _ := filepath.Glob("/proc/self/task/*/schedstat")
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) >= 2 {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			ns += n
		}
	}
	return time.Duration(ns)
}

// latencies collects request durations from concurrent clients.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) percentile(p float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0
	}
	slices.Sort(l.d)
	return l.d[min(len(l.d)-1, int(float64(len(l.d))*p/100))]
}

func (l *latencies) report(b *testing.B) {
	b.ReportMetric(float64(l.percentile(50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(l.percentile(99).Microseconds())/1000, "p99-ms")
}
