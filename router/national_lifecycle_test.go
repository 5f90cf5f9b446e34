package router

import (
	"reflect"
	"testing"
	"time"

	"github.com/dmshub/dmsrouter/national"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/registry"
)

// bruteMarketDays counts, over every shard as the admin, each region's
// market days from from to to: (market, day) pairs with a presence or a
// HELD record and no CANCELLED record are held; CANCELLED records are
// cancelled.
func bruteMarketDays(t *testing.T, e *env, from, to time.Time) map[string]registry.MarketDayCounts {
	t.Helper()
	out := map[string]registry.MarketDayCounts{}
	e.each(t, `WITH pairs AS (
			SELECT market_id, date FROM vendor_presences WHERE date BETWEEN $1 AND $2
			UNION SELECT market_id, date FROM market_days WHERE date BETWEEN $1 AND $2)
		SELECT (x.market_id >> 48)::int2, count(*) FILTER (WHERE d.status IS NULL OR d.status = 'HELD'), count(*) FILTER (WHERE d.status = 'CANCELLED')
		FROM pairs x LEFT JOIN market_days d ON d.market_id = x.market_id AND d.date = x.date GROUP BY 1`, []any{from, to}, func(v []any) {
		out[regionOf(v[0])] = registry.MarketDayCounts{Held: v[1].(int64), Cancelled: v[2].(int64)}
	})
	return out
}

// testNationalLifecycle records cancelled and held market days and
// proposals of decadenza in some regions, and checks the national
// dashboards of market days, of decadenza and the summary against counts
// over every shard. The clock is 2026-06-15.
func testNationalLifecycle(t *testing.T, e *env) {
	for _, sh := range e.m.Config().Shards {
		// Every region's first market is cancelled on 2026-06-05 (a
		// holiday) and recorded held on 2026-06-06 without presences; its
		// first concession is proposed for decadenza, and its second runs
		// on a legal extension.
		exec(t, sh.AdminDSN(), `
			INSERT INTO market_days (market_id, region_id, comune, date, status, reason, updated_by)
			SELECT DISTINCT ON (m.region_id) m.id, m.region_id, m.comune, DATE '2026-06-05', 'CANCELLED', 'festa patronale', 'ufficio'
			FROM markets m ORDER BY m.region_id, m.id;
			INSERT INTO market_days (market_id, region_id, comune, date, status, updated_by)
			SELECT DISTINCT ON (m.region_id) m.id, m.region_id, m.comune, DATE '2026-06-06', 'HELD', 'ufficio'
			FROM markets m ORDER BY m.region_id, m.id
			ON CONFLICT DO NOTHING;
			UPDATE concessions c SET decadenza_proposed_on = '2026-06-14', decadenza_absences = 40
			WHERE c.id IN (SELECT DISTINCT ON (region_id) id FROM concessions WHERE status = 'ATTIVA' ORDER BY region_id, id);
			UPDATE concessions c SET extended_to = c.valid_to + 60
			WHERE c.id IN (SELECT DISTINCT ON (region_id) id FROM concessions WHERE status = 'ATTIVA' ORDER BY region_id, id DESC)`)
	}

	// Market days of June.
	from, to := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 6, 30, 0, 0, 0, 0, time.UTC)
	var days national.CountsResponse[registry.MarketDayCounts]
	decode(t, e.get(t, "national", "/v1/national/market-days?from=2026-06-01&to=2026-06-30"), &days)
	allOK(t, days.Partial, days.Regions)
	brute := bruteMarketDays(t, e, from, to)
	wantDays := national.CountsResponse[registry.MarketDayCounts]{From: "2026-06-01", To: "2026-06-30", Report: days.Report}
	for _, r := range regions.All() {
		c := brute[string(r.Code)]
		wantDays.ByRegion = append(wantDays.ByRegion, national.RegionCounts[registry.MarketDayCounts]{Region: string(r.Code), Name: r.Name, Counts: c})
		wantDays.Total.Held += c.Held
		wantDays.Total.Cancelled += c.Cancelled
	}
	if !reflect.DeepEqual(days, wantDays) {
		t.Errorf("market days =\n%+v\nwant (brute force)\n%+v", days, wantDays)
	}
	if wantDays.Total.Cancelled < 20 {
		t.Errorf("%d cancelled market days, want one per region at least", wantDays.Total.Cancelled)
	}

	// Decadenza and expiring terms within 90 days.
	var dec national.CountsResponse[registry.LifecycleCounts]
	decode(t, e.get(t, "national", "/v1/national/concessions/decadenza"), &dec)
	allOK(t, dec.Partial, dec.Regions)
	counts := map[string]registry.LifecycleCounts{}
	e.each(t, `SELECT region_id,
			count(*) FILTER (WHERE status = 'ATTIVA' AND decadenza_proposed_on IS NOT NULL),
			count(*) FILTER (WHERE coalesce(extended_to, valid_to) BETWEEN '2026-06-15' AND '2026-09-13'),
			count(*) FILTER (WHERE extended_to IS NOT NULL)
		FROM concessions WHERE status IN ('ATTIVA', 'SOSPESA') GROUP BY 1`, nil, func(v []any) {
		counts[regionOf(v[0])] = registry.LifecycleCounts{Proposed: v[1].(int64), Expiring: v[2].(int64), Extended: v[3].(int64)}
	})
	wantDec := national.CountsResponse[registry.LifecycleCounts]{From: "2026-06-15", To: "2026-09-13", Report: dec.Report}
	for _, r := range regions.All() {
		c := counts[string(r.Code)]
		wantDec.ByRegion = append(wantDec.ByRegion, national.RegionCounts[registry.LifecycleCounts]{Region: string(r.Code), Name: r.Name, Counts: c})
		wantDec.Total.Proposed += c.Proposed
		wantDec.Total.Expiring += c.Expiring
		wantDec.Total.Extended += c.Extended
	}
	if !reflect.DeepEqual(dec, wantDec) {
		t.Errorf("decadenza =\n%+v\nwant (brute force)\n%+v", dec, wantDec)
	}
	if wantDec.Total.Proposed < 20 || wantDec.Total.Extended < 20 {
		t.Errorf("%+v: want a proposal and an extension per region at least", wantDec.Total)
	}
	for _, bad := range []string{"?within_days=-1", "?limit=5", "?within_days=x"} {
		wantStatus(t, "decadenza"+bad, e.get(t, "national", "/v1/national/concessions/decadenza"+bad), 400)
	}
	for _, bad := range []string{"", "?from=2026-06-01", "?from=2026-06-30&to=2026-06-01", "?from=2025-01-01&to=2026-06-30"} {
		wantStatus(t, "market days"+bad, e.get(t, "national", "/v1/national/market-days"+bad), 400)
	}
	wantStatus(t, "market days as a region", e.get(t, "lombardia", "/v1/national/market-days?from=2026-06-01&to=2026-06-30"), 403)

	// The summary of the cancelled day counts them too.
	for _, day := range []string{"2026-06-05", "2026-06-06"} { // days no earlier request cached
		var sum national.SummaryResponse
		decode(t, e.get(t, "national", "/v1/national/summary?date="+day), &sum)
		d, _ := time.Parse(time.DateOnly, day)
		b := bruteMarketDays(t, e, d, d)
		var total national.SummaryFigures
		for _, f := range sum.ByRegion {
			if c := b[f.Region]; f.MarketDaysHeld != c.Held || f.MarketDaysCancelled != c.Cancelled || f.DecadenzaProposed != counts[f.Region].Proposed {
				t.Errorf("summary of %s, region %s: held %d, cancelled %d, proposed %d; want %d, %d, %d", day, f.Region,
					f.MarketDaysHeld, f.MarketDaysCancelled, f.DecadenzaProposed, c.Held, c.Cancelled, counts[f.Region].Proposed)
			}
			total.MarketDaysHeld += f.MarketDaysHeld
			total.MarketDaysCancelled += f.MarketDaysCancelled
			total.DecadenzaProposed += f.DecadenzaProposed
		}
		if t2 := sum.Total; t2.MarketDaysHeld != total.MarketDaysHeld || t2.MarketDaysCancelled != total.MarketDaysCancelled ||
			t2.DecadenzaProposed != total.DecadenzaProposed {
			t.Errorf("summary of %s: total %+v, want the sum of the regions %+v", day, t2, total)
		}
	}
}
