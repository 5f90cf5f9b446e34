package router

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dmshub/dmsrouter/auth"
	"github.com/dmshub/dmsrouter/national"
	"github.com/dmshub/dmsrouter/pgtest"
)

// TestNationalRateLimit checks national.rate_limit: a principal's national
// requests beyond the burst are answered 429 with Retry-After, another
// principal and the regional routes are not affected, and new settings
// (a reload) apply to the next request.
func TestNationalRateLimit(t *testing.T) {
	e := newEnv(t, "ratelimit", false)
	e.addToken(t, "national2", "admin_pa", "national")
	// The server's clock stands still (fixedNow): no bucket refills.
	e.national.SetConfig(national.Config{LegTimeout: 5 * time.Second, RateLimit: 0.5, RateBurst: 3})
	summary := "/v1/national/summary"

	for i := range 3 {
		wantStatus(t, "national request "+strconv.Itoa(i+1)+" of the burst", e.get(t, "national", summary), http.StatusOK)
	}
	r := e.get(t, "national", summary)
	wantStatus(t, "the request after the burst", r, http.StatusTooManyRequests)
	if got := r.header.Get("Content-Type"); got != "application/problem+json" {
		t.Errorf("429 Content-Type = %q, want application/problem+json", got)
	}
	if r.body["type"] != "/problems/rate-limited" {
		t.Errorf("429 type = %v, want /problems/rate-limited", r.body["type"])
	}
	// 0.5 requests per second: one more in 2s.
	if got := r.header.Get("Retry-After"); got != "2" {
		t.Errorf("429 Retry-After = %q, want 2", got)
	}
	wantStatus(t, "another national principal", e.get(t, "national2", summary), http.StatusOK)
	wantStatus(t, "a regional route of the limited principal", e.get(t, "national", "/v1/markets?region=03"), http.StatusOK)
	wantStatus(t, "a regional principal's regional route", e.get(t, "lombardia", "/v1/markets"), http.StatusOK)
	wantStatus(t, "a regional principal's national route (403 before the limit)", e.get(t, "lombardia", summary), http.StatusForbidden)

	e.national.SetConfig(national.Config{LegTimeout: 5 * time.Second, RateLimit: 0.25, RateBurst: 1})
	wantStatus(t, "the first request under new settings", e.get(t, "national", summary), http.StatusOK)
	r = e.get(t, "national", summary)
	wantStatus(t, "the second request under new settings", r, http.StatusTooManyRequests)
	if got := r.header.Get("Retry-After"); got != "4" {
		t.Errorf("429 Retry-After with 0.25/s = %q, want 4", got)
	}
	e.national.SetConfig(national.Config{LegTimeout: 5 * time.Second})
	wantStatus(t, "a request with the limit off", e.get(t, "national", summary), http.StatusOK)
}

// TestPrincipalLimitsBounded checks that the buckets stay at most
// maxLimited however many principals call, and that full buckets are the
// first to go.
func TestPrincipalLimitsBounded(t *testing.T) {
	var l principalLimits
	now := time.Date(2026, 6, 15, 10, 0, 0, 0, time.UTC)
	for i := range maxLimited + 100 {
		if _, ok := l.take("p"+strconv.Itoa(i), 1, 2, now); !ok {
			t.Fatalf("take(p%d) refused the first request", i)
		}
	}
	if n := l.size(); n > maxLimited {
		t.Errorf("buckets after %d principals = %d, want at most %d", maxLimited+100, n, maxLimited)
	}
	// An hour later every bucket is full again: the next new principal
	// sweeps them all.
	for i := 0; l.size() < maxLimited; i++ {
		l.take("q"+strconv.Itoa(i), 1, 2, now)
	}
	l.take("late", 1, 2, now.Add(time.Hour))
	if n := l.size(); n != 1 {
		t.Errorf("buckets after a sweep of full ones = %d, want 1", n)
	}
	// A limited principal stays limited across new principals.
	l.take("busy", 1, 1, now)
	if wait, ok := l.take("busy", 1, 1, now); ok || wait != time.Second {
		t.Errorf("take(busy) again = %s, %v; want 1s, false", wait, ok)
	}
}

// BenchmarkPrincipalLimits measures what the rate limit adds to a national
// request: one take from a bucket, among 1,000 principals.
func BenchmarkPrincipalLimits(b *testing.B) {
	var l principalLimits
	now := time.Date(2026, 6, 15, 10, 0, 0, 0, time.UTC)
	subjects := make([]string, 1000)
	for i := range subjects {
		subjects[i] = "p" + strconv.Itoa(i)
	}
	i := 0
	for b.Loop() {
		l.take(subjects[i%len(subjects)], 1000, 1000, now.Add(time.Duration(i)*time.Millisecond))
		i++
	}
}

// TestMaxInFlight checks server.max_in_flight on a router that takes one
// API request at a time: while a read waits on a locked table, the next
// API request is refused at once, 503 /problems/overloaded with
// Retry-After, before its token is looked at (one without a token too);
// /healthz and /readyz still answer; once the read is answered, the slot
// is free again. It asserts no timings.
func TestMaxInFlight(t *testing.T) {
	e := newEnv(t, "maxinflight", false)
	v, err := auth.NewVerifier(auth.Config{HS256Secret: pgtest.TestSecret})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(e.m, v, e.national, Options{Now: func() time.Time { return fixedNow }, MaxInFlight: 1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	get := func(path, token string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	nw, err := e.m.For("03")
	if err != nil {
		t.Fatal(err)
	}
	unlock := pgtest.Lock(t, nw.Config().AdminDSN(), "markets")
	first := make(chan int, 1)
	go func() {
		resp, _ := get("/v1/markets", e.tokens["lombardia"])
		first <- resp.StatusCode
	}()
	for len(s.inFlight) == 0 { // the read holds the slot, waiting for the lock
		time.Sleep(time.Millisecond)
	}
	for _, token := range []string{e.tokens["milano"], ""} {
		resp, body := get("/v1/markets", token)
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, `"/problems/overloaded"`) || resp.Header.Get("Retry-After") != "1" {
			t.Errorf("a request (token %v) while the one slot is taken: %d, Retry-After %q, %s; want 503 /problems/overloaded, Retry-After 1",
				token != "", resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if resp, body := get(path, ""); resp.StatusCode != http.StatusOK {
			t.Errorf("%s while the one slot is taken: %d %s, want 200", path, resp.StatusCode, body)
		}
	}
	unlock()
	if code := <-first; code != http.StatusOK {
		t.Errorf("the read that waited for the lock: %d, want 200", code)
	}
	if resp, body := get("/v1/markets", e.tokens["milano"]); resp.StatusCode != http.StatusOK {
		t.Errorf("a request after the slot is free again: %d %s, want 200", resp.StatusCode, body)
	}
}
