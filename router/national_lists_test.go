package router

import (
	"cmp"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dmshub/dmsrouter/national"
	"github.com/dmshub/dmsrouter/registry"
)

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
