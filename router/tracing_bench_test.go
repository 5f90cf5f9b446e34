package router

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dmshub/dmsrouter/auth"
	"github.com/dmshub/dmsrouter/config"
	"github.com/dmshub/dmsrouter/national"
	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
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
	slice, rounds := 2*time.Second, 5
	if d, err := time.ParseDuration(os.Getenv("DMSROUTER_BENCH_SLICE")); err == nil {
		slice = d
	}
	if _, err := fmt.Sscan(os.Getenv("DMSROUTER_BENCH_ROUNDS"), &rounds); err != nil {
		rounds = 5
	}
	cfg, err := pg.Deployment(ctx, pgtest.Prefix("tracebench"), layout())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pg.DropDeployment(context.Background(), cfg) })
	for _, sh := range cfg.Shards {
		switch sh.Name {
		case "nw":
			exec(b, sh.AdminDSN(), fmt.Sprintf(fixtureSQL, milano, bergamo, stallMI1, vendor03, stallBG1, vendor03+1))
		case "lazio":
			exec(b, sh.AdminDSN(), lazioSQL)
		}
	}
	var batches, bytesIn atomic.Int64
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		batches.Add(1)
		bytesIn.Add(n)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	b.Cleanup(recv.Close)

	v, err := auth.NewVerifier(auth.Config{HS256Secret: pgtest.TestSecret})
	if err != nil {
		b.Fatal(err)
	}
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
		tel, err := NewTelemetry(a.tc)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { tel.Shutdown(context.Background()) })
		m, err := shardmap.NewHolder(cfg, shardmap.Options{TracerProvider: tel.TracerProvider, MeterProvider: tel.MeterProvider})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(m.Close)
		// The cache off: every national request is a fan-out.
		fan, err := national.New(national.Config{}, national.Options{TracerProvider: tel.TracerProvider, MeterProvider: tel.MeterProvider})
		if err != nil {
			b.Fatal(err)
		}
		s, err := New(m, v, fan, Options{Telemetry: tel, Now: func() time.Time { return fixedNow }})
		if err != nil {
			b.Fatal(err)
		}
		srv := httptest.NewServer(s)
		b.Cleanup(srv.Close)
		a.url = srv.URL
	}
	token := func(terr string) string {
		tr, err := regions.ParseTerritory(terr)
		if err != nil {
			b.Fatal(err)
		}
		tok, err := auth.SignHS256(pgtest.TestSecret, auth.Principal{Subject: "bench", Role: "admin_pa", Territory: tr}, time.Hour, fixedNow)
		if err != nil {
			b.Fatal(err)
		}
		return tok
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	get := func(url, tok string) error {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s = %d", url, res.StatusCode)
		}
		return nil
	}

	for _, w := range []struct {
		name, path, territory string
		clients               int
	}{
		{"national summary, 4 clients", "/v1/national/summary", "national", 4},
		{"market of a region, 8 clients", fmt.Sprintf("/v1/markets/%d", milano), "region:03", 8},
	} {
		tok := token(w.territory)
		lat := make([]latencies, len(arms))
		elapsed := make([]time.Duration, len(arms))
		for _, a := range arms {
			if err := get(a.url+w.path, tok); err != nil { // warm the pools
				b.Fatal(err)
			}
		}
		for range rounds {
			for i, a := range arms {
				start := time.Now()
				deadline := start.Add(slice)
				var wg sync.WaitGroup
				var failed atomic.Value
				for range w.clients {
					wg.Go(func() {
						for time.Now().Before(deadline) {
							t0 := time.Now()
							if err := get(a.url+w.path, tok); err != nil {
								failed.Store(err)
								return
							}
							lat[i].add(time.Since(t0))
						}
					})
				}
				wg.Wait()
				if err, _ := failed.Load().(error); err != nil {
					b.Fatal(err)
				}
				elapsed[i] += time.Since(start)
			}
		}
		var table strings.Builder
		fmt.Fprintf(&table, "\n%s (%d rounds of %s per arm):\n| arm | req/s | p50 ms | p99 ms | throughput vs no export | p50 overhead |\n|---|---:|---:|---:|---:|---:|\n", w.name, rounds, slice)
		base := float64(len(lat[0].d)) / elapsed[0].Seconds()
		baseP50 := lat[0].percentile(50)
		for i, a := range arms {
			rps := float64(len(lat[i].d)) / elapsed[i].Seconds()
			p50 := lat[i].percentile(50)
			fmt.Fprintf(&table, "| %s | %.0f | %.3f | %.3f | %.3f | %+.3f ms |\n", a.name, rps,
				float64(p50.Microseconds())/1000, float64(lat[i].percentile(99).Microseconds())/1000,
				rps/base, float64((p50-baseP50).Microseconds())/1000)
			key := strings.NewReplacer(" ", "-", "(", "", ")", "", ",", "").Replace(w.name + "/" + a.name)
			b.ReportMetric(rps, key+"-req/s")
		}
		b.Log(table.String())
	}
	b.Logf("receiver: %d batches, %d bytes", batches.Load(), bytesIn.Load())
}
