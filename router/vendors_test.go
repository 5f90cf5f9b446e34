package router

import (
	"testing"
)

// testVendorWrites registers and patches vendors, one of them in a region
// other than its comune's.
func testVendorWrites(t *testing.T, e *env) {
	nw := e.shardDSN(t, "nw")
	piva := partitaIVA("0765432101")
	r := e.do(t, "milano", "POST", "/v1/vendors",
		`{"partita_iva":"`+piva+`","codice_fiscale":"RSSMRA80A01H501U","denominazione":"Mario Rossi ambulante","comune":"016024"}`)
	wantStatus(t, "POST vendor (comune elsewhere in the region)", r, 201)
	vid := int64(r.body["id"].(float64))
	if r.body["status"] != "ATTIVA" || r.body["region"] != "03" {
		t.Errorf("created vendor = %s", r.raw)
	}
	wantStatus(t, "POST a vendor with a partita IVA taken", e.do(t, "lombardia", "POST", "/v1/vendors",
		`{"partita_iva":"`+piva+`","codice_fiscale":"`+piva+`","denominazione":"Altro","comune":"015146"}`), 409)
	r = e.do(t, "lombardia", "PATCH", "/v1/vendors/"+ids(vid), `{"denominazione":"Rossi Mario ambulante","status":"SOSPESA"}`)
	wantStatus(t, "PATCH vendor", r, 200)
	if a := latestAudit(t, nw, "vendor", vid); a.Before["status"] != "ATTIVA" || a.After["status"] != "SOSPESA" {
		t.Errorf("audit of the vendor patch = %+v", a)
	}
	r = e.do(t, "national", "POST", "/v1/vendors",
		`{"partita_iva":"`+piva+`","codice_fiscale":"`+piva+`","denominazione":"Rossi in Lazio","comune":"016024","region":"12"}`)
	wantStatus(t, "national POST a Lombard vendor into Lazio's registry", r, 201)
	if r.body["region"] != "12" {
		t.Errorf("vendor registered in region %v, want 12", r.body["region"])
	}
}
