package router

import (
	"testing"

	"github.com/dmshub/dmsrouter/pgtest"
)

// TestSchemaMismatch checks what a region answers when its database lacks
// a column the router's statements name, as when routers of a new version
// are rolled out before `dmsrouter migrate up`: a read and a write are 503
// /problems/schema-mismatch with Retry-After, not 500; nothing is written;
// the breaker stays closed (the database answers, it is its schema); and
// the region serves again once the schema is put right. The same holds
// for the login role's right to read the read fence's table.
func TestSchemaMismatch(t *testing.T) {
	e := newEnv(t, "schema", false)
	nw := e.shardDSN(t, "nw")
	pgtest.Exec(t, nw, `ALTER TABLE markets RENAME COLUMN name TO name_before`)

	wantSchema := func(t *testing.T, what string, r response) {
		t.Helper()
		wantStatus(t, what, r, 503)
		if r.body["type"] != "/problems/schema-mismatch" || r.header.Get("Retry-After") != "30" {
			t.Errorf("%s = %s with Retry-After %q, want /problems/schema-mismatch with Retry-After 30", what, r.raw, r.header.Get("Retry-After"))
		}
	}
	for range 6 { // more than the breaker's failures
		wantSchema(t, "GET milano", e.get(t, "lombardia", "/v1/markets/"+ids(milano)))
	}
	wantSchema(t, "POST /v1/markets", e.do(t, "lombardia", "POST", "/v1/markets", `{"code":"MI900","name":"Mai scritto","comune":"015146"}`))
	if n := scalar(t, nw, `SELECT count(*) FROM markets WHERE code = 'MI900'`); n != 0 {
		t.Errorf("a refused write left %d markets", n)
	}
	sh, err := e.m.For("03")
	if err != nil || sh.State() != "closed" {
		t.Fatalf("the shard of 03 is %v (%v), want its breaker closed", sh.State(), err)
	}

	pgtest.Exec(t, nw, `ALTER TABLE markets RENAME COLUMN name_before TO name`)
	wantStatus(t, "GET milano once the schema is right", e.get(t, "lombardia", "/v1/markets/"+ids(milano)), 200)

	// A read's fence reads dms.shard_regions as the login role, which
	// migration 00010 lets it: without that right the region's reads are
	// a schema mismatch too.
	pgtest.Exec(t, nw, `REVOKE SELECT ON dms.shard_regions FROM dms_app`)
	wantSchema(t, "GET milano without the right to read dms.shard_regions", e.get(t, "lombardia", "/v1/markets/"+ids(milano)))
	pgtest.Exec(t, nw, `GRANT SELECT ON dms.shard_regions TO dms_app`)
	wantStatus(t, "GET milano with the right again", e.get(t, "lombardia", "/v1/markets/"+ids(milano)), 200)
}
