package router

import (
	"fmt"
	"strings"
	"testing"
)

// testLifecycleWrites sells Rossi Mario's business at Milano to Frutta
// Bianchi (a subingresso) and declares a concession DECADUTA, as a comune
// office does through the API; the clock is 2026-06-15.
func testLifecycleWrites(t *testing.T, e *env) {
	nw := e.shardDSN(t, "nw")
	exec(t, nw, `INSERT INTO vendors (id, region_id, partita_iva, codice_fiscale, denominazione, comune, status)
		VALUES (dms.next_id('vendors', 3::smallint), 3, '00000000888', '00000000888', 'Chiusa', '015146', 'CESSATA')`)
	ceased := scalar(t, nw, `SELECT id FROM vendors WHERE partita_iva = '00000000888'`)
	path := "/v1/concessions/" + ids(concMI) + "/subingresso"
	for _, tt := range []struct {
		name, body string
		status     int
		field      string // of a 400
		rule       string // of a 409
	}{
		{"no buyer", `{"date":"2026-06-14"}`, 400, "vendor_id", ""},
		{"a date after today", fmt.Sprintf(`{"vendor_id":%d,"date":"2026-06-16"}`, vendorFB), 400, "date", ""},
		{"not a date", fmt.Sprintf(`{"vendor_id":%d,"date":"14/06/2026"}`, vendorFB), 400, "date", ""},
		{"a buyer outside the territory", fmt.Sprintf(`{"vendor_id":%d}`, roma), 403, "", ""},
		{"a ceased buyer", fmt.Sprintf(`{"vendor_id":%d,"date":"2026-06-14"}`, ceased), 409, "", "buyer-not-active"},
		{"a date before the term", fmt.Sprintf(`{"vendor_id":%d,"date":"2019-12-31"}`, vendorFB), 409, "", "title-ended"},
		{"the sale", fmt.Sprintf(`{"vendor_id":%d,"date":"2026-06-14"}`, vendorFB), 201, "", ""},
		{"the title sold again", fmt.Sprintf(`{"vendor_id":%d,"date":"2026-06-15"}`, ceased), 409, "", "title-ended"},
	} {
		r := e.do(t, "milano", "POST", path, tt.body)
		wantStatus(t, tt.name, r, tt.status)
		if tt.field != "" {
			wantField(t, tt.name, r, tt.field)
		}
		if tt.rule != "" && !strings.Contains(r.raw, `"rule":"`+tt.rule+`"`) {
			t.Errorf("%s: problem %s does not name rule %q", tt.name, r.raw, tt.rule)
		}
		if tt.status == 201 && (r.body["vendor_id"] != float64(vendorFB) || r.body["valid_from"] != "2026-06-14" ||
			r.body["valid_to"] != "2029-12-31" || r.body["status"] != "ATTIVA") {
			t.Errorf("%s = %s, want Frutta Bianchi's ATTIVA concession from 2026-06-14 to 2029-12-31", tt.name, r.raw)
		}
	}
	if st := e.get(t, "milano", "/v1/concessions/"+ids(concMI)); st.body["status"] != "CESSATA" {
		t.Errorf("the concession sold = %s, want CESSATA", st.raw)
	}

	// DECADUTA only once the lifecycle job proposed it.
	bought := scalar(t, nw, fmt.Sprintf(`SELECT id FROM concessions WHERE follows_id = %d`, concMI))
	status := "/v1/concessions/" + ids(bought) + "/status"
	r := e.do(t, "milano", "POST", status, `{"status":"DECADUTA","reason":"assenze"}`)
	wantStatus(t, "DECADUTA without a proposal", r, 409)
	if !strings.Contains(r.raw, `"rule":"not-proposed"`) {
		t.Errorf("DECADUTA without a proposal: problem %s does not name rule not-proposed", r.raw)
	}
	exec(t, nw, fmt.Sprintf(`UPDATE concessions SET decadenza_proposed_on = '2026-06-15', decadenza_absences = 40 WHERE id = %d`, bought))
	r = e.do(t, "milano", "POST", status, `{"status":"DECADUTA","reason":"assenze"}`)
	wantStatus(t, "DECADUTA once proposed", r, 200)
	if r.body["status"] != "DECADUTA" {
		t.Errorf("DECADUTA once proposed = %s", r.raw)
	}
}
