package bench

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/registry"
	"github.com/dmshub/dmsrouter/shardmap"
)

// Warming is what warming the pools cost, measured apart from the arms.
type Warming struct {
	Cold  ColdReads
	Pools PoolWarming
	// RouterReady is how long the router took from listening to answering
	// /readyz 200: the fill and warm-up of its pools (database.warm_conns),
	// which the bench waits out before it measures.
	RouterReady time.Duration
}

// PoolWarming is the warm-up of the direct and monolith arms' pools before
// they are measured: WarmPools opened Conns connections, each running
// registry.Warm.
type PoolWarming struct {
	Conns int
	// Wall is how long opening and warming them took; Warm the time spent
	// in registry.Warm, summed over the connections (plan building, mostly);
	// ServerCPU the local PostgreSQL servers' CPU time meanwhile.
	Wall, Warm, ServerCPU time.Duration
}

// ColdReads times the first presence read on a new connection of the
// request's shard, Repeats times each: without a warm-up (the connection
// open, its statements not prepared), the second read on that connection,
// and the first after registry.Warm ran on it. Each slice is sorted.
type ColdReads struct {
	Path         string
	Repeats      int
	Cold, Second []time.Duration
	WarmUp, Warm []time.Duration
	ShardName    string
	ShardRegions int
}

// coldRepeats is how many fresh connections coldReads measures each way.
const coldRepeats = 5

// warmTimer wraps registry.Warm, adding up how many connections it warmed
// and for how long.
type warmTimer struct {
	conns, nanos atomic.Int64
}

func (w *warmTimer) warm(ctx context.Context, conn *pgx.Conn) error {
	start := time.Now()
	err := registry.Warm(ctx, conn)
	w.nanos.Add(int64(time.Since(start)))
	w.conns.Add(1)
	return err
}

// warmPools opens and warms conns connections of every pool of the maps
// (nil ones skipped), whose new connections run w.warm.
func warmPools(ctx context.Context, maps []*shardmap.Map, conns int, w *warmTimer, servers map[int]bool) (PoolWarming, error) {
	n0, t0, pg, start := w.conns.Load(), w.nanos.Load(), serverCPU(servers), time.Now()
	for _, m := range maps {
		if m == nil {
			continue
		}
		if err := m.WarmPools(ctx, conns); err != nil {
			return PoolWarming{}, err
		}
	}
	return PoolWarming{
		Conns:     int(w.conns.Load() - n0),
		Wall:      time.Since(start),
		Warm:      time.Duration(w.nanos.Load() - t0),
		ServerCPU: serverCPU(servers) - pg,
	}, nil
}

// coldReads measures r, a presence read, on fresh connections of its
// shard (see ColdReads), repeats times each way. Each map it opens holds
// that one shard, serving every region.
func coldReads(ctx context.Context, cfg shardmap.Config, r *request, repeats int) (ColdReads, error) {
	name := cfg.Regions[string(r.region)]
	sc, _ := cfg.Shard(name)
	one := shardmap.Config{Database: cfg.Database, Shards: []shardmap.ShardConfig{sc}, Regions: map[string]string{}}
	for code := range cfg.Regions {
		one.Regions[code] = name
	}
	out := ColdReads{Path: r.path, Repeats: repeats, ShardName: name, ShardRegions: len(cfg.ShardRegions(name))}
	timed := func(m *shardmap.Map) (time.Duration, error) {
		start := time.Now()
		_, _, err := r.run(ctx, m)
		return time.Since(start), err
	}
	for range repeats {
		var w warmTimer
		for _, warm := range []bool{false, true} {
			opts := shardmap.Options{}
			if warm {
				opts.Warm = w.warm
			}
			m, err := shardmap.Open(one, opts)
			if err != nil {
				return out, err
			}
			err = m.WarmPools(ctx, 1)
			first, err1 := timed(m)
			second, err2 := timed(m)
			m.Close()
			if err := firstErr(err, err1, err2); err != nil {
				return out, fmt.Errorf("cold reads of %s: %w", r.path, err)
			}
			if warm {
				out.Warm = append(out.Warm, first)
				out.WarmUp = append(out.WarmUp, time.Duration(w.nanos.Load()))
			} else {
				out.Cold = append(out.Cold, first)
				out.Second = append(out.Second, second)
			}
		}
	}
	for _, s := range [][]time.Duration{out.Cold, out.Second, out.WarmUp, out.Warm} {
		slices.Sort(s)
	}
	return out, nil
}

// firstErr returns the first of errs that is not nil.
func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
