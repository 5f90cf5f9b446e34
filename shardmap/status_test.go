package shardmap_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dmshub/dmsrouter/shardmap"
)

// TestServers reads what the status page shows of a shard's servers: the
// primary, then its streaming replica with the lag the router measured,
// each with its breaker, pool and the calls the router made to it.
func TestServers(t *testing.T) {
	cfg, _, _ := streamingReplica(t)
	m, err := shardmap.Open(cfg, shardmap.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	sh, err := m.For("03")
	if err != nil {
		t.Fatal(err)
	}
	waitReadable(t, sh, 0, true)
	insertMarket(t, ctx, sh, "MI900", "Mercato di stato")
	if _, server := readMarket(t, ctx, sh, "MI900"); server != "replica0" {
		t.Fatalf("the read went to %s, want replica0", server)
	}

	got := sh.Servers(time.Now())
	if len(got) != 2 {
		t.Fatalf("Servers() = %d servers, want the primary and one replica: %+v", len(got), got)
	}
	for i, want := range []struct {
		role  string
		index int
		lag   bool
	}{{"primary", 0, false}, {"replica", 0, true}} {
		s := got[i]
		if s.Role != want.role || s.Index != want.index || (s.Lag != nil) != want.lag {
			t.Errorf("server %d = %s %d, lag %v; want %s %d, lag given %v", i, s.Role, s.Index, s.Lag, want.role, want.index, want.lag)
		}
		if s.Breaker != "closed" || s.Pool.Max != 4 || s.Latency.Calls != 1 || s.Latency.Failed != 0 || s.Latency.P50 <= 0 {
			t.Errorf("server %d = breaker %s, pool %+v, latency %+v; want closed, a pool of 4, one call answered", i, s.Breaker, s.Pool, s.Latency)
		}
		if !strings.HasPrefix(s.Address, "127.0.0.1:") || strings.Contains(s.Address, "password") {
			t.Errorf("server %d address %q, want host:port/database", i, s.Address)
		}
	}
	if lag := got[1].Lag; lag != nil && (!lag.Readable || lag.MeasuredAt.IsZero()) {
		t.Errorf("replica lag = %+v, want measured and readable", lag)
	}
}
