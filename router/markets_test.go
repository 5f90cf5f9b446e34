package router

import (
	"testing"

	"github.com/dmshub/dmsrouter/regions"
)

// testMarketWrites creates and patches markets, as a region, a national
// principal and a comune office.
func testMarketWrites(t *testing.T, e *env) {
	nw := e.shardDSN(t, "nw")
	r := e.do(t, "lombardia", "POST", "/v1/markets",
		`{"code":"MI002","name":"Mercato di Viale Papiniano","comune":"015146","comune_name":"Milano","days":[2,6],"cost_per_sqm":1.5}`)
	wantStatus(t, "POST /v1/markets", r, 201)
	mid := int64(r.body["id"].(float64))
	if got, _ := regions.IDRegion(mid); got != "03" || r.body["province"] != "015" || r.body["region"] != "03" || r.body["status"] != "ACTIVE" {
		t.Errorf("created market = %s", r.raw)
	}
	if g := e.get(t, "milano", "/v1/markets/"+ids(mid)); g.status != 200 || g.body["code"] != "MI002" {
		t.Errorf("GET the new market = %d %s", g.status, g.raw)
	}
	a := latestAudit(t, nw, "market", mid)
	if a.User != "lombardia" || a.Role != "admin_pa" || a.Action != "create" || a.Before != nil || a.After["code"] != "MI002" {
		t.Errorf("audit of the new market = %+v", a)
	}
	wantStatus(t, "POST a market with a code taken", e.do(t, "lombardia", "POST", "/v1/markets",
		`{"code":"MI002","name":"Doppione","comune":"015146"}`), 409)
	// Codes are unique per region: TO001 is Piemonte's, on the same shard.
	r = e.do(t, "lombardia", "POST", "/v1/markets", `{"code":"TO001","name":"Omonimo","comune":"015146","days":[3]}`)
	wantStatus(t, "POST a market with a code of another region", r, 201)
	if r.body["code"] != "TO001" || r.body["region"] != "03" {
		t.Errorf("market with another region's code = %s", r.raw)
	}
	r = e.do(t, "lombardia", "POST", "/v1/markets", `{"code":"TO001","name":"Doppione","comune":"016024","days":[3]}`)
	wantStatus(t, "POST a market with a code taken in its region", r, 409)
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("duplicate code: Content-Type = %q, want application/problem+json", ct)
	}
	r = e.do(t, "national", "POST", "/v1/markets", `{"code":"RM002","name":"Mercato Esquilino","comune":"058091"}`)
	wantStatus(t, "national POST a market in Lazio", r, 201)
	if got, _ := regions.IDRegion(int64(r.body["id"].(float64))); got != "12" {
		t.Errorf("national market's region = %s, want 12", got)
	}

	r = e.do(t, "milano", "PATCH", "/v1/markets/"+ids(mid), `{"name":"Mercato Papiniano","status":"INACTIVE"}`)
	wantStatus(t, "PATCH /v1/markets/{id}", r, 200)
	if r.body["name"] != "Mercato Papiniano" || r.body["status"] != "INACTIVE" || r.body["code"] != "MI002" {
		t.Errorf("patched market = %s", r.raw)
	}
	a = latestAudit(t, nw, "market", mid)
	if a.Action != "update" || a.User != "milano" || a.Before["name"] != "Mercato di Viale Papiniano" || a.After["name"] != "Mercato Papiniano" {
		t.Errorf("audit of the patch = %+v", a)
	}
}
