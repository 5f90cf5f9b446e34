package router

import (
	"fmt"
	"testing"
)

// testConcessionWrites grants concessions and walks their status
// transitions.
func testConcessionWrites(t *testing.T, e *env) {
	nw := e.shardDSN(t, "nw")
	r := e.do(t, "milano", "POST", "/v1/concessions",
		fmt.Sprintf(`{"market_id":%d,"stall_id":%d,"vendor_id":%d,"valid_from":"2025-01-01","valid_to":"2030-12-31"}`, milano, stallMI1, vendorFB))
	wantStatus(t, "POST a concession overlapping an ATTIVA one", r, 409)
	r = e.do(t, "milano", "POST", "/v1/concessions",
		fmt.Sprintf(`{"market_id":%d,"stall_id":%d,"vendor_id":%d,"valid_from":"2030-01-01"}`, milano, stallMI1, vendorFB))
	wantStatus(t, "POST a concession after the ATTIVA one", r, 201)
	cid := int64(r.body["id"].(float64))
	if r.body["valid_to"] != "2039-12-31" || r.body["status"] != "ATTIVA" {
		t.Errorf("10-year concession = %s", r.raw)
	}
	r = e.do(t, "milano", "POST", "/v1/concessions",
		fmt.Sprintf(`{"market_id":%d,"stall_id":%d,"vendor_id":%d,"valid_from":"2030-01-01"}`, milano, stallBG1, vendorFB))
	wantStatus(t, "POST a concession on a stall of a market outside the comune", r, 404)
	wantField(t, "stall outside the comune", r, "stall_id")
	r = e.do(t, "lombardia", "POST", "/v1/concessions",
		fmt.Sprintf(`{"market_id":%d,"stall_id":%d,"vendor_id":%d,"valid_from":"2030-01-01"}`, milano, stallBG1, vendorFB))
	wantStatus(t, "POST a concession on another market's stall", r, 422)
	wantField(t, "another market's stall", r, "stall_id")
	exec(t, nw, `INSERT INTO vendors (id, region_id, partita_iva, codice_fiscale, denominazione, comune, status)
		VALUES (dms.next_id('vendors', 3::smallint), 3, '00000000777', '00000000777', 'Sospeso', '015146', 'SOSPESA')`)
	suspended := scalar(t, nw, `SELECT id FROM vendors WHERE partita_iva = '00000000777'`)
	wantStatus(t, "POST a concession to a SOSPESA vendor", e.do(t, "lombardia", "POST", "/v1/concessions",
		fmt.Sprintf(`{"market_id":%d,"stall_id":%d,"vendor_id":%d,"valid_from":"2040-01-01"}`, milano, stallMI2, suspended)), 409)

	// Status transitions.
	for _, step := range []struct {
		status string
		want   int
	}{
		{"SOSPESA", 200}, {"SOSPESA", 409}, {"ATTIVA", 200}, {"REVOCATA", 200}, {"ATTIVA", 409}, {"CESSATA", 409},
	} {
		r := e.do(t, "milano", "POST", "/v1/concessions/"+ids(cid)+"/status", `{"status":"`+step.status+`","reason":"canone"}`)
		wantStatus(t, "concession -> "+step.status, r, step.want)
		if step.want == 200 && r.body["status"] != step.status {
			t.Errorf("concession -> %s = %s", step.status, r.raw)
		}
	}
	a := latestAudit(t, nw, "concession", cid)
	if a.Action != "status" || a.Before["status"] != "ATTIVA" || a.After["status"] != "REVOCATA" || a.After["reason"] != "canone" {
		t.Errorf("audit of the revocation = %+v", a)
	}
	r = e.do(t, "milano", "POST", "/v1/concessions/"+ids(concMI)+"/status", `{"status":"SCADUTA","reason":"x"}`)
	wantStatus(t, "concession -> SCADUTA", r, 400)
	wantField(t, "SCADUTA", r, "status")

	// Reactivating a concession past its valid_to is refused.
	exec(t, nw, fmt.Sprintf(`UPDATE concessions SET status = 'SOSPESA', valid_to = '2026-06-01' WHERE id = %d`, concBG))
	wantStatus(t, "reactivate an expired concession", e.do(t, "lombardia", "POST", "/v1/concessions/"+ids(concBG)+"/status",
		`{"status":"ATTIVA","reason":"pagato"}`), 409)
}
