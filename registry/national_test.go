package registry

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestNationalLegs(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, "national")
	t.Run("summary", func(t *testing.T) {
		s, err := Summary(ctx, w.sh, lombardia, w.today, 0)
		if err != nil {
			t.Fatal(err)
		}
		want := RegionSummary{MarketsActive: 3, Stalls: map[string]int64{"LIBERO": 2, "OCCUPATO": 1, "RISERVATO": 1},
			Concessions: map[string]int64{"ATTIVA": 2, "SOSPESA": 0, "REVOCATA": 0, "DECADUTA": 0, "CESSATA": 0, "SCADUTA": 0},
			Vendors:     3, PartiteIVA: []int64{743110157, 1234567897, 12345678903}, PresencesDay: 2, PresencesMonth: 2,
			MarketDaysHeld: 1}
		if s.VendorsVersion == 0 {
			t.Error("Summary: no version of the set of partite IVA")
		}
		want.VendorsVersion = s.VendorsVersion
		if !reflect.DeepEqual(s, want) {
			t.Errorf("Summary = %+v, want %+v", s, want)
		}
		again, err := Summary(ctx, w.sh, lombardia, w.today.AddDate(0, 0, 1), s.VendorsVersion)
		if err != nil || !again.VendorsUnchanged || again.PartiteIVA != nil || again.PresencesDay != 0 {
			t.Errorf("Summary with the known version, the next day = %+v, %v; want the set unchanged and no presences", again, err)
		}
	})
	t.Run("presences by day and month", func(t *testing.T) {
		days, err := PresencesByDay(ctx, w.sh, lombardia, w.today.AddDate(0, 0, -3), w.today)
		want := []DayCount{{w.today.Format(time.DateOnly), 2}}
		if err != nil || !slices.Equal(days, want) {
			t.Errorf("PresencesByDay = %v, %v, want %v", days, err, want)
		}
		months, err := PresencesByMonth(ctx, w.sh, lombardia, w.today.AddDate(0, -2, 0), w.today)
		want = []DayCount{{w.today.Format("2006-01"), 2}}
		if err != nil || !slices.Equal(months, want) {
			t.Errorf("PresencesByMonth = %v, %v, want %v", months, err, want)
		}
	})
	t.Run("expiring", func(t *testing.T) {
		from, until := w.today, w.today.AddDate(0, 0, 60)
		first, total, err := ExpiringConcessions(ctx, w.sh, lombardia, from, until, "", 1)
		if err != nil || total != 2 || len(first) != 1 || first[0].ID != w.concessions[0].ID {
			t.Fatalf("ExpiringConcessions = %v (total %d), %v; want the first of 2", first, total, err)
		}
		next, total, err := ExpiringConcessions(ctx, w.sh, lombardia, from, until, ExpiringCursor(first[0]), 5)
		if err != nil || total != 2 || len(next) != 1 || next[0].ID != w.concessions[1].ID {
			t.Errorf("ExpiringConcessions after the first = %v (total %d), %v; want the second", next, total, err)
		}
		few, total, err := ExpiringConcessions(ctx, w.sh, lombardia, from, w.today.AddDate(0, 0, 20), "", 5)
		if err != nil || total != 1 || len(few) != 1 {
			t.Errorf("ExpiringConcessions within 20 days = %v (total %d), %v; want one", few, total, err)
		}
		// A title extended by law expires at its extension, not at its
		// printed date: its printed end moved to yesterday, the second concession still
		// expires within 20 days through its extension, first.
		second := w.concessions[1].ID
		if _, err := w.admin.Exec(ctx, `UPDATE concessions SET valid_from = least(valid_from, $2::date - 1), valid_to = $2, extended_to = $3 WHERE id = $1`,
			second, w.today.AddDate(0, 0, -1), w.today.AddDate(0, 0, 5)); err != nil {
			t.Fatal(err)
		}
		extended, total, err := ExpiringConcessions(ctx, w.sh, lombardia, from, w.today.AddDate(0, 0, 20), "", 5)
		if err != nil || total != 2 || len(extended) != 2 || extended[0].ID != second || extended[0].EffectiveTo != w.today.AddDate(0, 0, 5).Format(time.DateOnly) {
			t.Errorf("ExpiringConcessions within 20 days, the second extended to 5 days = %+v (total %d), %v; want it first of two", extended, total, err)
		}
		if _, err := w.admin.Exec(ctx, `UPDATE concessions SET valid_from = $2, valid_to = $3, extended_to = NULL WHERE id = $1`,
			second, w.concessions[1].ValidFrom, w.concessions[1].ValidTo); err != nil {
			t.Fatal(err)
		}
		for _, cur := range []string{"x", NationalMarketsCursor(w.markets["MI001"]), cursor{List: expiringList, Text: "not a date", ID: 1}.encode()} {
			if _, _, err := ExpiringConcessions(ctx, w.sh, lombardia, from, until, cur, 5); !errors.Is(err, ErrBadCursor) {
				t.Errorf("ExpiringConcessions with cursor %q: %v, want ErrBadCursor", cur, err)
			}
		}
	})
	t.Run("markets by name", func(t *testing.T) {
		// Byte order: upper case before lower case.
		want := []int64{w.markets["MI001"].ID, w.markets["MI003"].ID, w.markets["BG001"].ID, w.markets["MI002"].ID}
		// Province and Comune of the filter name a region: ignored.
		f := MarketFilter{Province: "016", Comune: "016024"}
		first, total, err := MarketsByName(ctx, w.sh, lombardia, f, "", 3)
		if err != nil || total != 4 || !slices.Equal(ids(first, marketID), want[:3]) {
			t.Fatalf("MarketsByName = %v (total %d), %v; want %v", ids(first, marketID), total, err, want[:3])
		}
		next, total, err := MarketsByName(ctx, w.sh, lombardia, f, NationalMarketsCursor(first[2]), 3)
		if err != nil || total != 4 || !slices.Equal(ids(next, marketID), want[3:]) {
			t.Errorf("MarketsByName after %d = %v (total %d), %v; want %v", first[2].ID, ids(next, marketID), total, err, want[3:])
		}
		active, total, err := MarketsByName(ctx, w.sh, lombardia, MarketFilter{Status: "ACTIVE", Q: "borgo"}, "", 3)
		if err != nil || total != 1 || !slices.Equal(ids(active, marketID), []int64{w.markets["BG001"].ID}) {
			t.Errorf("MarketsByName active, borgo = %v (total %d), %v", ids(active, marketID), total, err)
		}
		if _, _, err := MarketsByName(ctx, w.sh, lombardia, f, marketList.spec.cursor(first[0]).encode(), 3); !errors.Is(err, ErrBadCursor) {
			t.Errorf("MarketsByName with a regional cursor: %v, want ErrBadCursor", err)
		}
	})
	t.Run("vendor in region", func(t *testing.T) {
		v, err := VendorInRegion(ctx, w.sh, lombardia, "01234567897", w.today.AddDate(0, 0, -1))
		if err != nil || !reflect.DeepEqual(v.Vendor, w.vendors["Alfa Srl"]) || v.ConcessionsTotal != 1 || len(v.Concessions) != 1 || v.PresencesThisYear != 1 {
			t.Errorf("VendorInRegion(03) = %+v, %v", v, err)
		}
		v, err = VendorInRegion(ctx, w.sh, lazio, "01234567897", w.today.AddDate(0, 0, -1))
		if err != nil || !reflect.DeepEqual(v.Vendor, w.vendors["Alfa Srl Roma"]) || v.ConcessionsTotal != 0 || len(v.Concessions) != 0 || v.PresencesThisYear != 0 {
			t.Errorf("VendorInRegion(12) = %+v, %v", v, err)
		}
		if _, err := VendorInRegion(ctx, w.sh, lazio, "12345678903", w.today); !errors.Is(err, ErrNotFound) {
			t.Errorf("VendorInRegion of a vendor the region lacks: %v, want ErrNotFound", err)
		}
	})
}

// TestSummaryReadsRollups checks that the summary counts a region's
// active markets and recorded market days from the rollups of migration
// 00020 (region_status_counts, market_day_counts), so that its cost does not
// grow with the region's markets: its plan reads neither markets nor
// market_days by region alone (market_days only for the day's markets with
// presences, and those by an index-only scan, migration 00023).
// TestMarketDayCountsAsHeldDays and TestSummary check the figures.
func TestSummaryReadsRollups(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, "summary_markets")
	if _, err := w.admin.Exec(ctx, `INSERT INTO markets (id, region_id, code, name, province, comune, comune_name)
		SELECT dms.next_id('markets', 3::smallint), 3, 'XX' || lpad(g::text, 4, '0'), 'Mercato ' || g, '015', '015146', 'Milano'
		FROM generate_series(1, 2000) g`); err != nil {
		t.Fatal(err)
	}
	// A month of market days held for each, with their presences' daily
	// rollup rows (written directly: the plan is what is checked here).
	// The leg joins the day's rollup rows to the day's records, which it
	// reads from an index that holds their market (migration 00023),
	// without visiting the table. VACUUM marks the pages all-visible, as
	// autovacuum leaves past days; it can only once the inserts' commit
	// is flushed (the test server commits asynchronously), hence the
	// synchronous commit.
	if _, err := w.admin.Exec(ctx, `SET synchronous_commit = on`); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{`INSERT INTO market_days (market_id, region_id, comune, date, status, updated_by)
		SELECT m.id, m.region_id, m.comune, $1::date - d, 'HELD', 'test' FROM markets m, generate_series(0, 29) d
		WHERE m.code LIKE 'XX%'`, `INSERT INTO presence_daily (region_id, market_id, comune, date, kind, n)
		SELECT m.region_id, m.id, m.comune, $1::date - d, 'CONCESSION', 10 FROM markets m, generate_series(0, 29) d
		WHERE m.code LIKE 'XX%'`} {
		if _, err := w.admin.Exec(ctx, stmt, w.today); err != nil {
			t.Fatal(err)
		}
	}
	for _, stmt := range []string{`ANALYZE markets`, `VACUUM (ANALYZE) market_days, presence_daily`} {
		if _, err := w.admin.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	a := pgx.NamedArgs{"region": int16(3), "known_version": int64(0), "day": w.today, "month": w.today}
	text := explain(t, w, `SELECT set_config('plan_cache_mode', 'force_generic_plan', true)`, summarySQL, a)
	for _, want := range []string{"on market_day_counts", "on region_status_counts", "Index Only Scan using market_days_region_date on market_days"} {
		if !strings.Contains(text, want) {
			t.Errorf("the summary's plan does not read %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, " on markets ") || strings.Contains(text, "markets_region_") {
		t.Errorf("the summary's plan reads markets:\n%s", text)
	}
}
