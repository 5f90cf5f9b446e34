package seed

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"testing"
	"time"

	"github.com/dmshub/dmsrouter/regions"
)

func TestLargestRemainder(t *testing.T) {
	for _, total := range []int{0, 1, 7, 200, 8000, 12345} {
		parts := largestRemainder(total, marketShares[1:])
		sum := 0
		for i, p := range parts {
			sum += p
			exact := float64(total) * float64(marketShares[i+1]) / 1000
			if float64(p) < exact-1 || float64(p) > exact+1 {
				t.Errorf("largestRemainder(%d)[%d] = %d, want about %.1f", total, i, p, exact)
			}
		}
		if sum != total {
			t.Errorf("largestRemainder(%d) sums to %d", total, sum)
		}
	}
	if got := largestRemainder(8000, marketShares[1:]); got[2] != 1360 || got[1] != 16 {
		t.Errorf("Lombardia, Valle d'Aosta = %d, %d markets of 8000, want 1360, 16", got[2], got[1])
	}
}

func TestDays(t *testing.T) {
	if d := dayOf(2000, 1, 1); d != 0 || d.weekday() != 6 {
		t.Errorf("2000-01-01 = day %d, weekday %d, want 0, 6 (Saturday)", d, d.weekday())
	}
	for _, tt := range []struct {
		y       int
		m       time.Month
		d, want int
	}{
		{2026, 5, 4, 1}, {2026, 5, 10, 7}, {1999, 12, 31, 5}, {1999, 12, 26, 7},
	} {
		if got := dayOf(tt.y, tt.m, tt.d).weekday(); got != tt.want {
			t.Errorf("weekday of %d-%02d-%02d = %d, want %d", tt.y, tt.m, tt.d, got, tt.want)
		}
	}
	if got, want := dayOf(2016, 2, 29).addYears(10), dayOf(2026, 2, 28); got != want {
		t.Errorf("2016-02-29 + 10 years = %s, want 2026-02-28", got.time().Format(time.DateOnly))
	}
	if extensionInForce != dayOf(2023, 12, 31) || extensionUntil != dayOf(2025, 12, 31) {
		t.Errorf("extensionInForce, extensionUntil = %s, %s, want 2023-12-31, 2025-12-31",
			extensionInForce.time().Format(time.DateOnly), extensionUntil.time().Format(time.DateOnly))
	}
	if got, want := dayOf(2020, 3, 1).addYears(-10), dayOf(2010, 3, 1); got != want {
		t.Errorf("2020-03-01 - 10 years = %s", got.time().Format(time.DateOnly))
	}
}

func TestWindow(t *testing.T) {
	wed := dayOf(2026, 5, 6)
	first, last := window([]int16{3}, wed+2, 3) // Wednesdays up to Friday
	if last != wed || first != wed-14 {
		t.Errorf("window(Wednesdays, 3) = %s..%s, want 2026-04-22..2026-05-06",
			first.time().Format(time.DateOnly), last.time().Format(time.DateOnly))
	}
	if first, last := window([]int16{3}, wed, 0); first <= last {
		t.Errorf("window(0 days) is not empty")
	}
}

// TestGeneration checks, without a database, the shape of a national
// generation and that it is a pure function of the options.
func TestGeneration(t *testing.T) {
	rome, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Markets: 800, Days: 20, Seed: 9}
	today := dayOf(2026, 5, 4)
	gen := func() (*generator, string) {
		g := newGenerator(newPlan(opts, today), rome)
		g.generate()
		h := sha256.New()
		for _, r := range regions.All() {
			rd := g.regions[r.Code.Num()]
			for _, tb := range tables {
				fill := tb.source(context.Background(), g, rd, func(int64, int64) {})
				h.Write(drain(t, fill))
			}
			for pg := newPresenceGen(context.Background(), g, rd, func(int64, int64) {}); !pg.done; pg.nextMonth() {
				h.Write(drain(t, pg.fill))
			}
		}
		return g, hex.EncodeToString(h.Sum(nil))
	}
	g, first := gen()
	if _, again := gen(); again != first {
		t.Errorf("two generations with the same options differ")
	}

	var markets, stalls, concessions, presences, marketDays int64
	codes := map[string]bool{}
	for n := 1; n <= 20; n++ {
		rd := g.regions[n]
		markets += int64(len(rd.markets))
		stalls += int64(len(rd.stalls))
		concessions += int64(len(rd.concessions))
		presences += rd.presences
		marketDays += rd.marketDays
		for _, m := range rd.markets {
			if codes[m.code] {
				t.Errorf("market code %s twice", m.code)
			}
			codes[m.code] = true
			if m.nStalls < 5 || m.nStalls > 60 {
				t.Errorf("market %s has %d stalls", m.code, m.nStalls)
			}
			if !slices.Contains(regions.Provinces(rd.code), m.province) {
				t.Errorf("market %s in province %s of another region", m.code, m.province)
			}
		}
		var daily int64
		for _, c := range rd.daily {
			daily += int64(c.concession + c.spunta)
		}
		if daily != rd.presences {
			t.Errorf("region %02d: daily counts sum to %d, presences %d", n, daily, rd.presences)
		}
	}
	// After 2025-12-31 the titles the law extended have expired: SCADUTA,
	// each carrying its extension; no live title ends before today.
	extended := 0
	for n := 1; n <= 20; n++ {
		for _, c := range g.regions[n].concessions {
			live := c.status == concAttiva || c.status == concSospesa
			if live && c.end() < today || c.status == concScaduta && c.end() >= today {
				t.Errorf("region %02d: %s concession ends %s, today is %s", n, concStatuses[c.status],
					c.end().time().Format(time.DateOnly), today.time().Format(time.DateOnly))
			}
			if c.extendedTo != noDay {
				extended++
				if c.status != concScaduta || c.extendedTo != extensionUntil {
					t.Errorf("region %02d: %s concession extended to %s", n, concStatuses[c.status], c.extendedTo.time().Format(time.DateOnly))
				}
			}
		}
	}
	if extended == 0 {
		t.Errorf("no expired title carries the legal extension")
	}
	if markets != int64(opts.Markets) {
		t.Errorf("markets = %d, want %d", markets, opts.Markets)
	}
	per := func(n int64) float64 { return float64(n) / float64(markets) }
	if s := per(stalls); s < 14 || s > 16 {
		t.Errorf("stalls per market = %.2f, want about 15", s)
	}
	if c := per(concessions); c < 11.5 || c > 13.5 {
		t.Errorf("concessions per market = %.2f, want about 12.5", c)
	}
	if p := float64(presences) / float64(marketDays); p < 9 || p > 11.5 {
		t.Errorf("presences per market day = %.2f, want about 10", p)
	}
}

// drain returns everything fill writes.
func drain(tb testing.TB, fill func(*encoder) (bool, error)) []byte {
	tb.Helper()
	var out []byte
	e := &encoder{}
	for {
		e.buf = e.buf[:0]
		more, err := fill(e)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, e.buf...)
		if !more {
			return out
		}
	}
}

func TestProvinceTable(t *testing.T) {
	for _, r := range regions.All() {
		for _, p := range regions.Provinces(r.Code) {
			info, ok := provinceTable[p]
			if !ok {
				t.Errorf("province %s has no row in provinceTable", p)
				continue
			}
			if _, err := regions.LookupComune(p + pad3d(info.serial)); err != nil {
				t.Errorf("capoluogo of province %s: %v", p, err)
			}
		}
	}
}

// TestMarketComuni checks that markets lie in real comuni, named as in the
// ISTAT list, drawn by population: the biggest city of a region holds more of
// its markets than any other comune.
func TestMarketComuni(t *testing.T) {
	p := newPlan(Options{Markets: 2000, Days: 0, Seed: 3}, dayOf(2026, 5, 4))
	for _, tt := range []struct {
		region regions.Code
		city   string
	}{
		{"03", "015146"}, // Milano
		{"12", "058091"}, // Roma
		{"15", "063049"}, // Napoli
		{"19", "082053"}, // Palermo
	} {
		t.Run(string(tt.region), func(t *testing.T) {
			rd := p.generateRegion(tt.region, time.UTC)
			perComune := map[string]int{}
			for _, m := range rd.markets {
				c, err := regions.LookupComune(m.comune)
				if err != nil || c.Name != m.comuneName || c.Region != tt.region || c.Province() != m.province {
					t.Errorf("market %s in comune %s %q, province %s: LookupComune = %+v, %v", m.code, m.comune, m.comuneName, m.province, c, err)
				}
				perComune[m.comune]++
			}
			for c, n := range perComune {
				if c != tt.city && n >= perComune[tt.city] {
					t.Errorf("comune %s holds %d markets, %s only %d", c, n, tt.city, perComune[tt.city])
				}
			}
			if len(perComune) < 5 {
				t.Errorf("%d markets in only %d comuni", len(rd.markets), len(perComune))
			}
		})
	}
}
