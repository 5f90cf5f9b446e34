package router

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/dmshub/dmsrouter/pgtest"
)

// BenchmarkRead measures what one read costs in the router's process,
// without a network between client and router: a page of a market's stalls
// and a comune's markets, served by the router's handler to a recorder,
// with the bench's telemetry (sample ratio 0.1, no export) and a JSON
// request log. Run it with -benchmem (allocations per request) and
// -cpuprofile or -memprofile to see where they go; the shard's own work is
// in it too (one pgx batch per request).
func BenchmarkRead(b *testing.B) {
	ctx := context.Background()
	cfg, err := pg.Deployment(ctx, pgtest.Prefix("readbench"), layout())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pg.DropDeployment(context.Background(), cfg) })
	loadFixture(b, cfg)
	s, _ := benchServer(b, cfg, TraceConfig{SampleRatio: 0.1})
	for _, w := range []struct{ name, path, territory string }{
		{"stalls", fmt.Sprintf("/v1/markets/%d/stalls", milano), "region:03"},
		{"markets", "/v1/markets?comune=015146", "comune:015146"},
	} {
		tok := benchToken(b, w.territory)
		b.Run(w.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodGet, w.path, nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				rec := httptest.NewRecorder()
				s.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("GET %s = %d %s", w.path, rec.Code, rec.Body)
				}
			}
		})
	}
}
