package national

import (
	"context"
	"time"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/registry"
	"github.com/dmshub/dmsrouter/shardmap"
)

// RegionCounts are one region's counts of a national answer.
type RegionCounts[T any] struct {
	Region string `json:"region"`
	Name   string `json:"name"`
	Counts T      `json:"counts"`
}

// CountsResponse is the answer of Decadenza and MarketDays: the counts per
// region that answered, in code order, and their total.
type CountsResponse[T any] struct {
	From string `json:"from"`
	To   string `json:"to"`
	Report
	Total    T                 `json:"total"`
	ByRegion []RegionCounts[T] `json:"by_region"`
}

// countsPerRegion answers the counts read for every region, summed into
// the total by add.
func countsPerRegion[T any](ctx context.Context, f *Fanout, req Request, from, to time.Time,
	read leg[T], add func(total *T, v T)) (*Answer, error) {
	l := fanOut(ctx, f, req, read)
	res := CountsResponse[T]{From: from.Format(time.DateOnly), To: to.Format(time.DateOnly), Report: l.Report, ByRegion: []RegionCounts[T]{}}
	for _, o := range l.ok {
		res.ByRegion = append(res.ByRegion, RegionCounts[T]{Region: string(o.region), Name: o.region.Name(), Counts: o.value})
		add(&res.Total, o.value)
	}
	return finish(ctx, f, req, l, res)
}

// Decadenza answers, per region and in total, the concessions proposed for
// decadenza (awaiting an office), those whose term (with its legal
// extension) ends from from to until, and those running on a legal
// extension (registry.LifecycleCounts).
func (f *Fanout) Decadenza(ctx context.Context, req Request, from, until time.Time) (*Answer, string, error) {
	key := "decadenza " + from.Format(time.DateOnly) + " " + until.Format(time.DateOnly)
	return f.answer(ctx, req, key, func(ctx context.Context) (*Answer, error) {
		return countsPerRegion(ctx, f, req, from, until,
			func(ctx context.Context, sh *shardmap.Shard, sc regions.Scope) (registry.LifecycleCounts, error) {
				return registry.Lifecycle(ctx, sh, sc, from, until)
			},
			func(t *registry.LifecycleCounts, v registry.LifecycleCounts) {
				t.Proposed += v.Proposed
				t.Expiring += v.Expiring
				t.Extended += v.Extended
			})
	})
}

// MarketDays answers, per region and in total, the market days held and
// cancelled from from to to inclusive, as (market, day) pairs.
func (f *Fanout) MarketDays(ctx context.Context, req Request, from, to time.Time) (*Answer, string, error) {
	key := "market-days " + from.Format(time.DateOnly) + " " + to.Format(time.DateOnly)
	return f.answer(ctx, req, key, func(ctx context.Context) (*Answer, error) {
		return countsPerRegion(ctx, f, req, from, to,
			func(ctx context.Context, sh *shardmap.Shard, sc regions.Scope) (registry.MarketDayCounts, error) {
				return registry.MarketDays(ctx, sh, sc, from, to)
			},
			func(t *registry.MarketDayCounts, v registry.MarketDayCounts) {
				t.Held += v.Held
				t.Cancelled += v.Cancelled
			})
	})
}
