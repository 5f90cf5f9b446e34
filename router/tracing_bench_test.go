package router

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/dmshub/dmsrouter/config"
	"github.com/dmshub/dmsrouter/pgtest"
)

// BenchmarkTracing measures what exporting traces costs: three routers over
// the same shards, without export (the default of a router with no
// telemetry.otlp_endpoint), exporting over OTLP/HTTP at the default
// telemetry.sample_ratio, and exporting every trace (ratio 1), asked the
// same requests in one run, interleaved in rounds (DMSROUTER_BENCH_ROUNDS,
// 5, of DMSROUTER_BENCH_SLICE, 2s, per arm) so that a shared machine's load
// weighs on all arms alike. Each workload reports, per arm, throughput and
// p50 and, for the exporting arms, both as a ratio of the arm without export.
// The receiver is an OTLP/HTTP endpoint in the process that reads and
// discards each batch. Run it with -benchtime=1x: it ignores b.N.
func BenchmarkTracing(b *testing.B) {
	ctx := context.Background()
	slice, rounds := benchTiming()
	cfg, err := pg.Deployment(ctx, pgtest.Prefix("tracebench"), layout())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pg.DropDeployment(context.Background(), cfg) })
	loadFixture(b, cfg)
	var batches, bytesIn atomic.Int64
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		batches.Add(1)
		bytesIn.Add(n)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	b.Cleanup(recv.Close)

	type arm struct {
		name string
		tc   TraceConfig
		url  string
	}
	arms := []*arm{
		{name: "no export", tc: TraceConfig{}},
		{name: fmt.Sprintf("ratio %g (default)", config.DefaultSampleRatio), tc: TraceConfig{OTLPEndpoint: recv.URL, SampleRatio: config.DefaultSampleRatio}},
		{name: "ratio 1", tc: TraceConfig{OTLPEndpoint: recv.URL, SampleRatio: 1}},
	}
	for _, a := range arms {
		a.url, _ = benchRouter(b, cfg, a.tc)
	}
	client := newBenchClient()

	for _, w := range []struct {
		name, path, territory string
		clients               int
	}{
		{"national summary, 4 clients", "/v1/national/summary", "national", 4},
		{"market of a region, 8 clients", fmt.Sprintf("/v1/markets/%d", milano), "region:03", 8},
	} {
		tok := benchToken(b, w.territory)
		do := make([]func() error, len(arms))
		for i, a := range arms {
			if err := client.get(a.url+w.path, tok); err != nil { // warm the pools
				b.Fatal(err)
			}
			do[i] = func() error { return client.get(a.url+w.path, tok) }
		}
		runs := interleave(b, do, w.clients, rounds, slice)
		var table strings.Builder
		fmt.Fprintf(&table, "\n%s (%d rounds of %s per arm):\n| arm | req/s | p50 ms | p99 ms | throughput vs no export | p50 overhead |\n|---|---:|---:|---:|---:|---:|\n", w.name, rounds, slice)
		base := runs[0].perSecond()
		baseP50 := runs[0].lat.percentile(50)
		for i, a := range arms {
			rps := runs[i].perSecond()
			p50 := runs[i].lat.percentile(50)
			fmt.Fprintf(&table, "| %s | %.0f | %.3f | %.3f | %.3f | %+.3f ms |\n", a.name, rps,
				ms(p50), ms(runs[i].lat.percentile(99)), rps/base, ms(p50-baseP50))
			key := strings.NewReplacer(" ", "-", "(", "", ")", "", ",", "").Replace(w.name + "/" + a.name)
			b.ReportMetric(rps, key+"-req/s")
		}
		b.Log(table.String())
	}
	b.Logf("receiver: %d batches, %d bytes", batches.Load(), bytesIn.Load())
}
