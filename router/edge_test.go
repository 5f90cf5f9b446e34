package router

import (
	"encoding/base64"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// TestBadBytes sends a NUL character or invalid UTF-8 in every place a
// request carries text: each is a 400 that names the place, answered
// before any shard is asked (the national list starts no leg).
func TestBadBytes(t *testing.T) {
	var legs atomic.Int64
	e := startEnv(t, "bytes", false, func(regions.Code) { legs.Add(1) })
	nulCursor := base64.RawURLEncoding.EncodeToString([]byte(`{"l":"markets","t":"\u0000","i":5}`))
	nationalNulCursor := base64.RawURLEncoding.EncodeToString([]byte(`{"l":"national-markets","t":"\u0000","i":5}`))
	mid := ids(milano)
	tests := []struct{ name, who, method, path, body, field string }{
		{"NUL in a query value", "lombardia", "GET", "/v1/markets?q=%00", "", "q"},
		{"invalid UTF-8 in a query value", "lombardia", "GET", "/v1/markets?q=%ff", "", "q"},
		{"NUL in a query key", "lombardia", "GET", "/v1/markets?%00=1", "", "query"},
		{"NUL in a national query", "national", "GET", "/v1/markets?q=a%00b", "", "q"},
		{"invalid UTF-8 in a national query", "national", "GET", "/v1/markets?q=%c3%28", "", "q"},
		{"NUL in the national summary's query", "national", "GET", "/v1/national/summary?x=%00", "", "x"},
		{"NUL in a cursor", "lombardia", "GET", "/v1/markets?cursor=" + nulCursor, "", "cursor"},
		{"NUL in the path", "lombardia", "GET", "/v1/markets%00", "", "path"},
		{"invalid UTF-8 in the path", "lombardia", "GET", "/v1/%ff", "", "path"},
		{"NUL in a spunta's query", "lombardia", "POST", "/v1/markets/" + mid + "/spunta?date=%00", "", "date"},
		{"NUL in a market name", "lombardia", "POST", "/v1/markets", `{"code":"MI050","name":"Mercato\u0000","comune":"015146"}`, "body"},
		{"invalid UTF-8 in a market name", "lombardia", "POST", "/v1/markets", "{\"code\":\"MI051\",\"name\":\"Mercato\xff\",\"comune\":\"015146\"}", "body"},
		{"NUL in a patched name", "lombardia", "PATCH", "/v1/markets/" + mid, `{"name":"\u0000"}`, "body"},
		{"NUL in a key", "lombardia", "PATCH", "/v1/markets/" + mid, `{"na\u0000me":"x"}`, "body"},
		{"NUL in a vendor's denominazione", "lombardia", "PATCH", "/v1/vendors/" + ids(vendor03), `{"denominazione":"Rossi\u0000"}`, "body"},
		{"NUL in a reason", "lombardia", "POST", "/v1/concessions/" + ids(concMI) + "/status", `{"status":"SOSPESA","reason":"\u0000"}`, "body"},
		{"invalid UTF-8 in a batch", "lombardia", "POST", "/v1/presences/batch",
			fmt.Sprintf("{\"rows\":[{\"market_id\":%d,\"vendor_id\":%d,\"date\":\"2026-06-14\",\"kind\":\"SPUNTA\xff\"}]}", milano, vendorFB), "body"},
		{"NUL in a batch", "lombardia", "POST", "/v1/presences/batch",
			fmt.Sprintf(`{"rows":[{"market_id":%d,"vendor_id":%d,"date":"2026-06-14","kind":"SPUNTA\u0000"}]}`, milano, vendorFB), "body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, tt.who, tt.method, tt.path, tt.body)
			wantStatus(t, tt.method+" "+tt.path, r, 400)
			wantField(t, tt.name, r, tt.field)
		})
	}
	if n := legs.Load(); n != 0 {
		t.Errorf("bad bytes started %d national legs, want 0", n)
	}

	// The legs of the national list decode the cursor before they ask
	// their shard.
	r := e.get(t, "national", "/v1/markets?cursor="+nationalNulCursor)
	wantStatus(t, "GET national list with a NUL in the cursor", r, 400)
	wantField(t, "national cursor", r, "cursor")

	// An escaped backslash before u0000 is not a NUL.
	r = e.do(t, "lombardia", "PATCH", "/v1/markets/"+mid, `{"name":"Mercato \\u0000"}`)
	wantStatus(t, `PATCH name "Mercato \\u0000"`, r, 200)
}

// TestTextSQLStates maps the database's refusals of text it cannot store
// to 400, which a shard's breaker does not count.
func TestTextSQLStates(t *testing.T) {
	for _, code := range []string{"22021", "22P05"} {
		err := fmt.Errorf("list markets: %w", &pgconn.PgError{Code: code})
		if p, _ := toProblem(err); p.Status != 400 {
			t.Errorf("toProblem(SQLSTATE %s) = %d, want 400", code, p.Status)
		}
		if shardmap.IsInfrastructure(err) {
			t.Errorf("IsInfrastructure(SQLSTATE %s) = true, want false", code)
		}
	}
}
