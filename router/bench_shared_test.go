package router

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dmshub/dmsrouter/auth"
	"github.com/dmshub/dmsrouter/national"
	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// benchTiming returns how long each arm of an interleaved benchmark runs
// per round (DMSROUTER_BENCH_SLICE, 2s) and how many rounds it runs
// (DMSROUTER_BENCH_ROUNDS, 5).
func benchTiming() (slice time.Duration, rounds int) {
	slice, rounds = 2*time.Second, 5
	if d, err := time.ParseDuration(os.Getenv("DMSROUTER_BENCH_SLICE")); err == nil {
		slice = d
	}
	if _, err := fmt.Sscan(os.Getenv("DMSROUTER_BENCH_ROUNDS"), &rounds); err != nil {
		rounds = 5
	}
	return slice, rounds
}

// loadFixture loads the package's fixture into the shards nw and lazio of
// cfg: newEnv's and the benchmarks' data. Every shard first gets the
// presence partitions a migration run on fixedNow's day would have made
// (fixedCalendarSQL): the migration makes them around the real day, and
// the fixture's presences are dated around fixedNow.
func loadFixture(tb testing.TB, cfg shardmap.Config) {
	tb.Helper()
	for _, sh := range cfg.Shards {
		exec(tb, sh.AdminDSN(), fixedCalendarSQL())
	}
	for _, sh := range cfg.Shards {
		switch sh.Name {
		case "nw":
			exec(tb, sh.AdminDSN(), fmt.Sprintf(fixtureSQL, milano, bergamo, stallMI1, vendor03, stallBG1, vendor03+1))
		case "lazio":
			exec(tb, sh.AdminDSN(), lazioSQL)
		}
	}
}

// benchRouter serves a router over cfg with telemetry tc and the national
// cache off (every national request is a fan-out) until b ends; it
// returns the router's URL and its shard map.
func benchRouter(b *testing.B, cfg shardmap.Config, tc TraceConfig) (string, *shardmap.Holder) {
	b.Helper()
	s, m := benchServer(b, cfg, tc)
	srv := httptest.NewServer(s)
	b.Cleanup(srv.Close)
	return srv.URL, m
}

// benchServer returns benchRouter's router, not listening, and its shard
// map; both are closed when b ends.
func benchServer(b *testing.B, cfg shardmap.Config, tc TraceConfig) (*Server, *shardmap.Holder) {
	b.Helper()
	tel, err := NewTelemetry(tc)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tel.Shutdown(context.Background()) })
	m, err := shardmap.NewHolder(cfg, shardmap.Options{TracerProvider: tel.TracerProvider, MeterProvider: tel.MeterProvider})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(m.Close)
	fan, err := national.New(national.Config{}, national.Options{TracerProvider: tel.TracerProvider, MeterProvider: tel.MeterProvider})
	if err != nil {
		b.Fatal(err)
	}
	v, err := auth.NewVerifier(auth.Config{HS256Secret: pgtest.TestSecret})
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(m, v, fan, Options{Telemetry: tel, Now: func() time.Time { return fixedNow }})
	if err != nil {
		b.Fatal(err)
	}
	return s, m
}

// benchToken returns a bearer token of an admin_pa of territory terr
// ("region:03"), valid at fixedNow.
func benchToken(b *testing.B, terr string) string {
	b.Helper()
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

// benchClient asks the benchmarks' requests; it keeps enough idle
// connections that no client of a workload dials during a slice.
type benchClient struct{ c *http.Client }

func newBenchClient() benchClient {
	return benchClient{&http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
}

// get asks GET url with bearer tok and the headers of header (name, value,
// ...), reads the body and fails unless the answer is 200.
func (c benchClient) get(url, tok string, header ...string) error {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := c.c.Do(req)
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

// armRun is what one arm of an interleaved benchmark measured: the
// latency of each request and the time its slices took.
type armRun struct {
	lat     latencies
	elapsed time.Duration
}

// perSecond is the arm's throughput over all its slices.
func (r *armRun) perSecond() float64 { return float64(len(r.lat.d)) / r.elapsed.Seconds() }

// ms is d in milliseconds, to the microsecond.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// interleave runs the arms in turn, each for slice with clients
// goroutines asking do back to back, rounds times over, so that a shared
// machine's load weighs on all arms alike. It fails b on the first error.
func interleave(b *testing.B, arms []func() error, clients, rounds int, slice time.Duration) []armRun {
	b.Helper()
	runs := make([]armRun, len(arms))
	for range rounds {
		for i, do := range arms {
			start := time.Now()
			deadline := start.Add(slice)
			var wg sync.WaitGroup
			var failed atomic.Value
			for range clients {
				wg.Go(func() {
					for time.Now().Before(deadline) {
						t0 := time.Now()
						if err := do(); err != nil {
							failed.Store(err)
							return
						}
						runs[i].lat.add(time.Since(t0))
					}
				})
			}
			wg.Wait()
			if err, _ := failed.Load().(error); err != nil {
				b.Fatal(err)
			}
			runs[i].elapsed += time.Since(start)
		}
	}
	return runs
}
