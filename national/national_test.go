package national_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/dmshub/dmsrouter/auth"
	"github.com/dmshub/dmsrouter/national"
	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/registry"
	"github.com/dmshub/dmsrouter/shardmap"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &pg)) }

var nationalPrincipal = auth.Principal{Subject: "t", Role: "auditor", Territory: regions.Territory{Level: regions.National}}

// deploy puts Lombardia on shard "lom" and every other region on "rest",
// and returns a holder of that map.
func deploy(t *testing.T, name string) (shardmap.Config, *shardmap.Holder) {
	t.Helper()
	cfg := pgtest.NewDeployment(t, pg, name, pgtest.Split("rest", pgtest.Layout{"03": "lom"}))
	h, err := shardmap.NewHolder(cfg, shardmap.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return cfg, h
}

// legShards returns, by region, the shard each national.leg span ended so
// far read, and forgets the spans.
func legShards(spans *tracetest.SpanRecorder) map[string]string {
	out := map[string]string{}
	for _, sp := range spans.Ended() {
		if sp.Name() != "national.leg" {
			continue
		}
		var region, shard string
		for _, kv := range sp.Attributes() {
			switch kv.Key {
			case "region":
				region = kv.Value.AsString()
			case "shard":
				shard = kv.Value.AsString()
			}
		}
		out[region] = shard
	}
	spans.Reset()
	return out
}

// TestOneSnapshotPerRequest checks that every leg of a request reads the
// map the request took, although the holder was reloaded since: a region
// moved by the reload is still read where the snapshot says, unless the
// snapshot's shard no longer owns it (the fence): then the leg reads the
// shard the holder's map names, and without a holder it is unavailable.
func TestOneSnapshotPerRequest(t *testing.T) {
	cfg, h := deploy(t, "natsnap")
	// Both shards own Lombardia for now, as during a move's switch.
	lom, rest := cfg.Shards[0].AdminDSN(), cfg.Shards[1].AdminDSN()
	if cfg.Shards[0].Name != "lom" {
		lom, rest = rest, lom
	}
	pgtest.Exec(t, rest, `INSERT INTO dms.shard_regions (region_id) VALUES (3)`)
	spans := tracetest.NewSpanRecorder()
	f, err := national.New(national.Config{}, national.Options{TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))})
	if err != nil {
		t.Fatal(err)
	}
	before := h.Map()
	moved := cfg
	moved.Regions = map[string]string{}
	for k, v := range cfg.Regions {
		moved.Regions[k] = v
	}
	moved.Regions["03"] = "rest"
	if _, err := h.Reload(moved); err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 6, 15, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name   string
		setup  string // run on lom first
		m      *shardmap.Map
		holder *shardmap.Holder
		want   string // the shard region 03 is read on
		status string // the status of 03's leg
	}{
		{"snapshot before the reload", "", before, nil, "lom", national.StatusOK},
		{"current map", "", h.Map(), nil, "rest", national.StatusOK},
		{"snapshot whose shard gave the region away", `UPDATE dms.shard_regions SET owned = false WHERE region_id = 3`, before, h, "rest", national.StatusOK},
		{"the same without the holder", "", before, nil, "lom", national.StatusUnavailable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != "" {
				pgtest.Exec(t, lom, tt.setup)
			}
			// Another day per case: no answer is shared between them.
			day = day.AddDate(0, 0, 1)
			a, source, err := f.Summary(context.Background(), national.Request{Map: tt.m, Holder: tt.holder, Principal: nationalPrincipal, Route: "test"}, day)
			if err != nil || source != national.SourceFanout {
				t.Fatalf("Summary = %v from %q, want a fan-out", err, source)
			}
			var got national.SummaryResponse
			if err := json.Unmarshal(a.Body, &got); err != nil {
				t.Fatal(err)
			}
			complete := tt.status == national.StatusOK
			if got.Partial == complete || len(got.Regions) != 20 || len(a.Missing) != map[bool]int{true: 0, false: 1}[complete] || got.Regions[2].Status != tt.status {
				t.Errorf("partial %v, %d regions, missing %v, 03's leg %+v; want partial %v, 03 %s", got.Partial, len(got.Regions), a.Missing, got.Regions[2], !complete, tt.status)
			}
			shards := legShards(spans)
			if len(shards) != 20 || shards["03"] != tt.want || shards["05"] != "rest" {
				t.Errorf("legs read region 03 on %q, 05 on %q (%d legs); want %q, rest", shards["03"], shards["05"], len(shards), tt.want)
			}
		})
	}
}

// TestAnswers checks what is shared and what fails a request: a complete
// answer is cached per territory until a reload disables the cache, a bad
// cursor fails the whole answer, and a vendor no region knows is not found.
func TestAnswers(t *testing.T) {
	_, h := deploy(t, "natans")
	legs := 0
	f, err := national.New(national.Config{CacheTTL: time.Minute, Concurrency: 1}, national.Options{OnLeg: func(regions.Code) { legs++ }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	req := national.Request{Map: h.Map(), Principal: nationalPrincipal, Route: "test"}
	lombardia := req
	lombardia.Principal.Territory = regions.Territory{Level: regions.Regional, Code: "03"}
	page := registry.Page{Limit: 5}
	for _, tt := range []struct {
		name       string
		req        national.Request
		wantSource string
		wantLegs   int
	}{
		{"first", req, national.SourceFanout, 20},
		{"again", req, national.SourceCache, 20},
		{"another territory", lombardia, national.SourceFanout, 40},
	} {
		// Concurrency 1 runs one leg at a time, so legs needs no lock.
		_, source, err := f.Markets(ctx, tt.req, registry.MarketFilter{}, page)
		if err != nil || source != tt.wantSource || legs != tt.wantLegs {
			t.Errorf("%s: Markets = %v from %q after %d legs; want %q after %d", tt.name, err, source, legs, tt.wantSource, tt.wantLegs)
		}
	}
	// A reload that disables the cache reaches the answers cached already.
	f.SetConfig(national.Config{CacheTTL: 0, Concurrency: 1})
	if _, source, err := f.Markets(ctx, req, registry.MarketFilter{}, page); err != nil || source != national.SourceFanout || legs != 60 {
		t.Errorf("after the cache was disabled: Markets = %v from %q after %d legs; want %q after 60", err, source, legs, national.SourceFanout)
	}
	if _, _, err := f.Markets(ctx, req, registry.MarketFilter{}, registry.Page{Limit: 5, Cursor: "not-a-cursor"}); !errors.Is(err, registry.ErrBadCursor) {
		t.Errorf("Markets with a bad cursor = %v, want ErrBadCursor", err)
	}
	if _, _, err := f.Vendor(ctx, req, "01234567897", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Vendor nobody knows = %v, want ErrNotFound", err)
	}
}
