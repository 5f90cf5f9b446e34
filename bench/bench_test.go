package bench

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		var out []time.Duration
		for _, v := range n {
			out = append(out, time.Duration(v)*time.Millisecond)
		}
		return out
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	for _, tc := range []struct {
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{nil, 50, 0},
		{ms(7), 50, 7 * time.Millisecond},
		{ms(7), 99, 7 * time.Millisecond},
		{ms(1, 2), 50, 1 * time.Millisecond},
		{ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{ms(1, 2, 3, 4), 51, 3 * time.Millisecond},
		{ms(1, 2, 3, 4), 100, 4 * time.Millisecond},
		{hundred, 50, 50 * time.Millisecond},
		{hundred, 95, 95 * time.Millisecond},
		{hundred, 99, 99 * time.Millisecond},
		{hundred, 99.5, 100 * time.Millisecond},
		{hundred, 0, 1 * time.Millisecond},
	} {
		if got := Percentile(tc.sorted, tc.p); got != tc.want {
			t.Errorf("Percentile(%d samples, %v) = %v, want %v", len(tc.sorted), tc.p, got, tc.want)
		}
	}
}

func TestSpread(t *testing.T) {
	all := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	for _, tc := range []struct {
		n    int
		want string
	}{
		{20, "[0 1 2 3 4 5 6 7 8 9]"},
		{10, "[0 1 2 3 4 5 6 7 8 9]"},
		{5, "[0 2 4 6 8]"},
		{3, "[0 3 6]"},
		{1, "[0]"},
	} {
		if got := fmt.Sprint(spread(all, tc.n)); got != tc.want {
			t.Errorf("spread(0..9, %d) = %s, want %s", tc.n, got, tc.want)
		}
	}
}

func TestClassWeights(t *testing.T) {
	sum := 0
	for _, c := range Classes() {
		sum += c.Weight
	}
	if len(Classes()) != numClasses || sum != 100 {
		t.Errorf("%d classes with weights summing to %d, want %d and 100", len(Classes()), sum, numClasses)
	}
}

// TestPresenceRows checks that the ingested rows respect the unique
// constraints of vendor_presences: one presence per (market, day, vendor)
// and per (market, day, stall).
func TestPresenceRows(t *testing.T) {
	var stalls []ingestStall
	for m := int64(1); m <= 4; m++ {
		for s := range 3 + int(m)*2 { // 5, 7, 9, 11 stalls
			stalls = append(stalls, ingestStall{ID: m*100 + int64(s), Market: m, Comune: "015146"})
		}
	}
	vendors := []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	first := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	rows, last, err := presenceRows("03", stalls, vendors, first, 100, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 100 {
		t.Fatalf("presenceRows made %d rows, want 100", len(rows))
	}
	// 32 stalls, 11 of them in a market with only 10 vendors to go round: 31 rows a day.
	if want := first.AddDate(0, 0, 3); !last.Equal(want) {
		t.Errorf("last day = %s, want %s", last.Format(time.DateOnly), want.Format(time.DateOnly))
	}
	byVendor, byStall := map[string]bool{}, map[string]bool{}
	for _, r := range rows {
		v := fmt.Sprint(r.market, r.date, r.vendor)
		s := fmt.Sprint(r.market, r.date, r.stall)
		if byVendor[v] || byStall[s] {
			t.Fatalf("row %+v repeats a (market, day, vendor) or (market, day, stall)", r)
		}
		byVendor[v], byStall[s] = true, true
		if r.region != 3 || r.date.Before(first) || r.date.After(last) || !r.checkout.After(r.checkin) {
			t.Fatalf("bad row %+v", r)
		}
	}
	if _, _, err := presenceRows("03", nil, vendors, first, 10, time.UTC); err == nil {
		t.Error("presenceRows without stalls = nil error, want an error")
	}
}

func TestInsertSQL(t *testing.T) {
	got := insertSQL(2)
	want := "INSERT INTO vendor_presences (id, region_id, market_id, comune, vendor_id, stall_id, date, kind, checkin_at, checkout_at) VALUES " +
		"(dms.next_id('vendor_presences', $1), $1, $2, $3, $4, $5, $6, 'CONCESSION', $7, $8), " +
		"(dms.next_id('vendor_presences', $9), $9, $10, $11, $12, $13, $14, 'CONCESSION', $15, $16)"
	if got != want {
		t.Errorf("insertSQL(2) =\n%s\nwant\n%s", got, want)
	}
	if n := strings.Count(insertSQL(1000), "$"); n != 9000 {
		t.Errorf("insertSQL(1000) has %d placeholders, want 9000 (8 parameters a row, the first twice)", n)
	}
}

func TestGroup(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 24000000: "24,000,000", -1234: "-1,234"} {
		if got := group(n); got != want {
			t.Errorf("group(%d) = %q, want %q", n, got, want)
		}
	}
}
