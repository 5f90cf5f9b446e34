package cli

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestGateReadiness checks what /readyz answers while the pools warm and
// while the router drains (draining wins), and that other paths and a
// ready router pass through.
func TestGateReadiness(t *testing.T) {
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "next") })
	for _, tc := range []struct {
		warming, draining bool
		path              string
		code              int
		body              string
	}{
		{false, false, "/readyz", http.StatusOK, "next"},
		{true, false, "/readyz", http.StatusServiceUnavailable, `{"status":"warming"}`},
		{false, true, "/readyz", http.StatusServiceUnavailable, `{"status":"draining"}`},
		{true, true, "/readyz", http.StatusServiceUnavailable, `{"status":"draining"}`},
		{true, true, "/healthz", http.StatusOK, "next"},
		{true, false, "/v1/markets", http.StatusOK, "next"},
	} {
		var warming, draining atomic.Bool
		warming.Store(tc.warming)
		draining.Store(tc.draining)
		rec := httptest.NewRecorder()
		gateReadiness(next, &warming, &draining).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
		if rec.Code != tc.code || strings.TrimSpace(rec.Body.String()) != tc.body {
			t.Errorf("warming %v, draining %v: GET %s = %d %q, want %d %q",
				tc.warming, tc.draining, tc.path, rec.Code, rec.Body.String(), tc.code, tc.body)
		}
	}
}
