package router

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dmshub/dmsrouter/auth"
	"github.com/dmshub/dmsrouter/national"
	"github.com/dmshub/dmsrouter/pgtest"
)

// dashboard is the origin the browser tests configure for CORS.
const dashboard = "https://cruscotto.example.it"

// browserEnv returns a copy of e served by a router that allows the CORS
// origin dashboard (preflights kept 10 minutes) and caches complete
// national answers for a minute, so that their bodies, which hold each
// leg's duration, stay the same through a test.
func browserEnv(t *testing.T, e *env) *env {
	t.Helper()
	v, err := auth.NewVerifier(auth.Config{HS256Secret: pgtest.TestSecret})
	if err != nil {
		t.Fatal(err)
	}
	fan, err := national.New(national.Config{CacheTTL: time.Minute}, national.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(e.m, v, fan, Options{Now: func() time.Time { return fixedNow },
		CORS: CORS{AllowedOrigins: []string{dashboard}, MaxAge: 10 * time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	b := *e
	b.srv = httptest.NewServer(loadContract(t).validated(b.senders.of, s))
	t.Cleanup(b.srv.Close)
	return &b
}

// vary returns the Vary header values of r joined by ", ".
func (r response) vary() string { return strings.Join(r.header.Values("Vary"), ", ") }

// TestNewRefusesBadOrigin checks that New refuses an origin that is not
// scheme://host, which config validates first.
func TestNewRefusesBadOrigin(t *testing.T) {
	if _, err := New(nil, nil, nil, Options{CORS: CORS{AllowedOrigins: []string{"cruscotto.example.it"}}}); err == nil {
		t.Error(`New(CORS origin "cruscotto.example.it") = nil error, want one`)
	}
}

// TestBrowserSafe runs the browser tests on one deployment: cross-site
// writes, CORS, Cache-Control, ETag and gzip.
func TestBrowserSafe(t *testing.T) {
	e := newEnv(t, "browser", false)
	b := browserEnv(t, e)
	for _, tt := range []struct {
		name string
		test func(*testing.T, *env, *env)
	}{
		{"cross-site writes", testCrossSiteWrites},
		{"CORS", testCORS},
		{"Cache-Control", testCacheControl},
		{"ETag", testETag},
		{"gzip", testGzip},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.test(t, e, b) })
	}
}

// testCrossSiteWrites checks that a write a browser sends from another
// site with the dms_token cookie is refused with a 403 before any shard is
// asked (the shard's rows are unchanged), while same-origin browsers, the
// configured dashboard and non-browser clients with a bearer token write.
func testCrossSiteWrites(t *testing.T, e, b *env) {
	dsn := e.shardDSN(t, "nw")
	cookie := "dms_token=" + e.tokens["lombardia"]
	market := func(code string) string {
		return `{"code":"` + code + `","name":"Mercato di prova","comune":"015146"}`
	}
	for _, tt := range []struct {
		name   string
		srv    *env
		who    string // bearer token; "" sends the cookie
		header []string
		want   int
	}{
		{"cross-site with the cookie", b, "", []string{"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"}, 403},
		{"same-site subdomain with the cookie", b, "", []string{"Sec-Fetch-Site", "same-site", "Origin", "https://evil.example.it"}, 403},
		{"old browser from another origin", b, "", []string{"Origin", "https://evil.example"}, 403},
		{"cross-site without CORS configured", e, "", []string{"Sec-Fetch-Site", "cross-site", "Origin", dashboard}, 403},
		{"cross-site with a bearer token too", b, "lombardia", []string{"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"}, 403},
	} {
		before := writtenRows(t, dsn)
		r := tt.srv.do(t, tt.who, "POST", "/v1/markets", market("MI190"), append([]string{"Cookie", cookie}, tt.header...)...)
		wantStatus(t, tt.name, r, tt.want)
		if r.body["type"] != "/problems/cross-origin" {
			t.Errorf("%s: type = %v, want /problems/cross-origin", tt.name, r.body["type"])
		}
		if after := writtenRows(t, dsn); after != before {
			t.Errorf("%s: shard nw holds %s, want it unchanged: %s", tt.name, after, before)
		}
	}
	for i, tt := range []struct {
		name   string
		who    string
		header []string
	}{
		{"same origin with the cookie", "", []string{"Cookie", cookie, "Sec-Fetch-Site", "same-origin", "Origin", b.srv.URL}},
		{"old browser from the same origin", "", []string{"Cookie", cookie, "Origin", b.srv.URL}},
		{"the configured dashboard with the cookie", "", []string{"Cookie", cookie, "Sec-Fetch-Site", "cross-site", "Origin", dashboard}},
		{"non-browser client with a bearer token", "lombardia", nil},
		{"typed in the address bar", "", []string{"Cookie", cookie, "Sec-Fetch-Site", "none"}},
	} {
		r := b.do(t, tt.who, "POST", "/v1/markets", market("MI19"+string(rune('1'+i))), tt.header...)
		wantStatus(t, tt.name, r, 201)
	}
	r := b.do(t, "", "GET", "/v1/markets", "", "Cookie", cookie, "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example")
	wantStatus(t, "cross-site GET with the cookie", r, 200)
}

// testCORS checks preflights and answers for the configured origin, and
// that an origin not configured gets no CORS headers.
func testCORS(t *testing.T, e, b *env) {
	preflight := []string{"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization, content-type, idempotency-key"}
	r := b.do(t, "", "OPTIONS", "/v1/markets", "", append([]string{"Origin", dashboard}, preflight...)...)
	wantStatus(t, "preflight from the dashboard", r, 204)
	for name, want := range map[string]string{
		"Access-Control-Allow-Origin":      dashboard,
		"Access-Control-Allow-Credentials": "true",
		"Access-Control-Allow-Methods":     "GET, POST, PUT, PATCH, DELETE",
		"Access-Control-Allow-Headers":     "Authorization, Content-Type, Idempotency-Key, If-None-Match, DMS-Consistency, X-Request-ID, traceparent",
		"Access-Control-Max-Age":           "600",
	} {
		if got := r.header.Get(name); got != want {
			t.Errorf("preflight from the dashboard: %s = %q, want %q", name, got, want)
		}
	}
	if !strings.Contains(r.vary(), "Origin") {
		t.Errorf("preflight from the dashboard: Vary = %q, want Origin in it", r.vary())
	}

	r = b.do(t, "", "OPTIONS", "/v1/markets", "", append([]string{"Origin", "https://evil.example"}, preflight...)...)
	if r.status == 204 || r.header.Get("Access-Control-Allow-Origin") != "" || r.header.Get("Access-Control-Allow-Methods") != "" {
		t.Errorf("preflight from another origin = %d with Allow-Origin %q, Allow-Methods %q; want no CORS answer",
			r.status, r.header.Get("Access-Control-Allow-Origin"), r.header.Get("Access-Control-Allow-Methods"))
	}

	r = b.do(t, "lombardia", "GET", "/v1/markets", "", "Origin", dashboard)
	wantStatus(t, "GET from the dashboard", r, 200)
	if got := r.header.Get("Access-Control-Allow-Origin"); got != dashboard {
		t.Errorf("GET from the dashboard: Access-Control-Allow-Origin = %q, want %q", got, dashboard)
	}
	expose := r.header.Get("Access-Control-Expose-Headers")
	for _, h := range []string{"Trace-Id", "traceparent", "X-Request-ID", "DMS-Consistency", "ETag", "Retry-After", "Location"} {
		if !strings.Contains(", "+expose+",", ", "+h+",") {
			t.Errorf("GET from the dashboard: Access-Control-Expose-Headers = %q, want %s in it", expose, h)
		}
	}
	if !strings.Contains(r.vary(), "Origin") {
		t.Errorf("GET from the dashboard: Vary = %q, want Origin in it", r.vary())
	}

	for _, tt := range []struct {
		name, origin string
		srv          *env
	}{
		{"another origin", "https://evil.example", b},
		{"the dashboard's host over http", "http://cruscotto.example.it", b},
		{"a router without CORS", dashboard, e},
	} {
		r := tt.srv.do(t, "lombardia", "GET", "/v1/markets", "", "Origin", tt.origin)
		wantStatus(t, "GET from "+tt.name, r, 200)
		for _, h := range []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Access-Control-Expose-Headers"} {
			if got := r.header.Get(h); got != "" {
				t.Errorf("GET from %s: %s = %q, want none", tt.name, h, got)
			}
		}
	}
	if r := e.do(t, "lombardia", "GET", "/v1/markets", ""); strings.Contains(r.vary(), "Origin") {
		t.Errorf("GET from a router without CORS: Vary = %q, want no Origin", r.vary())
	}
}

// testCacheControl checks that answers of a region and problems are never
// stored, that complete national answers may be kept as long as the
// router's cache keeps them, and that authenticated answers vary by the
// credentials.
func testCacheControl(t *testing.T, e, b *env) {
	for _, tt := range []struct {
		name, who, path string
		srv             *env
		status          int
		want            string
	}{
		{"a vendor (tax codes)", "lombardia", "/v1/vendors/" + ids(vendor03), b, 200, "private, no-store"},
		{"a list of markets", "lombardia", "/v1/markets", b, 200, "private, no-store"},
		{"a problem", "lombardia", "/v1/markets/" + ids(torino), b, 404, "private, no-store"},
		{"no token", "", "/v1/markets", b, 401, "private, no-store"},
		{"national, cached a minute", "national", "/v1/national/summary", b, 200, "private, max-age=60"},
		{"national, not cached", "national", "/v1/national/summary", e, 200, "private, no-store"},
		{"a national problem", "national", "/v1/national/summary?date=tomorrow", b, 400, "private, no-store"},
		{"health", "", "/healthz", b, 200, "private, no-store"},
		{"a problem page", "", "/problems/cross-origin", b, 200, "public, max-age=86400"},
	} {
		r := tt.srv.do(t, tt.who, "GET", tt.path, "")
		wantStatus(t, tt.name, r, tt.status)
		if got := r.header.Get("Cache-Control"); got != tt.want {
			t.Errorf("GET %s (%s): Cache-Control = %q, want %q", tt.path, tt.name, got, tt.want)
		}
		if v := r.vary(); strings.HasPrefix(tt.path, "/v1/") && !strings.Contains(v, "Authorization, Cookie") {
			t.Errorf("GET %s (%s): Vary = %q, want Authorization, Cookie in it", tt.path, tt.name, v)
		}
	}
}

var etagPattern = regexp.MustCompile(`^"[A-Za-z0-9_-]{22}"$`)

// testETag checks the strong ETag of GET answers and the 304s of
// If-None-Match.
func testETag(t *testing.T, e, _ *env) {
	path := "/v1/markets/" + ids(milano)
	identity := []string{"Accept-Encoding", "identity"}
	r := e.do(t, "lombardia", "GET", path, "", identity...)
	wantStatus(t, "GET "+path, r, 200)
	etag := r.header.Get("ETag")
	if !etagPattern.MatchString(etag) || etag != bodyETag([]byte(r.raw), false) {
		t.Fatalf("GET %s: ETag = %q, want the quoted hash of the body, %s", path, etag, bodyETag([]byte(r.raw), false))
	}
	if again := e.do(t, "lombardia", "GET", path, "", identity...); again.header.Get("ETag") != etag {
		t.Errorf("GET %s again: ETag = %q, want the same %q", path, again.header.Get("ETag"), etag)
	}
	for _, tt := range []struct {
		name, inm string
		want      int
	}{
		{"the tag", etag, 304},
		{"the weak tag", "W/" + etag, 304},
		{"a list holding it", `"other", W/"x,y" ,` + etag, 304},
		{"any", "*", 304},
		{"another tag", `"other"`, 200},
		{"the tag unquoted", strings.Trim(etag, `"`), 200},
		{"a malformed list before it", `"other` + etag, 200},
	} {
		r := e.do(t, "lombardia", "GET", path, "", append([]string{"If-None-Match", tt.inm}, identity...)...)
		if r.status != tt.want {
			t.Errorf("GET %s with If-None-Match %s (%s) = %d, want %d", path, tt.inm, tt.name, r.status, tt.want)
		}
		if got := r.header.Get("ETag"); got != etag {
			t.Errorf("GET %s with If-None-Match %s: ETag = %q, want %q", path, tt.inm, got, etag)
		}
		if tt.want == 304 && (r.raw != "" || r.header.Get("Cache-Control") != "private, no-store") {
			t.Errorf("GET %s with If-None-Match %s: 304 with body %q and Cache-Control %q, want no body and private, no-store",
				path, tt.inm, r.raw, r.header.Get("Cache-Control"))
		}
	}
	other := e.do(t, "lombardia", "GET", "/v1/markets/"+ids(bergamo), "", identity...)
	if other.header.Get("ETag") == etag {
		t.Errorf("two markets have the same ETag %s", etag)
	}
	page := e.do(t, "", "GET", "/problems/cross-origin", "", identity...)
	if got := page.header.Get("ETag"); got != bodyETag([]byte(page.raw), false) {
		t.Errorf("GET /problems/cross-origin: ETag = %q, want the quoted hash of the page", got)
	}
	w := e.do(t, "lombardia", "PATCH", path, `{"name":"Mercato di Via Papiniano"}`)
	wantStatus(t, "PATCH "+path, w, 200)
	if got := w.header.Get("ETag"); got != "" {
		t.Errorf("PATCH %s: ETag = %q, want none (only GET answers carry one)", path, got)
	}
}

// testGzip checks that a large answer goes gzip-compressed to the clients
// that accept gzip, with its own ETag and the compressed length, and as it
// is to the others and when small.
func testGzip(t *testing.T, e, b *env) {
	path := "/v1/national/summary"
	plain := b.do(t, "national", "GET", path, "", "Accept-Encoding", "identity")
	wantStatus(t, "GET "+path, plain, 200)
	if len(plain.raw) < gzipMinSize {
		t.Fatalf("GET %s: %d bytes, want a body of at least %d for this test", path, len(plain.raw), gzipMinSize)
	}
	for _, tt := range []struct {
		accept string
		zip    bool
	}{
		{"gzip", true},
		{"gzip, deflate, br, zstd", true},
		{"br;q=1.0, GZIP;q=0.1", true},
		{"x-gzip", true},
		{"*", true},
		{"identity, *;q=0.5", true},
		{"gzip;q=0", false},
		{"gzip; q=0.000", false},
		{"*, gzip;q=0", false},
		{"*;q=0", false},
		{"br, deflate", false},
		{"identity", false},
		{"gzip;q=abc", false},
	} {
		r := b.do(t, "national", "GET", path, "", "Accept-Encoding", tt.accept)
		wantStatus(t, "GET with Accept-Encoding "+tt.accept, r, 200)
		if !strings.Contains(r.vary(), "Accept-Encoding") {
			t.Errorf("Accept-Encoding %q: Vary = %q, want Accept-Encoding in it", tt.accept, r.vary())
		}
		if got := r.header.Get("Content-Length"); got != strconv.Itoa(len(r.raw)) {
			t.Errorf("Accept-Encoding %q: Content-Length = %s, want the %d bytes sent", tt.accept, got, len(r.raw))
		}
		if !tt.zip {
			if ce := r.header.Get("Content-Encoding"); ce != "" || r.raw != plain.raw || r.header.Get("ETag") != plain.header.Get("ETag") {
				t.Errorf("Accept-Encoding %q: Content-Encoding %q, ETag %s; want the identity body and ETag %s",
					tt.accept, ce, r.header.Get("ETag"), plain.header.Get("ETag"))
			}
			continue
		}
		if ce := r.header.Get("Content-Encoding"); ce != "gzip" {
			t.Errorf("Accept-Encoding %q: Content-Encoding = %q, want gzip", tt.accept, ce)
			continue
		}
		zr, err := gzip.NewReader(strings.NewReader(r.raw))
		if err != nil {
			t.Fatalf("Accept-Encoding %q: %v", tt.accept, err)
		}
		body, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(body, []byte(plain.raw)) {
			t.Errorf("Accept-Encoding %q: gunzipped body = %.80q, %v; want the identity body %.80q", tt.accept, body, err, plain.raw)
		}
		if len(r.raw) >= len(plain.raw) {
			t.Errorf("Accept-Encoding %q: %d bytes compressed, want fewer than %d", tt.accept, len(r.raw), len(plain.raw))
		}
		want := strings.TrimSuffix(plain.header.Get("ETag"), `"`) + `-gzip"`
		if got := r.header.Get("ETag"); got != want {
			t.Errorf("Accept-Encoding %q: ETag = %s, want %s", tt.accept, got, want)
		}
		if nm := b.do(t, "national", "GET", path, "", "Accept-Encoding", tt.accept, "If-None-Match", want); nm.status != 304 || nm.raw != "" {
			t.Errorf("Accept-Encoding %q with If-None-Match %s = %d %q, want 304 and no body", tt.accept, want, nm.status, nm.raw)
		}
	}
	small := e.do(t, "lombardia", "GET", "/v1/markets/"+ids(milano), "", "Accept-Encoding", "gzip")
	if len(small.raw) >= gzipMinSize || small.header.Get("Content-Encoding") != "" {
		t.Errorf("GET of a %d-byte market with Accept-Encoding gzip: Content-Encoding = %q, want none below %d bytes",
			len(small.raw), small.header.Get("Content-Encoding"), gzipMinSize)
	}
}

// TestAcceptsGzip checks the Accept-Encoding parsing on several header
// lines, which the HTTP tests cannot send.
func TestAcceptsGzip(t *testing.T) {
	for _, tt := range []struct {
		values []string
		want   bool
	}{
		{nil, false},
		{[]string{""}, false},
		{[]string{"br", "gzip"}, true},
		{[]string{"gzip", "gzip;q=0"}, true}, // the highest q of a coding counts
		{[]string{"*;q=0.3", "gzip;q=0"}, false},
		{[]string{"deflate;q=0.5;foo=bar", " GZip ; Q=0.2"}, true},
		{[]string{"gzip;q=1.5"}, false},
	} {
		if got := acceptsGzip(tt.values); got != tt.want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", tt.values, got, tt.want)
		}
	}
}

// TestNoneMatchFails checks the If-None-Match parsing on several header
// lines, which the HTTP tests cannot send.
func TestNoneMatchFails(t *testing.T) {
	etag := `"abc"`
	for _, tt := range []struct {
		values []string
		want   bool
	}{
		{[]string{`"x"`, `"abc"`}, true},
		{[]string{`"x"`, `W/"abc"`}, true},
		{[]string{``, ` , ,"abc"`}, true},
		{[]string{`"abc-gzip"`}, false},
		{[]string{`W/ "abc"`}, false},
		{[]string{`"ab`}, false},
		{[]string{`abc`, `"abc"`}, true}, // a bad line leaves the others
	} {
		if got := noneMatchFails(tt.values, etag); got != tt.want {
			t.Errorf("noneMatchFails(%q, %s) = %v, want %v", tt.values, etag, got, tt.want)
		}
	}
}
