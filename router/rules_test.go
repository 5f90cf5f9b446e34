package router

import (
	"fmt"
	"testing"
)

// TestMarketDayRules runs the worked examples of the regolamento, sectors,
// authorisations and the rules of a grant through the API, on one
// deployment of the fixture.
func TestMarketDayRules(t *testing.T) {
	e := newEnv(t, "rules", false)
	for _, tt := range []struct {
		name string
		test func(*testing.T, *env)
	}{
		{"regolamento", testRegolamento},
		{"sectors", testSectors},
		{"concession rules", testConcessionRules},
		{"authorisations", testAuthorisations},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.test(t, e) })
	}
}

// wantRule fails unless the 409 problem r names rule ("" for none).
func wantRule(t *testing.T, what string, r response, rule string) {
	t.Helper()
	wantStatus(t, what, r, 409)
	if got, _ := r.body["rule"].(string); got != rule {
		t.Errorf("%s: rule %q, want %q (%s)", what, got, rule, r.raw)
	}
}

func testRegolamento(t *testing.T, e *env) {
	nw := e.shardDSN(t, "nw")
	path := "/v1/markets/" + ids(milano) + "/regolamento"
	g := e.get(t, "milano", "/v1/markets/"+ids(milano))
	reg, _ := g.body["regolamento"].(map[string]any)
	if g.status != 200 || reg["own"] != false || reg["ranking_reset"] != "NEVER" || reg["call_time"] != "08:00" || reg["sectors"] != true ||
		reg["absence_limit"] != nil || fmt.Sprint(reg["tie_breaks"]) != "[REGISTRATION DRAW]" {
		t.Errorf("GET the market with the national defaults = %d %s", g.status, g.raw)
	}
	for _, bad := range []struct{ body, field string }{
		{`{"ranking_reset":"MONTHLY"}`, "ranking_reset"},
		{`{"tie_breaks":["DRAW","REGISTRATION"]}`, "tie_breaks"},
		{`{"tie_breaks":["REGISTRATION","REGISTRATION","DRAW"]}`, "tie_breaks"},
		{`{"tie_breaks":[]}`, "tie_breaks"},
		{`{"call_time":"8:00"}`, "call_time"},
		{`{"call_time":"24:00"}`, "call_time"},
		{`{"absence_limit":400}`, "absence_limit"},
		{`{"ranking_from":"1999-12-31"}`, "ranking_from"},
		{`{"sectors":null}`, "sectors"},
		{`{"spunta":"sempre"}`, "spunta"},
		{`{}`, "body"},
	} {
		r := e.do(t, "milano", "PATCH", path, bad.body)
		wantStatus(t, "PATCH the regolamento "+bad.body, r, 400)
		wantField(t, bad.body, r, bad.field)
	}
	for _, who := range []string{"market", "national"} {
		wantStatus(t, who+" PATCH the regolamento", e.do(t, who, "PATCH", path, `{"call_time":"07:00"}`), 403)
	}
	wantStatus(t, "PATCH the regolamento of a market outside the comune",
		e.do(t, "milano", "PATCH", "/v1/markets/"+ids(bergamo)+"/regolamento", `{"call_time":"07:00"}`), 404)

	r := e.do(t, "milano", "PATCH", path, `{"ranking_reset":"YEARLY","ranking_from":"2024-01-01","tie_breaks":["FIRST_PRESENCE","DRAW"],"call_time":"07:30","absence_limit":17}`)
	wantStatus(t, "comune PATCH the regolamento", r, 200)
	if r.body["own"] != true || r.body["ranking_reset"] != "YEARLY" || r.body["ranking_from"] != "2024-01-01" || r.body["call_time"] != "07:30" ||
		r.body["absence_limit"] != 17.0 || r.body["current_absence_limit"] != 17.0 || r.body["sectors"] != true {
		t.Errorf("the patched regolamento = %s", r.raw)
	}
	a := latestAudit(t, nw, "regolamento", milano)
	if a.User != "milano" || a.Action != "update" || a.Before != nil || a.After["call_time"] != "07:30:00" || a.After["absence_limit"] != 17.0 {
		t.Errorf("audit of the first regolamento = %+v", a)
	}
	r = e.do(t, "cm-milano", "PATCH", path, `{"absence_limit":null,"ranking_from":null}`)
	wantStatus(t, "metropolitan city PATCH the regolamento", r, 200)
	if r.body["absence_limit"] != nil || r.body["ranking_from"] != nil || r.body["call_time"] != "07:30" {
		t.Errorf("the regolamento back to the national limit = %s", r.raw)
	}
	a = latestAudit(t, nw, "regolamento", milano)
	if a.Before["absence_limit"] != 17.0 || a.After["absence_limit"] != nil {
		t.Errorf("audit of the second change = %+v", a)
	}
	g = e.get(t, "market", "/v1/markets/"+ids(milano))
	reg, _ = g.body["regolamento"].(map[string]any)
	if reg["own"] != true || reg["ranking_reset"] != "YEARLY" || reg["call_time"] != "07:30" || reg["absence_limit"] != nil {
		t.Errorf("GET the market after the changes = %s", g.raw)
	}
}

func testSectors(t *testing.T, e *env) {
	r := e.do(t, "milano", "POST", "/v1/markets/"+ids(milano)+"/stalls", `{"number":20,"type":"FISSO","area_mq":9,"sector":"ALIMENTARE","reserved_for":"DISABILE"}`)
	wantStatus(t, "POST a reserved ALIMENTARE stall", r, 201)
	if r.body["sector"] != "ALIMENTARE" || r.body["reserved_for"] != "DISABILE" {
		t.Errorf("the reserved stall = %s", r.raw)
	}
	sid := int64(r.body["id"].(float64))
	r = e.do(t, "milano", "PATCH", "/v1/stalls/"+ids(sid), `{"reserved_for":null}`)
	if r.status != 200 || r.body["reserved_for"] != nil || r.body["sector"] != "ALIMENTARE" {
		t.Errorf("PATCH reserved_for null = %d %s", r.status, r.raw)
	}
	for _, bad := range []struct{ method, path, body, field string }{
		{"POST", "/v1/markets/" + ids(milano) + "/stalls", `{"number":21,"type":"FISSO","area_mq":9,"sector":"ORTOFRUTTA"}`, "sector"},
		{"PATCH", "/v1/stalls/" + ids(sid), `{"reserved_for":"ANZIANI"}`, "reserved_for"},
		{"PATCH", "/v1/stalls/" + ids(sid), `{"sector":null}`, "sector"},
		{"PATCH", "/v1/vendors/" + ids(vendor03), `{"registered_on":"2024-02-30"}`, "registered_on"},
		{"PATCH", "/v1/vendors/" + ids(vendor03), `{"categories":["PRODUTTORE","PRODUTTORE"]}`, "categories"},
		{"PATCH", "/v1/vendors/" + ids(vendor03), `{"categories":["ANZIANO"]}`, "categories"},
		{"POST", "/v1/vendors", `{"partita_iva":"08765432102","codice_fiscale":"08765432102","denominazione":"X","comune":"015146","registered_on":"1899-12-31"}`, "registered_on"},
	} {
		r := e.do(t, "milano", bad.method, bad.path, bad.body)
		wantStatus(t, bad.method+" "+bad.path+" "+bad.body, r, 400)
		wantField(t, bad.body, r, bad.field)
	}
	// Stall 1 of Milano is held by concMI, NON_ALIMENTARE.
	wantRule(t, "PATCH the sector of a held stall", e.do(t, "milano", "PATCH", "/v1/stalls/"+ids(stallMI1), `{"sector":"ALIMENTARE"}`), "sector-mismatch")
	r = e.do(t, "milano", "PATCH", "/v1/vendors/"+ids(vendor03), `{"registered_on":"1998-09-14","categories":["PRODUTTORE","DISABILE"]}`)
	wantStatus(t, "PATCH a vendor's registration and categories", r, 200)
	if r.body["registered_on"] != "1998-09-14" || fmt.Sprint(r.body["categories"]) != "[DISABILE PRODUTTORE]" {
		t.Errorf("the patched vendor = %s", r.raw)
	}
	r = e.do(t, "milano", "PATCH", "/v1/vendors/"+ids(vendor03), `{"registered_on":null,"categories":[]}`)
	if r.status != 200 || r.body["registered_on"] != nil || fmt.Sprint(r.body["categories"]) != "[]" {
		t.Errorf("PATCH a vendor's registration null = %d %s", r.status, r.raw)
	}
}

// testConcessionRules grants concessions at a market of 60 stalls and one
// of 101, as a comune office would.
func testConcessionRules(t *testing.T, e *env) {
	nw := e.shardDSN(t, "nw")
	exec(t, nw, `INSERT INTO markets (id, region_id, code, name, province, comune, comune_name, days) VALUES
		(dms.next_id('markets', 3::smallint), 3, 'MI060', 'Mercato di Piazzale Lagosta', '015', '015146', 'Milano', '{3}'),
		(dms.next_id('markets', 3::smallint), 3, 'MI101', 'Mercato di Viale Papiniano Grande', '015', '015146', 'Milano', '{6}');
	INSERT INTO stalls (id, region_id, market_id, comune, number, type, status, area_mq)
		SELECT dms.next_id('stalls', 3::smallint), 3, m.id, m.comune, g, 'FISSO', 'LIBERO', 10
		FROM markets m CROSS JOIN LATERAL generate_series(1, CASE m.code WHEN 'MI060' THEN 60 ELSE 101 END) g
		WHERE m.code IN ('MI060', 'MI101') ORDER BY m.code, g`)
	market := func(code string) int64 {
		return scalar(t, nw, `SELECT id FROM markets WHERE code = $1`, code)
	}
	stall := func(m int64, n int) int64 {
		return scalar(t, nw, `SELECT id FROM stalls WHERE market_id = $1 AND number = $2`, m, n)
	}
	grant := func(m int64, n int, vendor int64, extra string) response {
		return e.do(t, "milano", "POST", "/v1/concessions", fmt.Sprintf(`{"market_id":%d,"stall_id":%d,"vendor_id":%d,"valid_from":"2026-07-01"%s}`,
			m, stall(m, n), vendor, extra))
	}
	m60, m101 := market("MI060"), market("MI101")
	// Frutta Bianchi holds two NON_ALIMENTARE posteggi at the market of
	// 60 stalls: the third is refused; at the market of 101 it may hold three.
	wantStatus(t, "the first at 60", grant(m60, 1, vendorFB, ""), 201)
	wantStatus(t, "the second at 60", grant(m60, 2, vendorFB, `,"sector":"NON_ALIMENTARE"`), 201)
	wantRule(t, "the third at 60", grant(m60, 3, vendorFB, ""), "concession-cap")
	for n := 1; n <= 3; n++ {
		wantStatus(t, fmt.Sprintf("concession %d at 101", n), grant(m101, n, vendorFB, ""), 201)
	}
	wantRule(t, "the fourth at 101", grant(m101, 4, vendorFB, ""), "concession-cap")
	// A concession whose sector is not its stall's.
	wantRule(t, "an ALIMENTARE concession on a NON_ALIMENTARE stall", grant(m60, 3, vendor03, `,"sector":"ALIMENTARE"`), "sector-mismatch")
	wantStatus(t, "a bad sector", grant(m60, 3, vendor03, `,"sector":"alimentari"`), 400)

	// A SOSPESA holder keeps its stall: Verdi, with no concession there,
	// is refused Rossi's.
	exec(t, nw, `INSERT INTO vendors (id, region_id, partita_iva, codice_fiscale, denominazione, comune)
		VALUES (dms.next_id('vendors', 3::smallint), 3, '08765432102', '08765432102', 'Ortofrutta Verdi snc', '015146')`)
	verdi := scalar(t, nw, `SELECT id FROM vendors WHERE partita_iva = '08765432102'`)
	r := grant(m60, 10, vendor03, "")
	wantStatus(t, "Rossi on stall 10", r, 201)
	held := int64(r.body["id"].(float64))
	wantStatus(t, "suspend Rossi", e.do(t, "milano", "POST", "/v1/concessions/"+ids(held)+"/status", `{"status":"SOSPESA","reason":"DURC irregolare"}`), 200)
	wantRule(t, "a concession over a SOSPESA holder", grant(m60, 10, verdi, ""), "")

	// The renewal keeps the title.
	r = e.do(t, "milano", "POST", "/v1/concessions/"+ids(held)+"/renewal", `{"valid_to":"2046-06-30"}`)
	wantStatus(t, "renew Rossi's concession", r, 201)
	if r.body["title_id"] != float64(held) || r.body["follows_id"] != float64(held) || r.body["follows_by"] != "RENEWAL" ||
		r.body["valid_from"] != "2036-07-01" || r.body["stall_id"] != float64(stall(m60, 10)) || r.body["vendor_id"] != float64(vendor03) ||
		r.body["sector"] != "NON_ALIMENTARE" || r.body["status"] != "ATTIVA" {
		t.Errorf("the renewal = %s", r.raw)
	}
	renewal := int64(r.body["id"].(float64))
	if a := latestAudit(t, nw, "concession", renewal); a.Action != "renewal" || a.User != "milano" {
		t.Errorf("audit of the renewal = %+v", a)
	}
	wantStatus(t, "a renewal without valid_to", e.do(t, "milano", "POST", "/v1/concessions/"+ids(held)+"/renewal", `{}`), 400)
	r = e.do(t, "milano", "POST", "/v1/concessions/"+ids(held)+"/renewal", `{"valid_from":"2030-01-01","valid_to":"2039-12-31"}`)
	wantStatus(t, "a renewal inside the term", r, 422)
	wantField(t, "a renewal inside the term", r, "valid_from")
	wantStatus(t, "a renewal outside the comune", e.do(t, "bergamo", "POST", "/v1/concessions/"+ids(held)+"/renewal", `{"valid_to":"2046-06-30"}`), 404)
}

func testAuthorisations(t *testing.T, e *env) {
	path := "/v1/vendors/" + ids(vendorFB) + "/authorisations"
	r := e.do(t, "bergamo", "POST", path, `{"type":"B","sector":"ALIMENTARE","comune":"016025","number":"12/2019","issued_on":"2019-04-01"}`)
	wantStatus(t, "province POST an authorisation of its comune", r, 201)
	if r.body["type"] != "B" || r.body["comune"] != "016025" || r.body["issued_on"] != "2019-04-01" || r.body["vendor_id"] != float64(vendorFB) {
		t.Errorf("the authorisation = %s", r.raw)
	}
	wantRule(t, "the same authorisation again", e.do(t, "bergamo", "POST", path, `{"type":"B","sector":"ALIMENTARE","comune":"016025"}`), "")
	wantStatus(t, "province POST an authorisation of another province's comune",
		e.do(t, "bergamo", "POST", path, `{"type":"B","sector":"ALIMENTARE","comune":"015146"}`), 403)
	r = e.do(t, "lombardia", "POST", path, `{"type":"A","sector":"ALIMENTARE","comune":"058091"}`)
	wantStatus(t, "a type A authorisation of another region's comune", r, 400)
	wantField(t, "type A from Roma", r, "comune")
	r = e.do(t, "lombardia", "POST", path, `{"type":"C","sector":"ALIMENTARE","comune":"999999"}`)
	wantStatus(t, "a bad authorisation", r, 400)
	wantField(t, "type C", r, "type")
	wantField(t, "comune 999999", r, "comune")
	wantStatus(t, "an authorisation of a vendor of another region", e.do(t, "lazio", "POST", path, `{"type":"B","sector":"ALIMENTARE","comune":"058091"}`), 404)

	// Frutta Bianchi's concessions gave it its type A authorisation from
	// Milano; the fixture its type B ones from Bergamo, as migration 00014
	// would have (it has been a spuntista).
	r = e.get(t, "milano", path)
	wantStatus(t, "GET the authorisations", r, 200)
	if got := r.field("type") + " " + r.field("sector") + " " + r.field("comune"); got != "A,B,B,B NON_ALIMENTARE,ALIMENTARE,ALIMENTARE,NON_ALIMENTARE 015146,016024,016025,016024" {
		t.Errorf("Frutta Bianchi's authorisations: %s (%s)", got, r.raw)
	}
	wantStatus(t, "GET the authorisations of another region's vendor", e.get(t, "lazio", path), 404)
}
