package router

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/dmshub/dmsrouter/national"
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
