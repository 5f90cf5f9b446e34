package router

import (
	"fmt"
	"strings"
	"testing"

	"github.com/dmshub/dmsrouter/regions"
)

// TestMarketDaysAPI is a fortnight of the Milano market (Tuesdays and
// Saturdays) as its office records it: Tuesday 9 June cancelled for bad
// weather, the call of Monday 15 June (an extra day, today at 10:00) made
// at 09:00, and a spuntista who comes after it.
func TestMarketDaysAPI(t *testing.T) {
	e := newEnv(t, "wdays", false)
	nw := e.shardDSN(t, "nw")
	exec(t, nw, `INSERT INTO vendors (id, region_id, partita_iva, codice_fiscale, denominazione, comune)
		SELECT dms.next_id('vendors', 3::smallint), 3, lpad(n::text, 11, '0'), lpad(n::text, 11, '0'), 'Spuntista ' || n, '015146'
		FROM generate_series(101, 102) n`)
	s1, s2 := regions.MakeID("03", 3), regions.MakeID("03", 4)
	day := func(date string) string { return "/v1/markets/" + ids(milano) + "/days/" + date }

	r := e.do(t, "milano", "PUT", day("2026-06-09"), `{"status":"CANCELLED","reason":"maltempo"}`)
	wantStatus(t, "cancel a day", r, 201)
	if r.body["status"] != "CANCELLED" || r.body["reason"] != "maltempo" || r.body["recorded"] != true || r.body["updated_by"] != "milano" {
		t.Errorf("cancelled day = %s", r.raw)
	}
	r = e.do(t, "milano", "PUT", day("2026-06-09"), `{"status":"CANCELLED","reason":"maltempo: allerta meteo arancione"}`)
	wantStatus(t, "cancel it again, another reason", r, 200)
	if a := latestAudit(t, nw, "market_day", milano); a.Action != "status" || a.Before["reason"] != "maltempo" ||
		a.After["reason"] != "maltempo: allerta meteo arancione" {
		t.Errorf("audit of the market day = %+v", a)
	}
	for _, tt := range []struct {
		name, date, body, field string
	}{
		{"cancelled without a reason", "2026-06-16", `{"status":"CANCELLED"}`, "reason"},
		{"no status", "2026-06-16", `{"reason":"festa patronale"}`, "status"},
		{"a status of no day", "2026-06-16", `{"status":"SOSPESO","reason":"x"}`, "status"},
		{"not a date", "16-06-2026", `{"status":"HELD"}`, "date"},
		{"more than a year ahead", "2027-06-16", `{"status":"CANCELLED","reason":"lavori"}`, "date"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, "milano", "PUT", day(tt.date), tt.body)
			wantStatus(t, tt.name, r, 400)
			wantField(t, tt.name, r, tt.field)
		})
	}
	wantStatus(t, "a day of a market outside the territory", e.do(t, "bergamo", "PUT", day("2026-06-16"), `{"status":"HELD"}`), 404)
	wantStatus(t, "a holiday cancelled ahead", e.do(t, "market", "PUT", day("2026-08-15"), `{"status":"CANCELLED","reason":"Ferragosto"}`), 201)

	// The cancelled day takes no check-in, single or in a batch.
	r = e.do(t, "milano", "POST", "/v1/markets/"+ids(milano)+"/presences",
		fmt.Sprintf(`{"vendor_id":%d,"kind":"SPUNTA","checkin_at":"2026-06-09T07:30:00+02:00"}`, s1))
	wantStatus(t, "check-in on the cancelled day", r, 409)
	if r.body["rule"] != "market-day-cancelled" || !strings.Contains(fmt.Sprint(r.body["detail"]), "allerta meteo") {
		t.Errorf("check-in on the cancelled day = %s", r.raw)
	}
	r = e.do(t, "lombardia", "POST", "/v1/presences/batch", fmt.Sprintf(`{"rows":[
		{"market_id":%[1]d,"vendor_id":%[2]d,"date":"2026-06-06","kind":"SPUNTA"},
		{"market_id":%[1]d,"vendor_id":%[2]d,"date":"2026-06-09","kind":"SPUNTA"}]}`, milano, s1))
	wantStatus(t, "a batch with a row on the cancelled day", r, 422)
	if !strings.Contains(r.raw, `{"field":"rows[1].date","message":"the market day was cancelled (maltempo: allerta meteo arancione): it takes no presences","rule":"market-day-cancelled"}`) {
		t.Errorf("batch refused = %s", r.raw)
	}

	// The call of today at 09:00; s1 comes at 10:00 (the clock), late.
	appello := day("2026-06-15") + "/appello"
	for _, tt := range []struct{ name, date, body, field string }{
		{"a call in the future", "2026-06-15", `{"at":"2026-06-15T11:00:00+02:00"}`, "at"},
		{"a call on another day", "2026-06-13", `{"at":"2026-06-12T08:00:00+02:00"}`, "at"},
		{"a past day's call without its time", "2026-06-13", `{}`, "at"},
		{"a day in the future", "2026-06-16", `{}`, "date"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, "milano", "POST", day(tt.date)+"/appello", tt.body)
			wantStatus(t, tt.name, r, 400)
			wantField(t, tt.name, r, tt.field)
		})
	}
	r = e.do(t, "milano", "POST", appello, `{"at":"2026-06-15T09:00:00+02:00"}`)
	wantStatus(t, "the call", r, 201)
	if r.body["call_at"] != "2026-06-15T07:00:00Z" || r.body["status"] != "HELD" || r.body["concession_presences"] != float64(1) {
		t.Errorf("the call = %s", r.raw)
	}
	r = e.do(t, "milano", "POST", appello, ``)
	wantStatus(t, "a second call", r, 409)
	if r.body["rule"] != "call-made" {
		t.Errorf("a second call = %s, want rule call-made", r.raw)
	}
	r = e.do(t, "milano", "POST", day("2026-06-09")+"/appello", `{"at":"2026-06-09T08:00:00+02:00"}`)
	if r.status != 409 || r.body["rule"] != "market-day-cancelled" {
		t.Errorf("the call of the cancelled day = %d %s, want 409 market-day-cancelled", r.status, r.raw)
	}
	r = e.do(t, "milano", "POST", "/v1/markets/"+ids(milano)+"/presences", fmt.Sprintf(`{"vendor_id":%d,"kind":"SPUNTA"}`, s1))
	wantStatus(t, "a spuntista after the call", r, 201)
	if r.body["outcome"] != "LATE" {
		t.Errorf("a spuntista after the call = %s, want outcome LATE", r.raw)
	}
	r = e.do(t, "milano", "POST", "/v1/markets/"+ids(milano)+"/presences",
		fmt.Sprintf(`{"vendor_id":%d,"kind":"SPUNTA","checkin_at":"2026-06-15T08:55:00+02:00"}`, s2))
	wantStatus(t, "a spuntista before the call", r, 201)
	if _, ok := r.body["outcome"]; !ok || r.body["outcome"] != nil {
		t.Errorf("a spuntista before the call = %s, want outcome null", r.raw)
	}

	r = e.get(t, "milano", "/v1/markets/"+ids(milano)+"/days?from=2026-06-01&to=2026-06-30")
	wantStatus(t, "the month's days", r, 200)
	var got []string
	for _, it := range r.body["items"].([]any) {
		d := it.(map[string]any)
		got = append(got, fmt.Sprint(d["date"], " ", d["status"], " ", d["recorded"], " ", d["spunta_presences"]))
	}
	want := []string{"2026-06-09 CANCELLED true 0", "2026-06-13 HELD false 0", "2026-06-15 HELD true 3"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the month's days = %v, want %v", got, want)
	}
	for _, q := range []string{"?from=2026-06-30&to=2026-06-01", "?from=2025-01-01&to=2026-06-30", "?since=2026-01-01"} {
		wantStatus(t, "days "+q, e.get(t, "milano", "/v1/markets/"+ids(milano)+"/days"+q), 400)
	}
	wantStatus(t, "the days of a market outside the territory", e.get(t, "bergamo", "/v1/markets/"+ids(milano)+"/days"), 404)
	if r := e.get(t, "milano", "/v1/markets/"+ids(milano)+"/days"); r.status != 200 || r.body["from"] != "2026-01-01" || len(r.body["items"].([]any)) != 4 {
		t.Errorf("this year's days = %s, want from 2026-01-01 and four days, Ferragosto included", r.raw)
	}
	checkRollup(t, nw)
}
