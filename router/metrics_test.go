package router

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/dmshub/dmsrouter/regions"
)

// metrics returns what the metrics listener serves: e.tel's handler, which
// the API no longer serves.
func (e *env) metrics(t *testing.T) string {
	t.Helper()
	w := httptest.NewRecorder()
	e.tel.MetricsHandler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("metrics handler = %d, want 200", w.Code)
	}
	return w.Body.String()
}

var requestSeries = regexp.MustCompile(`(?m)^http_server_request_duration_seconds_count\{(.*)\} `)
var metricLabel = regexp.MustCompile(`(\w+)="((?:[^"\\]|\\.)*)"`)

// requestLabels returns the labels of each series of the request duration
// histogram in the Prometheus text m.
func requestLabels(m string) []map[string]string {
	var series []map[string]string
	for _, s := range requestSeries.FindAllStringSubmatch(m, -1) {
		labels := map[string]string{}
		for _, l := range metricLabel.FindAllStringSubmatch(s[1], -1) {
			labels[l[1]] = l[2]
		}
		series = append(series, labels)
	}
	return series
}

// TestMetricsNotOnAPI checks that the public API does not serve /metrics:
// the metrics listener does (internal/cli).
func TestMetricsNotOnAPI(t *testing.T) {
	e := newEnv(t, "metricsapi", false)
	for _, who := range []string{"", "national"} {
		if r := e.get(t, who, "/metrics"); r.status != http.StatusNotFound {
			t.Errorf("GET /metrics as %q on the API = %d, want 404", who, r.status)
		}
	}
}

// TestMetricLabelsBounded sends hundreds of requests with invented methods
// and paths, with and without a token, and checks that they add only a few
// series to the request histogram, each labelled from a bounded set, and
// that no span is named after an invented method.
func TestMetricLabelsBounded(t *testing.T) {
	e := newEnv(t, "metricslabels", false)
	e.get(t, "", "/healthz")
	e.get(t, "lombardia", "/v1/markets")
	e.get(t, "", "/nope")
	before := len(requestLabels(e.metrics(t)))

	const n = 500
	for i := range n {
		e.do(t, "", fmt.Sprintf("X%d", i), "/healthz", "")
		e.do(t, "", http.MethodGet, fmt.Sprintf("/nope/%d", i), "")
		e.do(t, "lombardia", fmt.Sprintf("get%d", i), "/v1/markets", "")
		e.do(t, "lombardia", http.MethodGet, fmt.Sprintf("/v1/markets?region=%02d", 20+i%80), "")
	}

	series := requestLabels(e.metrics(t))
	// New series at most: _OTHER on /healthz and on /v1/markets (or
	// unmatched), and the 400s and 403s of the region filter.
	if len(series) > before+6 {
		t.Errorf("%d requests with invented methods and paths took the request histogram from %d to %d series, want at most %d",
			4*n, before, len(series), before+6)
	}
	methods := map[string]bool{"_OTHER": true}
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE"} {
		methods[m] = true
	}
	for _, l := range series {
		if !methods[l["http_request_method"]] {
			t.Errorf("series %v: method label %q, want a method HTTP defines or _OTHER", l, l["http_request_method"])
		}
		if route := l["http_route"]; route != "unmatched" && (!strings.HasPrefix(route, "/") || strings.Contains(route, "/nope")) {
			t.Errorf("series %v: route label %q, want a route pattern or unmatched", l, route)
		}
		if r := l["region"]; r != "" {
			if _, err := regions.ParseCode(r); err != nil {
				t.Errorf("series %v: region label %q, want a region code or empty", l, r)
			}
		}
	}
	for _, s := range e.spans.Ended() {
		if s.SpanKind() != trace.SpanKindServer {
			continue
		}
		if method, _, _ := strings.Cut(s.Name(), " "); !methods[method] {
			t.Errorf("span %q is named after a method HTTP does not define", s.Name())
			break
		}
	}
}
