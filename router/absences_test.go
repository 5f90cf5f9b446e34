package router

import (
	"fmt"
	"testing"
)

// TestAbsencesAPI is Rossi Mario's year at the Milano market (concession
// concMI, Tuesdays and Saturdays) up to Monday 15 June 2026: the office
// recorded Saturday 30 May held, spuntisti were there on Tuesday 2,
// Saturday 6 and Tuesday 9 June, which was then cancelled for the weather,
// and Rossi came on Saturday 13 only. So he was absent on 30 May, 2 and
// 6 June; the 2nd is justified by illness.
func TestAbsencesAPI(t *testing.T) {
	e := newEnv(t, "wabsent", false)
	nw := e.shardDSN(t, "nw")
	spuntista := vendor03 + 1
	wantStatus(t, "30 May held", e.do(t, "milano", "PUT", "/v1/markets/"+ids(milano)+"/days/2026-05-30", `{"status":"HELD"}`), 201)
	wantStatus(t, "the spuntista's presences", e.do(t, "lombardia", "POST", "/v1/presences/batch", fmt.Sprintf(`{"rows":[
		{"market_id":%[1]d,"vendor_id":%[2]d,"date":"2026-06-02","kind":"SPUNTA"},
		{"market_id":%[1]d,"vendor_id":%[2]d,"date":"2026-06-06","kind":"SPUNTA"},
		{"market_id":%[1]d,"vendor_id":%[2]d,"date":"2026-06-09","kind":"SPUNTA"}]}`, milano, spuntista)), 201)
	wantStatus(t, "9 June cancelled", e.do(t, "milano", "PUT", "/v1/markets/"+ids(milano)+"/days/2026-06-09",
		`{"status":"CANCELLED","reason":"grandinata"}`), 201)
	absences := "/v1/concessions/" + ids(concMI) + "/absences"
	list := func(t *testing.T) (dates []string, unjustified, limit float64, over bool) {
		t.Helper()
		r := e.get(t, "milano", absences)
		wantStatus(t, "absences", r, 200)
		if r.body["year"] != float64(2026) || r.body["concession_id"] != float64(concMI) {
			t.Errorf("absences = %s, want the concession's of 2026", r.raw)
		}
		for _, it := range r.body["items"].([]any) {
			a := it.(map[string]any)
			dates = append(dates, fmt.Sprint(a["date"], " ", a["justified"], " ", a["reason"]))
		}
		return dates, r.body["unjustified"].(float64), r.body["limit"].(float64), r.body["over_limit"].(bool)
	}
	dates, n, limit, over := list(t)
	if want := "[2026-05-30 false <nil> 2026-06-02 false <nil> 2026-06-06 false <nil>]"; fmt.Sprint(dates) != want || n != 3 || limit != 34 || over {
		// A third of the 104 Tuesdays and Saturdays of 2026.
		t.Errorf("absences = %v, %v unjustified, limit %v, over %v; want %s, 3, 34, false", dates, n, limit, over, want)
	}

	r := e.do(t, "milano", "PUT", absences+"/2026-06-02", `{"reason":"MALATTIA","note":"certificato medico"}`)
	wantStatus(t, "justify 2 June", r, 201)
	if r.body["reason"] != "MALATTIA" || r.body["note"] != "certificato medico" || r.body["recorded_by"] != "milano" || r.body["date"] != "2026-06-02" {
		t.Errorf("justification = %s", r.raw)
	}
	if a := latestAudit(t, nw, "absence", concMI); a.Action != "justify" || a.After["reason"] != "MALATTIA" {
		t.Errorf("audit of the justification = %+v", a)
	}
	wantStatus(t, "justify it again", e.do(t, "milano", "PUT", absences+"/2026-06-02", `{"reason":"MALATTIA","note":"certificato n. 77"}`), 200)
	// The regolamento allows one unjustified absence a year.
	exec(t, nw, fmt.Sprintf(`INSERT INTO market_regolamenti (market_id, region_id, comune, absence_limit) VALUES (%d, 3, '015146', 1)`, milano))
	dates, n, limit, over = list(t)
	if want := "[2026-05-30 false <nil> 2026-06-02 true MALATTIA 2026-06-06 false <nil>]"; fmt.Sprint(dates) != want || n != 2 || limit != 1 || !over {
		t.Errorf("absences = %v, %v unjustified, limit %v, over %v; want %s, 2, 1, true", dates, n, limit, over, want)
	}

	for _, tt := range []struct {
		name, date, body string
		status           int
		field            string
	}{
		{"a day he was present", "2026-06-13", `{"reason":"MALATTIA"}`, 409, ""},
		{"the cancelled day", "2026-06-09", `{"reason":"FORZA_MAGGIORE"}`, 409, ""},
		{"a day not held", "2026-06-03", `{"reason":"MALATTIA"}`, 409, ""},
		{"today, before any call", "2026-06-15", `{"reason":"MALATTIA"}`, 409, ""},
		{"before his concession", "2019-12-31", `{"reason":"MALATTIA"}`, 422, "date"},
		{"in the future", "2026-06-16", `{"reason":"MALATTIA"}`, 400, "date"},
		{"no reason", "2026-06-06", `{"note":"x"}`, 400, "reason"},
		{"a reason of no law", "2026-06-06", `{"reason":"FERIE"}`, 400, "reason"},
		{"ALTRO without a note", "2026-06-06", `{"reason":"ALTRO"}`, 400, "note"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, "milano", "PUT", absences+"/"+tt.date, tt.body)
			wantStatus(t, tt.name, r, tt.status)
			if tt.field != "" {
				wantField(t, tt.name, r, tt.field)
			}
		})
	}
	wantStatus(t, "a justification outside the territory", e.do(t, "bergamo", "PUT", absences+"/2026-06-06", `{"reason":"MALATTIA"}`), 404)

	del := func(date string) response {
		return e.do(t, "milano", "DELETE", absences+"/"+date, "", "Content-Type", "application/json")
	}
	// A DELETE with a body must say what it is; one with no body need not.
	wantStatus(t, "a withdrawal with a body but no media type",
		e.do(t, "milano", "DELETE", absences+"/2026-06-02", "{}", "Content-Type", ""), 415)
	r = e.do(t, "milano", "DELETE", absences+"/2026-06-02", "", "Content-Type", "")
	wantStatus(t, "withdraw the justification, no body and no media type", r, 200)
	if r.body["note"] != "certificato n. 77" {
		t.Errorf("withdrawn justification = %s", r.raw)
	}
	wantStatus(t, "withdraw it again", del("2026-06-02"), 404)
	if _, n, _, _ = list(t); n != 3 {
		t.Errorf("unjustified after the withdrawal = %v, want 3", n)
	}
	for _, q := range []string{"?year=2027", "?year=x", "?from=2026-01-01"} {
		wantStatus(t, "absences "+q, e.get(t, "milano", absences+q), 400)
	}
	if r := e.get(t, "milano", absences+"?year=2025"); r.status != 200 || len(r.body["items"].([]any)) != 0 {
		t.Errorf("absences of 2025 = %s, want none (no held days recorded)", r.raw)
	}
	wantStatus(t, "absences outside the territory", e.get(t, "bergamo", absences), 404)
}
