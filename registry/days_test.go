package registry

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// dayBook is the worked example of the market-day tests, as a comune
// office would keep it: the weekly Monday market "Mercato del Lunedì" of
// Milano, held on eight Mondays (m[0] to m[7]) of one year, the third one
// (m[2]) cancelled for bad weather after two vendors had checked in; its
// holder Rossi (stall 1) present on the first two Mondays only, and the
// spuntista Verdi present every Monday, so every Monday but m[2] was held.
type dayBook struct {
	*world
	market        int64
	year          int
	m             []time.Time
	rossi, verdi  int64
	bianchi, neri int64 // spuntisti of the last Monday
	conc          int64 // Rossi's concession
	stall         int64 // stall 1
}

func newDayBook(t *testing.T, name string) *dayBook {
	t.Helper()
	ctx := context.Background()
	d := &dayBook{world: newWorld(t, name)}
	// Eight Mondays of one calendar year, all before today and within the
	// presences' stored range (13 months back): the year's first ones once
	// it is a quarter gone, else the last ones of the year before.
	first := time.Date(d.today.Year(), 1, 1, 0, 0, 0, 0, time.UTC)
	if d.today.YearDay() < 90 {
		first = time.Date(d.today.Year()-1, 10, 1, 0, 0, 0, 0, time.UTC)
	}
	for first.Weekday() != time.Monday {
		first = first.AddDate(0, 0, 1)
	}
	for i := range 8 {
		d.m = append(d.m, first.AddDate(0, 0, 7*i))
	}
	d.year = first.Year()
	d.market = must(CreateMarket(ctx, d.sh, lombardia, admin, NewMarket{Code: "MI010", Name: "Mercato del Lunedì",
		Comune: "015146", ComuneName: "Milano", Days: []int16{1}, Status: "ACTIVE", CostPerSqm: 1}))(t).Value.ID
	for n := range 3 {
		s := must(CreateStall(ctx, d.sh, lombardia, admin, d.market, NewStall{Number: int32(n + 1), Type: "FISSO", Status: "LIBERO", AreaMq: 10}))(t).Value
		if n == 0 {
			d.stall = s.ID
		}
	}
	vendor := func(piva, name string) int64 {
		return must(CreateVendor(ctx, d.sh, lombardia, admin, NewVendor{PartitaIVA: piva, CodiceFiscale: piva,
			Denominazione: name, Comune: "015146", Status: "ATTIVA"}))(t).Value.ID
	}
	d.rossi, d.verdi = vendor("10000000001", "Rossi Abbigliamento"), vendor("10000000002", "Verdi Casalinghi")
	d.bianchi, d.neri = vendor("10000000003", "Bianchi Frutta"), vendor("10000000004", "Neri Fiori")
	d.conc = must(CreateConcession(ctx, d.sh, lombardia, admin, NewConcession{MarketID: d.market, StallID: d.stall, VendorID: d.rossi,
		ValidFrom: time.Date(d.year, 1, 1, 0, 0, 0, 0, time.UTC), ValidTo: time.Date(d.year+9, 12, 31, 0, 0, 0, 0, time.UTC)}))(t).Value.ID
	var rows []PresenceRow
	for i, day := range d.m {
		rows = append(rows, PresenceRow{MarketID: d.market, VendorID: d.verdi, Date: day, Kind: "SPUNTA"})
		if i <= 2 {
			rows = append(rows, PresenceRow{MarketID: d.market, VendorID: d.rossi, Date: day, Kind: "CONCESSION"})
		}
	}
	must(IngestPresences(ctx, d.sh, lombardia, admin, rows, d.today))(t)
	must(SetMarketDay(ctx, d.sh, milano, admin, d.market, d.m[2], "CANCELLED", "maltempo: allerta meteo arancione"))(t)
	return d
}

// at is hour:minute of day in Rome.
func at(day time.Time, hour, minute int) time.Time {
	rome, _ := time.LoadLocation("Europe/Rome")
	return time.Date(day.Year(), day.Month(), day.Day(), hour, minute, 0, 0, rome)
}

func TestMarketDays(t *testing.T) {
	ctx := context.Background()
	d := newDayBook(t, "days")
	var conflict *ConflictError

	t.Run("a cancelled day takes no check-in", func(t *testing.T) {
		_, err := CheckInVendor(ctx, d.sh, lombardia, admin, CheckIn{MarketID: d.market, VendorID: d.bianchi, Kind: "SPUNTA",
			Date: d.m[2], CheckinAt: at(d.m[2], 9, 0), Given: true})
		if !errors.As(err, &conflict) || conflict.Rule != "market-day-cancelled" {
			t.Errorf("CheckInVendor on the cancelled %s = %v, want a conflict with rule market-day-cancelled", d.m[2].Format(time.DateOnly), err)
		}
		_, err = IngestPresences(ctx, d.sh, lombardia, admin, []PresenceRow{
			{MarketID: d.market, VendorID: d.bianchi, Date: d.m[1], Kind: "SPUNTA"},
			{MarketID: d.market, VendorID: d.neri, Date: d.m[2], Kind: "SPUNTA"},
		}, d.today)
		var rejected *RejectedError
		if !errors.As(err, &rejected) || len(rejected.Rows) != 1 || rejected.Rows[0].Row != 1 ||
			rejected.Rows[0].Rule != "market-day-cancelled" || rejected.Rows[0].Field != "date" {
			t.Fatalf("IngestPresences with a row on the cancelled day = %v (%+v), want row 1 refused by market-day-cancelled", err, rejected)
		}
		var n int
		if err := d.admin.QueryRow(ctx, `SELECT count(*) FROM vendor_presences WHERE vendor_id = $1`, d.bianchi).Scan(&n); err != nil || n != 0 {
			t.Errorf("presences of the refused batch = %d, %v; want none (all or nothing)", n, err)
		}
	})

	t.Run("the days as the office sees them", func(t *testing.T) {
		days, err := ListMarketDays(ctx, d.sh, milano, d.market, d.m[0], d.m[7])
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, md := range days {
			got = append(got, md.Date+" "+md.Status)
		}
		var want []string
		for i, m := range d.m {
			st := "HELD"
			if i == 2 {
				st = "CANCELLED"
			}
			want = append(want, m.Format(time.DateOnly)+" "+st)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("ListMarketDays = %v, want %v", got, want)
		}
		if c := days[2]; !c.Recorded || c.Reason != "maltempo: allerta meteo arancione" || c.ConcessionPresences != 1 || c.SpuntaPresences != 1 {
			t.Errorf("the cancelled day = %+v, want recorded with its reason and its two presences kept", c)
		}
		if h := days[3]; h.Recorded || h.ConcessionPresences != 0 || h.SpuntaPresences != 1 || h.CallAt != nil {
			t.Errorf("a day held by its presences = %+v, want not recorded, one spunta presence", h)
		}
		if _, err := ListMarketDays(ctx, d.sh, milano, d.markets["BG001"].ID, d.m[0], d.m[7]); !errors.Is(err, ErrNotFound) {
			t.Errorf("ListMarketDays of a market outside the scope: %v, want ErrNotFound", err)
		}
	})

	t.Run("a late spuntista", func(t *testing.T) {
		last := d.m[7]
		// Bianchi checks in at 08:15; the office records at 08:30 the
		// call it made at 08:00, then Neri comes at 08:40.
		early := must(CheckInVendor(ctx, d.sh, lombardia, admin, CheckIn{MarketID: d.market, VendorID: d.bianchi, Kind: "SPUNTA",
			Date: last, CheckinAt: at(last, 8, 15), Given: true}))(t).Value
		if early.Outcome != nil {
			t.Errorf("a check-in before any call has outcome %q, want none", *early.Outcome)
		}
		day := must(RecordAppello(ctx, d.sh, milano, admin, d.market, last, at(last, 8, 0)))(t)
		if !day.Created || day.Value.CallAt == nil || !day.Value.CallAt.Equal(at(last, 8, 0)) || day.Value.Status != "HELD" {
			t.Errorf("RecordAppello = %+v, want the call at 08:00 on a held day", day)
		}
		late := must(CheckInVendor(ctx, d.sh, lombardia, admin, CheckIn{MarketID: d.market, VendorID: d.neri, Kind: "SPUNTA",
			Date: last, CheckinAt: at(last, 8, 40), Given: true}))(t).Value
		if late.Outcome == nil || *late.Outcome != "LATE" {
			t.Errorf("a check-in after the call has outcome %v, want LATE", late.Outcome)
		}
		l := must(ListPresences(ctx, d.sh, lombardia, d.market, last, Page{Limit: 10}))(t)
		outcomes := map[int64]string{}
		for _, p := range l.Items {
			outcomes[p.VendorID] = "-"
			if p.Outcome != nil {
				outcomes[p.VendorID] = *p.Outcome
			}
		}
		if outcomes[d.verdi] != "-" || outcomes[d.bianchi] != "LATE" || outcomes[d.neri] != "LATE" {
			t.Errorf("outcomes of %s = %v, want Verdi (midnight) none, Bianchi and Neri LATE", last.Format(time.DateOnly), outcomes)
		}
		_, err := RecordAppello(ctx, d.sh, milano, admin, d.market, last, at(last, 9, 0))
		if !errors.As(err, &conflict) || conflict.Rule != "call-made" {
			t.Errorf("a second call: %v, want rule call-made", err)
		}
		_, err = RecordAppello(ctx, d.sh, milano, admin, d.market, d.m[2], at(d.m[2], 8, 0))
		if !errors.As(err, &conflict) || conflict.Rule != "market-day-cancelled" {
			t.Errorf("the call of a cancelled day: %v, want rule market-day-cancelled", err)
		}
	})

	t.Run("a legal extension keeps the holder checking in", func(t *testing.T) {
		// Gamma's title printed to the day before m[6], extended by law.
		gamma := must(CreateVendor(ctx, d.sh, lombardia, admin, NewVendor{PartitaIVA: "10000000005", CodiceFiscale: "10000000005",
			Denominazione: "Gamma Pelletterie", Comune: "015146", Status: "ATTIVA"}))(t).Value.ID
		stalls := must(ListStalls(ctx, d.sh, lombardia, d.market, StallFilter{}, Page{Limit: 10}))(t).Items
		c := must(CreateConcession(ctx, d.sh, lombardia, admin, NewConcession{MarketID: d.market, StallID: stalls[1].ID, VendorID: gamma,
			ValidFrom: d.m[0], ValidTo: d.m[6].AddDate(0, 0, -1)}))(t).Value
		in := CheckIn{MarketID: d.market, VendorID: gamma, Kind: "CONCESSION", Date: d.m[6], CheckinAt: at(d.m[6], 7, 0), Given: true}
		if _, err := CheckInVendor(ctx, d.sh, lombardia, admin, in); !errors.As(err, &conflict) {
			t.Fatalf("a check-in after valid_to without extension: %v, want a conflict", err)
		}
		if _, err := d.admin.Exec(ctx, `UPDATE concessions SET extended_to = $1 WHERE id = $2`, d.m[7], c.ID); err != nil {
			t.Fatal(err)
		}
		p, err := CheckInVendor(ctx, d.sh, lombardia, admin, in)
		if err != nil || p.Value.StallID == nil || *p.Value.StallID != stalls[1].ID {
			t.Errorf("a check-in within the legal extension = %+v, %v; want the presence on the title's stall", p.Value, err)
		}
	})
}

// TestMarketDayCountsAsHeldDays checks the region-wide counts of market
// days (MarketDays, and Summary's held, cancelled and presences of a day),
// which count the records from the market_day_counts rollup and add the
// days with presences and no record, against
// dms.held_days market by market: a day held by presences alone, one
// cancelled with presences kept, one recorded HELD without presences, and
// one whose rollup row counts zero presences.
func TestMarketDayCountsAsHeldDays(t *testing.T) {
	ctx := context.Background()
	d := newDayBook(t, "daycounts")
	recorded, zero := d.m[7].AddDate(0, 0, 7), d.m[7].AddDate(0, 0, 14)
	must(SetMarketDay(ctx, d.sh, milano, admin, d.market, recorded, "HELD", ""))(t)
	if _, err := d.admin.Exec(ctx, `INSERT INTO presence_daily (region_id, market_id, comune, date, kind, n)
		VALUES (3, $1, '015146', $2, 'SPUNTA', 0)`, d.market, zero); err != nil {
		t.Fatal(err)
	}
	// want returns the counts of region 03 from first to last as
	// dms.held_days and the tables themselves give them.
	want := func(first, last time.Time) (held, cancelled, presences int64) {
		t.Helper()
		err := d.admin.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM markets m, dms.held_days(m.id, $1, $2) WHERE m.region_id = 3),
			(SELECT count(*) FROM market_days d WHERE d.region_id = 3 AND d.date BETWEEN $1 AND $2 AND d.status = 'CANCELLED'),
			(SELECT coalesce(sum(p.n), 0) FROM presence_daily p WHERE p.region_id = 3 AND p.date BETWEEN $1 AND $2)`,
			first, last).Scan(&held, &cancelled, &presences)
		if err != nil {
			t.Fatal(err)
		}
		return held, cancelled, presences
	}
	for _, day := range append(slices.Clone(d.m), recorded, zero) {
		s, err := Summary(ctx, d.sh, lombardia, day, 0)
		if err != nil {
			t.Fatal(err)
		}
		held, cancelled, presences := want(day, day)
		if s.MarketDaysHeld != held || s.MarketDaysCancelled != cancelled || s.PresencesDay != presences {
			t.Errorf("Summary(%s) held, cancelled, presences = %d, %d, %d; want %d, %d, %d", day.Format(time.DateOnly),
				s.MarketDaysHeld, s.MarketDaysCancelled, s.PresencesDay, held, cancelled, presences)
		}
	}
	first, last := d.m[0], zero
	got, err := MarketDays(ctx, d.sh, lombardia, first, last)
	if err != nil {
		t.Fatal(err)
	}
	if held, cancelled, _ := want(first, last); got != (MarketDayCounts{Held: held, Cancelled: cancelled}) || held == 0 || cancelled == 0 {
		t.Errorf("MarketDays(%s, %s) = %+v, want held %d, cancelled %d (neither zero)", first.Format(time.DateOnly), last.Format(time.DateOnly), got, held, cancelled)
	}
}
