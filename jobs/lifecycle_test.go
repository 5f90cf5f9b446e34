package jobs

import (
	"context"
	"maps"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/registry"
)

// romeToday is today's date in Europe/Rome, at midnight UTC.
func romeToday(t *testing.T) time.Time {
	t.Helper()
	rome, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		t.Fatal(err)
	}
	y, m, d := time.Now().In(rome).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// TestLifecycle runs the lifecycle job on a comune's market as its office
// would see it. The Mercato di Piazza Vetra (Milano) has a regolamento
// that proposes decadenza above 2 unjustified absences a year; this year
// (in January: the last days of last year) it was held on D1..D5, was
// cancelled for snow on D6 and not held on D7 (nobody came, no record).
// The legal extension of the test extends the titles in force 400 days ago
// to 30 days from now.
//
//	concession  term (days from today)   on D1..D5                         expect
//	Alfa        -1000 .. -100            present D1..D5                    extended to +30, stays ATTIVA
//	Beta        -300 .. -5               -                                 SCADUTA (not in force 400 days ago)
//	Gamma       -1000 .. -100            -                                 SCADUTA: Delta holds the stall from -99
//	Delta       -99 .. +1000             present D1..D5                    nothing
//	Epsilon     -1000 .. +1000           present D1; justified D2          absent D3, D4, D5: 3 > 2, proposed
//	Zeta        -1000 .. +1000           present D1, D2; justified D3, D4  absent D5: 1, nothing
//	Eta         -1000 .. +1000           present D1..D4, proposed before   absent D5: 1, proposal withdrawn
//
// Nobody is present on D6 or D7, and the day in progress (today, held)
// does not count yet.
func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	cfg, m := deployment(t, "jobs_lifecycle")
	sh := m.Shards()[0]
	admin := pgtest.Connect(t, cfg.Shards[0].AdminDSN())
	today := romeToday(t)
	day := func(n int) time.Time { return today.AddDate(0, 0, n) }
	base := day(-1)
	if base.YearDay() < 8 {
		base = time.Date(today.Year()-1, 12, 31, 0, 0, 0, 0, time.UTC)
	}
	d := func(k int) time.Time { return base.AddDate(0, 0, 1-k) } // D1 = base, D2 the day before...

	sc := regions.Scope{Region: "03", User: "ufficio"}
	w := registry.Write{Actor: registry.Actor{User: "ufficio", Role: "admin_pa"}}
	mk := must(registry.CreateMarket(ctx, sh, sc, w, registry.NewMarket{Code: "MI101", Name: "Mercato di Piazza Vetra",
		Comune: "015146", ComuneName: "Milano", Days: []int16{1, 2, 3, 4, 5, 6, 7}, Status: "ACTIVE", CostPerSqm: 1}))(t).Value
	exec(t, admin, `INSERT INTO market_regolamenti (market_id, region_id, comune, absence_limit) VALUES ($1, 3, '015146', 2)`, mk.ID)
	names := []string{"Alfa", "Beta", "Gamma", "Delta", "Epsilon", "Zeta", "Eta"}
	pivas := []string{"01234567897", "12345678903", "00743110157", "02345678906", "03456789014", "04567890122", "05678901230"}
	stall := map[string]int64{}
	vendor := map[string]int64{}
	for i, n := range names {
		if n != "Delta" { // Delta takes Gamma's stall
			stall[n] = must(registry.CreateStall(ctx, sh, sc, w, mk.ID, registry.NewStall{Number: int32(i + 1), Type: "FISSO", Status: "LIBERO", AreaMq: 10}))(t).Value.ID
		}
		vendor[n] = must(registry.CreateVendor(ctx, sh, sc, w, registry.NewVendor{PartitaIVA: pivas[i], CodiceFiscale: pivas[i],
			Denominazione: n + " Srl", Comune: "015146", Status: "ATTIVA"}))(t).Value.ID
	}
	stall["Delta"] = stall["Gamma"]
	terms := map[string][2]int{"Alfa": {-1000, -100}, "Beta": {-300, -5}, "Gamma": {-1000, -100}, "Delta": {-99, 1000},
		"Epsilon": {-1000, 1000}, "Zeta": {-1000, 1000}, "Eta": {-1000, 1000}}
	conc := map[string]int64{}
	for _, n := range names {
		conc[n] = must(registry.CreateConcession(ctx, sh, sc, w, registry.NewConcession{MarketID: mk.ID, StallID: stall[n], VendorID: vendor[n],
			ValidFrom: day(terms[n][0]), ValidTo: day(terms[n][1])}))(t).Value.ID
	}
	exec(t, admin, `UPDATE concessions SET decadenza_proposed_on = $2, decadenza_absences = 3 WHERE id = $1`, conc["Eta"], day(-20))

	for k := 1; k <= 5; k++ {
		exec(t, admin, `INSERT INTO market_days (market_id, region_id, comune, date, status, updated_by) VALUES ($1, 3, '015146', $2, 'HELD', 'ufficio')`, mk.ID, d(k))
	}
	exec(t, admin, `INSERT INTO market_days (market_id, region_id, comune, date, status, updated_by) VALUES ($1, 3, '015146', $2, 'HELD', 'ufficio')`, mk.ID, today)
	exec(t, admin, `INSERT INTO market_days (market_id, region_id, comune, date, status, reason, updated_by) VALUES ($1, 3, '015146', $2, 'CANCELLED', 'neve', 'ufficio')`, mk.ID, d(6))
	present := map[string][]int{"Alfa": {1, 2, 3, 4, 5}, "Delta": {1, 2, 3, 4, 5}, "Epsilon": {1}, "Zeta": {1, 2}, "Eta": {1, 2, 3, 4}}
	for n, days := range present {
		for _, k := range days {
			exec(t, admin, `INSERT INTO vendor_presences (id, region_id, market_id, comune, vendor_id, stall_id, date, kind, checkin_at)
				VALUES (dms.next_id('vendor_presences', 3::smallint), 3, $1, '015146', $2, $3, $4, 'CONCESSION', $4::date + time '07:30')`,
				mk.ID, vendor[n], stall[n], d(k))
		}
	}
	justify := func(n string, k int, reason string) {
		t.Helper()
		exec(t, admin, `INSERT INTO absence_justifications (concession_id, date, region_id, market_id, comune, reason, recorded_by)
			VALUES ($1, $2, 3, $3, '015146', $4, 'ufficio')`, conc[n], d(k), mk.ID, reason)
	}
	justify("Epsilon", 2, "MALATTIA")
	justify("Zeta", 3, "MALATTIA")
	justify("Zeta", 4, "GRAVIDANZA")

	job := &Lifecycle{Shards: m.Shards, Extensions: []Extension{{InForceOn: day(-400), Until: day(30)}}}
	type state struct {
		Status     string
		ExtendedTo *time.Time
		Proposed   *time.Time
		Absences   *int
	}
	read := func() map[string]state {
		t.Helper()
		out := map[string]state{}
		for _, n := range names {
			var s state
			if err := admin.QueryRow(ctx, `SELECT status, extended_to, decadenza_proposed_on, decadenza_absences FROM concessions WHERE id = $1`,
				conc[n]).Scan(&s.Status, &s.ExtendedTo, &s.Proposed, &s.Absences); err != nil {
				t.Fatal(err)
			}
			out[n] = s
		}
		return out
	}
	check := func(run string, rs []Result, want map[string]int64) {
		t.Helper()
		if len(rs) != 1 || rs[0].Err != nil || rs[0].Skipped {
			t.Fatalf("%s: RunOnce = %+v, want the shard done", run, rs)
		}
		if !maps.Equal(rs[0].Counts, want) {
			t.Errorf("%s: counts = %v, want %v", run, rs[0].Counts, want)
		}
	}

	check("first run", job.RunOnce(ctx), map[string]int64{LifecycleExtended: 1, LifecycleExpired: 2, LifecycleProposed: 1, LifecycleCleared: 1})
	got := read()
	three := 3
	wantStates := map[string]state{
		"Alfa":    {Status: "ATTIVA", ExtendedTo: ptr(day(30))},
		"Beta":    {Status: "SCADUTA"},
		"Gamma":   {Status: "SCADUTA"},
		"Delta":   {Status: "ATTIVA"},
		"Epsilon": {Status: "ATTIVA", Proposed: ptr(today), Absences: &three},
		"Zeta":    {Status: "ATTIVA"},
		"Eta":     {Status: "ATTIVA"},
	}
	for _, n := range names {
		if g, w := got[n], wantStates[n]; g.Status != w.Status || !sameDay(g.ExtendedTo, w.ExtendedTo) || !sameDay(g.Proposed, w.Proposed) ||
			(g.Absences == nil) != (w.Absences == nil) || (g.Absences != nil && *g.Absences != *w.Absences) {
			t.Errorf("after the first run, %s = %s, want %s", n, show(g.Status, g.ExtendedTo, g.Proposed, g.Absences), show(w.Status, w.ExtendedTo, w.Proposed, w.Absences))
		}
	}
	// Every change has its audit row, by the system, with its reason.
	for _, a := range []struct {
		name, action, reason string
	}{
		{"Alfa", "update", "legal extension to " + day(30).Format(time.DateOnly)},
		{"Beta", "status", "the term ended on " + day(-5).Format(time.DateOnly)},
		{"Gamma", "status", "the term ended on " + day(-100).Format(time.DateOnly)},
		{"Epsilon", "update", "decadenza proposed: 3 unjustified absences"},
		{"Eta", "update", "decadenza proposal withdrawn"},
	} {
		var n int
		if err := admin.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE entity = 'concession' AND entity_id = $1 AND action = $2
			AND user_sub = 'dms.lifecycle' AND role = 'system' AND starts_with(after->>'reason', $3)`, conc[a.name], a.action, a.reason).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("%s: %d audit rows %q by the lifecycle, want 1", a.name, n, a.reason)
		}
	}

	// A second run the same day changes nothing.
	check("second run", job.RunOnce(ctx), map[string]int64{LifecycleExtended: 0, LifecycleExpired: 0, LifecycleProposed: 0, LifecycleCleared: 0})
	if again := read(); !maps.EqualFunc(again, got, func(a, b state) bool {
		return a.Status == b.Status && sameDay(a.ExtendedTo, b.ExtendedTo) && sameDay(a.Proposed, b.Proposed) &&
			(a.Absences == nil) == (b.Absences == nil) && (a.Absences == nil || *a.Absences == *b.Absences)
	}) {
		t.Errorf("the second run changed %v into %v", got, again)
	}

	// The office justifies one of Epsilon's absences (a medical
	// certificate arrives late): 2 left, the proposal is withdrawn.
	justify("Epsilon", 3, "MALATTIA")
	check("after a justification", job.RunOnce(ctx), map[string]int64{LifecycleExtended: 0, LifecycleExpired: 0, LifecycleProposed: 0, LifecycleCleared: 1})
	if s := read()["Epsilon"]; s.Proposed != nil || s.Absences != nil {
		t.Errorf("Epsilon after a justification = %s, want no proposal", show(s.Status, s.ExtendedTo, s.Proposed, s.Absences))
	}

	// The router's role may run it only for today.
	err := sh.Tx(ctx, regions.Scope{}, pgx.ReadWrite, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `SELECT dms.concession_lifecycle('2099-01-01', '[]')`)
		return err
	})
	if err == nil {
		t.Errorf("dms_app ran the lifecycle of 2099-01-01, want it refused")
	}
}

func ptr[T any](v T) *T { return &v }

func sameDay(a, b *time.Time) bool {
	return (a == nil) == (b == nil) && (a == nil || a.Format(time.DateOnly) == b.Format(time.DateOnly))
}

func show(status string, ext, prop *time.Time, abs *int) string {
	f := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.Format(time.DateOnly)
	}
	a := "-"
	if abs != nil {
		a = strconv.Itoa(*abs)
	}
	return status + " extended_to " + f(ext) + " proposed " + f(prop) + " absences " + a
}

// exec runs sql on conn or fails t.
func exec(t *testing.T, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// must returns a function that fails tb when err is not nil and returns v.
func must[T any](v T, err error) func(testing.TB) T {
	return func(tb testing.TB) T {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		return v
	}
}
