package router

import (
	"testing"
)

// testStallWrites creates and patches a stall of Milano.
func testStallWrites(t *testing.T, e *env) {
	nw := e.shardDSN(t, "nw")
	r := e.do(t, "milano", "POST", "/v1/markets/"+ids(milano)+"/stalls", `{"number":3,"type":"SPUNTA","area_mq":9.5,"width_m":3}`)
	wantStatus(t, "POST stall", r, 201)
	sid := int64(r.body["id"].(float64))
	if r.body["market_id"] != float64(milano) || r.body["status"] != "LIBERO" || r.body["area_mq"] != 9.5 || r.body["width_m"] != 3.0 {
		t.Errorf("created stall = %s", r.raw)
	}
	if a := latestAudit(t, nw, "stall", sid); a.Action != "create" || a.After["number"] != 3.0 {
		t.Errorf("audit of the new stall = %+v", a)
	}
	wantStatus(t, "POST a stall number taken", e.do(t, "milano", "POST", "/v1/markets/"+ids(milano)+"/stalls",
		`{"number":3,"type":"FISSO","area_mq":9}`), 409)
	r = e.do(t, "milano", "PATCH", "/v1/stalls/"+ids(sid), `{"status":"RISERVATO","width_m":null}`)
	wantStatus(t, "PATCH stall", r, 200)
	if r.body["status"] != "RISERVATO" || r.body["width_m"] != nil {
		t.Errorf("patched stall = %s", r.raw)
	}
}
