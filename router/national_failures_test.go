package router

import (
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/dmshub/dmsrouter/national"
	"github.com/dmshub/dmsrouter/regions"
)

func TestNationalPartial(t *testing.T) {
	e := newNationalEnv(t, "natpart", true, nil)
	e.national.SetConfig(national.Config{LegTimeout: 5 * time.Second, CacheTTL: time.Minute})
	var before national.SummaryResponse
	decode(t, e.get(t, "national", "/v1/national/summary"), &before)
	allOK(t, before.Partial, before.Regions)
	if err := e.owned.Halt(); err != nil {
		t.Fatal(err)
	}
	// The complete answer is still cached: a halted shard does not evict it.
	if r := e.get(t, "national", "/v1/national/summary"); r.status != 200 || r.header.Get("X-Dms-National") != "cache" {
		t.Errorf("cached summary = %d %s", r.status, r.header.Get("X-Dms-National"))
	}
	for _, path := range []string{
		"/v1/national/summary?date=2026-06-03",
		"/v1/national/presences?from=2026-06-01&to=2026-06-30",
		"/v1/national/concessions/expiring",
		"/v1/markets?limit=5",
		"/v1/vendors?partita_iva=10000000012",
	} {
		t.Run(path, func(t *testing.T) {
			r := e.get(t, "national", path)
			var got struct {
				Partial bool                    `json:"partial"`
				Regions []national.RegionStatus `json:"regions"`
			}
			decode(t, r, &got)
			if !got.Partial || len(got.Regions) != 20 {
				t.Fatalf("partial = %v, %d regions; want a partial answer listing 20: %s", got.Partial, len(got.Regions), r.raw)
			}
			for _, st := range got.Regions {
				want := national.StatusOK
				if st.Region == "12" {
					want = national.StatusUnavailable
				}
				if st.Status != want {
					t.Errorf("region %s: %s, want %s", st.Region, st.Status, want)
				}
			}
			sep := "?"
			if strings.Contains(path, "?") {
				sep = "&"
			}
			r = e.get(t, "national", path+sep+"partial=false")
			if r.status != 503 || r.header.Get("Retry-After") == "" || r.header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("partial=false = %d %v %s, want 503 with Retry-After", r.status, r.header, r.raw)
			}
			if regs, _ := r.body["regions"].([]any); len(regs) != 1 || regs[0] != "12" {
				t.Errorf("partial=false names regions %v, want [12]", r.body["regions"])
			}
		})
	}
	// Partial answers are counted by region.
	if m := e.metrics(t); !strings.Contains(m, `dms_national_partial_total{`) ||
		!regexp.MustCompile(`dms_national_partial_total\{[^}]*region="12"[^}]*status="unavailable"[^}]*\} [1-9]`).MatchString(m) {
		t.Errorf("/metrics lacks the partial counter for region 12")
	}
}

func TestNationalHungShard(t *testing.T) {
	e := newNationalEnv(t, "nathung", true, nil)
	// The first fan-out opens and warms a connection per shard, under the
	// default leg timeout: at 400 ms every leg of it timed out once on a
	// machine loaded by the rest of the suite. The short deadline is for
	// the hung server.
	decode(t, e.get(t, "national", "/v1/national/summary"), new(national.SummaryResponse))
	const deadline = 400 * time.Millisecond
	e.national.SetConfig(national.Config{LegTimeout: deadline})
	if err := e.owned.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.owned.Continue(); err != nil {
			t.Error(err)
		}
	})
	lazio, _ := e.m.For("12")
	// Until the breaker opens, Lazio's leg ends at its deadline: timed out
	// on a pooled connection, or unavailable when the leg had to open a
	// connection the frozen server never accepts (the router closes a
	// connection whose call passed its deadline). Either way the answer
	// comes, partial, while the server hangs; the bound below only catches
	// an answer that waits for the server, it measures nothing.
	const hang = 20 * time.Second
	for i := 0; lazio.State() != "open"; i++ {
		if i == 10 {
			t.Fatalf("the breaker is still %s after %d failed legs", lazio.State(), i)
		}
		start := time.Now()
		r := e.get(t, "national", "/v1/national/summary")
		if elapsed := time.Since(start); elapsed > hang {
			t.Fatalf("answer %d waited %s for the hung server", i, elapsed)
		}
		var got national.SummaryResponse
		decode(t, r, &got)
		st := got.Regions[11]
		if !got.Partial || st.Region != "12" || (st.Status != national.StatusTimeout && st.Status != national.StatusUnavailable) {
			t.Errorf("answer %d: partial %v, region %+v; want 12 timed out or unavailable", i, got.Partial, st)
		}
	}
	// The open breaker skips the leg without asking the server.
	var got national.SummaryResponse
	decode(t, e.get(t, "national", "/v1/national/summary"), &got)
	if st := got.Regions[11]; st.Status != national.StatusUnavailable {
		t.Errorf("with the breaker open: region %+v; want unavailable", st)
	}
	// Once the server runs again, the breaker's probe closes it and Lazio answers.
	if err := e.owned.Continue(); err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(20 * time.Second)
	for {
		var got national.SummaryResponse
		decode(t, e.get(t, "national", "/v1/national/summary"), &got)
		if !got.Partial {
			break
		}
		if time.Now().After(until) {
			t.Fatalf("Lazio did not come back: %+v", got.Regions[11])
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestNationalSingleflight(t *testing.T) {
	// Every leg counts itself and, until release is closed, waits.
	var legCount atomic.Int64
	release := make(chan struct{})
	var once sync.Once
	started := make(chan struct{})
	e := newNationalEnv(t, "natsf", false, func(regions.Code) {
		legCount.Add(1)
		once.Do(func() { close(started) })
		<-release
	})
	e.national.SetConfig(national.Config{LegTimeout: 10 * time.Second, Concurrency: 20, CacheTTL: time.Minute})
	const clients = 8
	bodies := make([]string, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.get(t, "national", "/v1/national/summary?date=2026-06-03")
			if r.status != 200 {
				t.Errorf("client %d: %d %s", i, r.status, r.raw)
			}
			bodies[i] = r.raw
		}()
	}
	<-started
	// Give every client time to arrive: without singleflight each would
	// start its own fan-out and count its legs before blocking.
	time.Sleep(300 * time.Millisecond)
	legs := legCount.Load()
	close(release)
	wg.Wait()
	if legs != 20 || legCount.Load() != 20 {
		t.Errorf("%d clients ran %d legs (%d before release), want one fan-out of 20", clients, legCount.Load(), legs)
	}
	for i := range bodies {
		if bodies[i] != bodies[0] {
			t.Errorf("client %d got %s, client 0 %s", i, bodies[i], bodies[0])
		}
	}
	// The complete answer is cached for the same scope...
	if r := e.get(t, "national", "/v1/national/summary?date=2026-06-03"); r.header.Get("X-Dms-National") != "cache" || legCount.Load() != 20 {
		t.Errorf("repeat: source %q, legs %d; want the cache", r.header.Get("X-Dms-National"), legCount.Load())
	}
	// ...and another request is another fan-out.
	if r := e.get(t, "national", "/v1/national/summary?date=2026-06-04"); r.header.Get("X-Dms-National") != "fanout" || legCount.Load() != 40 {
		t.Errorf("another date: source %q, legs %d; want a new fan-out", r.header.Get("X-Dms-National"), legCount.Load())
	}
}

func testNationalTelemetry(t *testing.T, e *env) {
	e.get(t, "national", "/v1/national/summary?date=2026-06-10")
	var server sdktrace.ReadOnlySpan
	for _, sp := range e.spans.Ended() {
		if sp.Name() == "GET /v1/national/summary" {
			server = sp // the last one
		}
	}
	if server == nil {
		t.Fatal("no request span")
	}
	seen := map[string]bool{}
	for _, sp := range e.spans.Ended() {
		if sp.Name() != "national.leg" || sp.Parent().SpanID() != server.SpanContext().SpanID() {
			continue
		}
		for _, kv := range sp.Attributes() {
			if kv.Key == "region" {
				seen[kv.Value.AsString()] = true
			}
		}
	}
	if len(seen) != 20 {
		t.Errorf("the request span has leg spans for %d regions, want 20", len(seen))
	}
}
