package router

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dmshub/dmsrouter/auth"
	"github.com/dmshub/dmsrouter/pgtest"
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

// TestCutBody sends a body slower than the server's read timeout, and a
// body its client stops sending (half-closing the connection), through a
// raw connection: the first is 408, the second the client-closed outcome
// 499, and neither is logged as an error.
func TestCutBody(t *testing.T) {
	e := newEnv(t, "cut", false)
	var logs syncBuffer
	v, err := auth.NewVerifier(auth.Config{HS256Secret: pgtest.TestSecret})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(e.m, v, e.national, Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil)), Now: func() time.Time { return fixedNow }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(loadContract(t).validated(func(*http.Request) testing.TB { return t }, s))
	srv.Config.ReadTimeout = 500 * time.Millisecond
	srv.Start()
	defer srv.Close()

	head := "POST /v1/markets HTTP/1.1\r\nHost: dms\r\nAuthorization: Bearer " + e.tokens["lombardia"] +
		"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"code\":"
	tests := []struct {
		name     string
		halfOpen bool // stop sending: close the connection's write side
		status   int
		typ      string
	}{
		{"slow body", false, http.StatusRequestTimeout, "/problems/request-timeout"},
		{"cut body", true, statusClientClosedRequest, "/problems/client-closed-request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, head); err != nil {
				t.Fatal(err)
			}
			if tt.halfOpen {
				if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
					t.Fatal(err)
				}
			}
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tt.status || !strings.Contains(string(body), `"type":"`+tt.typ+`"`) {
				t.Errorf("%s = %d %s, want %d %s", tt.name, res.StatusCode, body, tt.status, tt.typ)
			}
		})
	}
	srv.Close() // waits for the handlers, and so for their log lines
	if strings.Contains(logs.String(), `"level":"ERROR"`) {
		t.Errorf("log holds errors:\n%s", logs.String())
	}
}

// syncBuffer is a bytes.Buffer that handlers may write concurrently.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestContentType sends every POST and PATCH route its body under other
// media types, or none: each is 415, so a browser cannot send a write
// across sites without a preflight. JSON with a UTF-8 charset passes.
func TestContentType(t *testing.T) {
	e := newEnv(t, "ctype", false)
	mid := ids(milano)
	routes := []struct{ method, path, body string }{
		{"POST", "/v1/markets", `{}`},
		{"PATCH", "/v1/markets/" + mid, `{}`},
		{"POST", "/v1/markets/" + mid + "/stalls", `{}`},
		{"PATCH", "/v1/stalls/" + ids(stallMI1), `{}`},
		{"POST", "/v1/vendors", `{}`},
		{"PATCH", "/v1/vendors/" + ids(vendor03), `{}`},
		{"POST", "/v1/concessions", `{}`},
		{"POST", "/v1/concessions/" + ids(concMI) + "/status", `{}`},
		{"POST", "/v1/markets/" + mid + "/presences", `{}`},
		{"POST", "/v1/presences/batch", `{"rows":[]}`},
		{"POST", "/v1/markets/" + mid + "/spunta?date=2026-06-01", ``},
		{"POST", "/v1/markets/" + mid + "/spunta?date=2026-06-02", `{}`},
	}
	refused := []string{"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
		"application/jsonx", "application/json; charset=iso-8859-1", "application/json;;"}
	for _, rt := range routes {
		for _, ct := range refused {
			t.Run(rt.method+" "+rt.path+" "+ct, func(t *testing.T) {
				r := e.do(t, "lombardia", rt.method, rt.path, rt.body, "Content-Type", ct)
				wantStatus(t, fmt.Sprintf("%s %s as %q", rt.method, rt.path, ct), r, 415)
				if r.body["type"] != "/problems/unsupported-media-type" {
					t.Errorf("problem = %s", r.raw)
				}
			})
		}
		t.Run(rt.method+" "+rt.path+" JSON", func(t *testing.T) {
			r := e.do(t, "lombardia", rt.method, rt.path, rt.body, "Content-Type", "Application/JSON; charset=UTF-8")
			if r.status == 415 || r.status >= 500 {
				t.Errorf("%s %s as JSON = %d %s", rt.method, rt.path, r.status, r.raw)
			}
		})
	}
}

// TestHygiene checks the headers every answer carries, that every problem
// type of the error table resolves to a page, and that a 404 says what was
// not found.
func TestHygiene(t *testing.T) {
	e := newEnv(t, "hygiene", false)
	for _, tt := range []struct {
		name, who, method, path string
		status                  int
	}{
		{"a list", "lombardia", "GET", "/v1/regions", 200},
		{"health", "", "GET", "/healthz", 200},
		{"no token", "", "GET", "/v1/markets", 401},
		{"bad input", "lombardia", "GET", "/v1/markets?q=%00", 400},
		{"no route", "lombardia", "GET", "/v1/foo", 404},
		{"no method", "lombardia", "DELETE", "/v1/markets", 405},
		{"a problem page", "", "GET", "/problems/not-found", 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, tt.who, tt.method, tt.path, "")
			wantStatus(t, tt.method+" "+tt.path, r, tt.status)
			if got := r.header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q, want nosniff", got)
			}
			if got := r.header.Get("Content-Security-Policy"); got != "default-src 'none'; frame-ancestors 'none'" {
				t.Errorf("Content-Security-Policy = %q", got)
			}
		})
	}

	types := []string{internalProblem.Type}
	for _, row := range problemTable {
		types = append(types, row.problem.Type)
	}
	for _, typ := range types {
		r := e.get(t, "", typ)
		p, _ := problemPageOf(typ)
		if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") || !strings.Contains(r.raw, p.Title) {
			t.Errorf("GET %s = %d %q %s, want a page titled %q", typ, r.status, r.header.Get("Content-Type"), r.raw, p.Title)
		}
	}

	for _, tt := range []struct{ name, path, detail string }{
		{"no route", "/v1/foo", "no route GET /v1/foo"},
		{"no problem type", "/problems/nope", "no problem type /problems/nope"},
		{"no region's id", "/v1/markets/5", "in your territory"},
		{"no such market", "/v1/markets/" + ids(regions.MakeID("03", 99)), "in your territory"},
	} {
		r := e.get(t, "lombardia", tt.path)
		if detail, _ := r.body["detail"].(string); r.status != 404 || !strings.Contains(detail, tt.detail) {
			t.Errorf("GET %s = %d %s, want 404 with a detail holding %q", tt.path, r.status, r.raw, tt.detail)
		}
	}
}

// TestPlainQuery checks the fast path of requestText: a query it calls
// plain parses, and its names and values are text PostgreSQL can store;
// anything else is left to the parser and the checks.
func TestPlainQuery(t *testing.T) {
	for _, tc := range []struct {
		q    string
		want bool
	}{
		{"", true},
		{"comune=015146&limit=50", true},
		{"q=via+roma&cursor=AbC-_.~&status=ATTIVA", true},
		{"a&&b=&=c", true},
		{"q=%41", false},
		{"q=%00", false},
		{"q=%zz", false},
		{"a=1;b=2", false},
		{"q=caff\xc3\xa8", false},
		{"q=\xff", false},
		{"q=a\x00b", false},
		{"q=a\tb", false},
		{"q=a\x7fb", false},
	} {
		if got := plainQuery(tc.q); got != tc.want {
			t.Errorf("plainQuery(%q) = %v, want %v", tc.q, got, tc.want)
		}
		if !tc.want {
			continue
		}
		vals, err := url.ParseQuery(tc.q)
		if err != nil {
			t.Errorf("plainQuery(%q) = true, but url.ParseQuery fails: %v", tc.q, err)
		}
		for name, vs := range vals {
			for _, v := range append(vs, name) {
				if msg := badText(v); msg != "" {
					t.Errorf("plainQuery(%q) = true, but %q %s", tc.q, v, msg)
				}
			}
		}
	}
}
