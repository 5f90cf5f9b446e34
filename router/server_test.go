package router

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/dmshub/dmsrouter/auth"
	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/regions"
)

func TestBadInput(t *testing.T) {
	e := newEnv(t, "bad", false)
	mid := strconv.FormatInt(milano, 10)
	tests := []struct{ name, who, path, field string }{
		{"non-numeric id", "lombardia", "/v1/markets/abc", "id"},
		{"negative id", "lombardia", "/v1/markets/-5", "id"},
		{"limit 0", "lombardia", "/v1/markets?limit=0", "limit"},
		{"limit 101", "lombardia", "/v1/markets?limit=101", "limit"},
		{"limit word", "lombardia", "/v1/markets?limit=ten", "limit"},
		{"negative offset", "lombardia", "/v1/markets?offset=-1", "offset"},
		{"bad date", "milano", "/v1/markets/" + mid + "/presences?date=2026-02-30", "date"},
		{"bad date format", "milano", "/v1/markets/" + mid + "/presences?date=15/06/2026", "date"},
		{"bad expiring_before", "lombardia", "/v1/concessions?expiring_before=tomorrow", "expiring_before"},
		{"unknown region", "national", "/v1/markets?region=21", "region"},
		{"region not two digits", "national", "/v1/markets?region=3", "region"},
		{"unknown province", "national", "/v1/markets?province=999", "province"},
		{"unknown comune", "national", "/v1/markets?comune=215146", "comune"},
		{"comune not in the ISTAT list", "national", "/v1/markets?comune=015999", "comune"},
		{"unknown parameter", "lombardia", "/v1/markets?colour=red", "colour"},
		{"repeated parameter", "lombardia", "/v1/markets?status=ACTIVE&status=INACTIVE", "status"},
		{"bad status", "lombardia", "/v1/markets?status=open", "status"},
		{"bad stall type", "milano", "/v1/markets/" + mid + "/stalls?type=big", "type"},
		{"bad concession status", "lombardia", "/v1/concessions?status=attiva", "status"},
		{"bad market_id", "lombardia", "/v1/concessions?market_id=x", "market_id"},
		{"bad partita iva", "lombardia", "/v1/vendors?partita_iva=123", "partita_iva"},
		{"bad cursor", "lombardia", "/v1/markets?cursor=notacursor", "cursor"},
		{"cursor with offset", "lombardia", "/v1/markets?cursor=x&offset=2", "cursor"},
		{"conflicting regions", "national", "/v1/markets?region=03&comune=001272", "region"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.get(t, tt.who, tt.path)
			if r.status != 400 {
				t.Fatalf("GET %s = %d %s, want 400", tt.path, r.status, r.raw)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type = %q, want application/problem+json", ct)
			}
			if r.body["status"] != 400.0 || r.body["title"] == "" || r.body["type"] == "" {
				t.Errorf("problem = %s", r.raw)
			}
			if !strings.Contains(r.raw, `"field":"`+tt.field+`"`) {
				t.Errorf("problem %s does not name field %q", r.raw, tt.field)
			}
		})
	}

	// Ids that are numbers but no region's ids do not exist.
	if r := e.get(t, "lombardia", "/v1/markets/5"); r.status != 404 {
		t.Errorf("GET /v1/markets/5 = %d, want 404", r.status)
	}
	if r := e.get(t, "lombardia", "/v1/nothing"); r.status != 404 || r.header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("unknown route = %d %q", r.status, r.header.Get("Content-Type"))
	}
	req, _ := http.NewRequest(http.MethodDelete, e.srv.URL+"/v1/markets", nil)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 405 {
		t.Errorf("DELETE /v1/markets = %v %v, want 405", res.StatusCode, err)
	}
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t, "auth", false)
	expired, _ := auth.SignHS256(pgtest.TestSecret, auth.Principal{Subject: "u", Role: "admin_pa", Territory: regions.Territory{Level: regions.National}}, time.Minute, fixedNow.Add(-time.Hour))
	wrong, _ := auth.SignHS256("another-secret-0123456789", auth.Principal{Subject: "u", Role: "admin_pa", Territory: regions.Territory{Level: regions.National}}, time.Hour, fixedNow)
	for name, header := range map[string]string{
		"missing":      "",
		"malformed":    "Bearer abc.def",
		"expired":      "Bearer " + expired,
		"wrong secret": "Bearer " + wrong,
		"alg none":     "Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1Iiwicm9sZSI6ImFkbWluX3BhIiwidGVycml0b3J5IjoibmF0aW9uYWwiLCJleHAiOjQxMDI0NDQ4MDB9.",
		"wrong scheme": "Basic dTpw",
	} {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/v1/regions", nil)
			if header != "" {
				req.Header.Set("Authorization", header)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != 401 || res.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("GET /v1/regions with %s token = %d, want 401 with WWW-Authenticate", name, res.StatusCode)
			}
		})
	}
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/v1/markets", nil)
	req.AddCookie(&http.Cookie{Name: "dms_token", Value: e.tokens["milano"]})
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Errorf("GET with cookie = %v %v, want 200", res.StatusCode, err)
	}
}

func TestPagination(t *testing.T) {
	e := newEnv(t, "page", false)
	r := e.get(t, "lombardia", "/v1/markets?limit=1")
	if r.status != 200 || r.body["limit"] != 1.0 || r.body["offset"] != 0.0 || r.body["total"] != 2.0 || r.field("code") != "BG001" {
		t.Fatalf("page 1 = %s", r.raw)
	}
	cur, _ := r.body["next_cursor"].(string)
	if cur == "" {
		t.Fatalf("page 1 has no next_cursor: %s", r.raw)
	}
	r = e.get(t, "lombardia", "/v1/markets?limit=1&cursor="+cur)
	if r.field("code") != "MI001" || r.body["next_cursor"] != nil || r.body["total"] != 2.0 {
		t.Errorf("page 2 by cursor = %s", r.raw)
	}
	r = e.get(t, "lombardia", "/v1/markets?limit=1&offset=1")
	if r.field("code") != "MI001" || r.body["offset"] != 1.0 || r.body["total"] != 2.0 {
		t.Errorf("page 2 by offset = %s", r.raw)
	}
	r = e.get(t, "lombardia", "/v1/markets?offset=50")
	if r.status != 200 || r.field("code") != "" || r.body["total"] != 2.0 {
		t.Errorf("page past the end = %s", r.raw)
	}
	// A cursor of another list is refused.
	v := e.get(t, "lombardia", "/v1/vendors?limit=1")
	vc, _ := v.body["next_cursor"].(string)
	if r := e.get(t, "lombardia", "/v1/markets?cursor="+vc); r.status != 400 {
		t.Errorf("markets with a vendors cursor = %d, want 400", r.status)
	}
}

func TestStoppedShard(t *testing.T) {
	e := newEnv(t, "stop", true)
	if r := e.get(t, "national", "/v1/markets?region=12"); r.status != 200 {
		t.Fatalf("before stop: %d %s", r.status, r.raw)
	}
	if err := e.owned.Halt(); err != nil {
		t.Fatal(err)
	}
	// Every request for Lazio fails fast with 503 and Retry-After; the
	// breaker opens after 3 failures; other regions keep answering.
	for i := range 5 {
		r := e.get(t, "national", "/v1/markets?region=12")
		if r.status != 503 || r.header.Get("Retry-After") == "" || r.header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("request %d for a stopped shard = %d %v %s, want 503 with Retry-After", i, r.status, r.header, r.raw)
		}
		if r := e.get(t, "national", "/v1/markets?region=03"); r.status != 200 {
			t.Fatalf("another region while Lazio is down = %d %s", r.status, r.raw)
		}
	}
	lazio, _ := e.m.For("12")
	if got := lazio.State(); got != "open" {
		t.Errorf("breaker after failures = %s, want open", got)
	}
	if nw, _ := e.m.For("03"); nw.State() != "closed" {
		t.Errorf("healthy shard's breaker = %s, want closed", nw.State())
	}
	if r := e.get(t, "", "/readyz"); r.status != 200 || !strings.Contains(r.raw, `"lazio":"unavailable"`) {
		t.Errorf("readyz with one shard down = %d %s", r.status, r.raw)
	}
	if err := e.owned.Resume(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The open breaker still refuses until its timeout lets a probe through,
	// and the successful probe closes it.
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := e.get(t, "national", "/v1/markets?region=12")
		if r.status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Lazio did not recover: %d %s", r.status, r.raw)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := lazio.State(); got != "closed" {
		t.Errorf("breaker after recovery = %s, want closed", got)
	}
}

func TestClientErrorsNeverOpenTheBreaker(t *testing.T) {
	e := newEnv(t, "client", false)
	for range 10 {
		e.get(t, "lombardia", "/v1/markets/"+strconv.FormatInt(regions.MakeID("03", 999), 10))
		e.get(t, "milano", "/v1/markets/"+strconv.FormatInt(bergamo, 10))
		e.get(t, "lombardia", "/v1/markets?limit=0")
	}
	sh, _ := e.m.For("03")
	if got := sh.State(); got != "closed" {
		t.Errorf("breaker after 30 client errors = %s, want closed", got)
	}
}

func TestTelemetry(t *testing.T) {
	e := newEnv(t, "tel", false)
	e.get(t, "lombardia", "/v1/markets")
	raw := e.metrics(t)
	for _, want := range []string{
		`http_server_request_duration_seconds_bucket{`,
		`http_route="/v1/markets"`,
		`region="03"`,
		`dms_shard_query_duration_seconds_bucket{`,
		`dms_shard_breaker_state{`,
		`dms_shard_pool_connections{`,
	} {
		if !strings.Contains(raw, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	var server, shard sdktrace.ReadOnlySpan
	for _, s := range e.spans.Ended() {
		switch s.Name() {
		case "GET /v1/markets":
			server = s
		case "shard.read":
			shard = s
		}
	}
	if server == nil || shard == nil {
		t.Fatalf("spans: server %v, shard %v; want both", server, shard)
	}
	if shard.Parent().SpanID() != server.SpanContext().SpanID() {
		t.Errorf("shard span's parent = %s, want the request span %s", shard.Parent().SpanID(), server.SpanContext().SpanID())
	}
}
