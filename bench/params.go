package bench

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/registry"
	"github.com/dmshub/dmsrouter/shardmap"
)

// marketRef is a market as a request names it.
type marketRef struct {
	ID     int64  `db:"id"`
	Comune string `db:"comune"`
	region regions.Code
}

// vendorRef is a vendor holding at least one concession.
type vendorRef struct {
	ID     int64 `db:"vendor_id"`
	region regions.Code
}

// Params are the request parameters drawn from a seeded deployment: an
// evenly spaced sample of each list, so the same data always gives the
// same parameters and the regions appear in proportion to their markets.
type Params struct {
	Markets   []marketRef // sample of all markets, by id
	Present   []marketRef // sample of the markets with presences on Day
	Day       time.Time   // the presence day: today, or the latest day with presences before it
	Vendors   []vendorRef // sample of the vendors holding concessions
	Deep      regions.Code
	DeepTotal int64  // markets of region Deep
	Offset    int    // the deep page's offset: 1000, or less when the region is smaller
	Cursor    string // keyset cursor of the same page
}

// sampleSize bounds each sampled list.
const sampleSize = 256

// presenceLookback is how many days before today sample looks for presences.
const presenceLookback = 14

// sample draws the request parameters from the deployment m, reading each
// region through its shard as the router would (as the shard's
// application role, scoped to the region).
func sample(ctx context.Context, m *shardmap.Map, today time.Time) (Params, error) {
	var p Params
	var markets []marketRef
	var vendors []vendorRef
	counts := map[regions.Code]int64{}
	for _, r := range regions.All() {
		var ms []marketRef
		var vs []vendorRef
		err := read(ctx, m, r.Code, func(b *pgx.Batch) {
			b.Queue(`SELECT id, comune FROM markets WHERE region_id = $1 ORDER BY id`, int16(r.Code.Num())).
				Query(func(rows pgx.Rows) (err error) {
					ms, err = pgx.CollectRows(rows, pgx.RowToStructByName[marketRef])
					return err
				})
			b.Queue(`SELECT DISTINCT vendor_id FROM concessions WHERE region_id = $1 ORDER BY vendor_id`, int16(r.Code.Num())).
				Query(func(rows pgx.Rows) (err error) {
					vs, err = pgx.CollectRows(rows, pgx.RowToStructByName[vendorRef])
					return err
				})
		})
		if err != nil {
			return p, fmt.Errorf("sample region %s: %w", r.Code, err)
		}
		for i := range ms {
			ms[i].region = r.Code
		}
		for i := range vs {
			vs[i].region = r.Code
		}
		markets = append(markets, ms...)
		vendors = append(vendors, vs...)
		counts[r.Code] = int64(len(ms))
	}
	if len(markets) == 0 {
		return p, fmt.Errorf("the deployment holds no markets: seed it first (dmsrouter seed)")
	}
	p.Markets = spread(markets, sampleSize)
	p.Vendors = spread(vendors, sampleSize)

	byID := map[int64]marketRef{}
	for _, mk := range markets {
		byID[mk.ID] = mk
	}
	for back := range presenceLookback {
		day := today.AddDate(0, 0, -back)
		var present []marketRef
		for _, r := range regions.All() {
			if counts[r.Code] == 0 {
				continue
			}
			var ids []int64
			err := read(ctx, m, r.Code, func(b *pgx.Batch) {
				b.Queue(`SELECT DISTINCT market_id FROM vendor_presences WHERE region_id = $1 AND date = $2 ORDER BY market_id`,
					int16(r.Code.Num()), day).Query(func(rows pgx.Rows) (err error) {
					ids, err = pgx.CollectRows(rows, pgx.RowTo[int64])
					return err
				})
			})
			if err != nil {
				return p, fmt.Errorf("sample presences of region %s: %w", r.Code, err)
			}
			for _, id := range ids {
				present = append(present, byID[id])
			}
		}
		if len(present) > 0 {
			p.Day, p.Present = day, spread(present, sampleSize)
			break
		}
	}

	// The deep page: the region with the most markets.
	for _, r := range regions.All() {
		if counts[r.Code] > p.DeepTotal {
			p.Deep, p.DeepTotal = r.Code, counts[r.Code]
		}
	}
	p.Offset = int(min(1000, max(0, p.DeepTotal-pageLimit)))
	if p.Offset > 0 {
		sh, err := m.For(p.Deep)
		if err != nil {
			return p, err
		}
		sc := regions.Scope{Region: p.Deep, User: subject}
		l, err := registry.ListMarkets(ctx, sh, sc, registry.MarketFilter{}, registry.Page{Limit: 1, Offset: p.Offset - 1})
		if err != nil {
			return p, fmt.Errorf("cursor of the deep page: %w", err)
		}
		p.Cursor = l.NextCursor
	}
	return p, nil
}

// read runs queue's queries on region r's shard in the region's scope.
func read(ctx context.Context, m *shardmap.Map, r regions.Code, queue func(*pgx.Batch)) error {
	sh, err := m.For(r)
	if err != nil {
		return err
	}
	return sh.Read(ctx, regions.Scope{Region: r, User: subject}, queue)
}

// spread returns at most n elements of all, evenly spaced, in order.
func spread[T any](all []T, n int) []T {
	if len(all) <= n {
		return slices.Clone(all)
	}
	out := make([]T, n)
	for i := range out {
		out[i] = all[i*len(all)/n]
	}
	return out
}

// requests builds the requests of every class from p.
func (p Params) requests() [numClasses][]request {
	var reqs [numClasses][]request
	for _, m := range p.Markets {
		reqs[MarketsOfComune] = append(reqs[MarketsOfComune], marketsOfComune(m))
		reqs[StallsOfMarket] = append(reqs[StallsOfMarket], stallsOfMarket(m))
	}
	for _, m := range p.Present {
		reqs[PresencesToday] = append(reqs[PresencesToday], presencesOn(m, p.Day))
	}
	for _, v := range p.Vendors {
		reqs[ConcessionsOfVendor] = append(reqs[ConcessionsOfVendor], concessionsOfVendor(v.region, v.ID))
	}
	if p.DeepTotal > 0 {
		reqs[DeepOffset] = []request{regionMarkets(p.Deep, registry.Page{Limit: pageLimit, Offset: p.Offset})}
		reqs[DeepKeyset] = []request{regionMarkets(p.Deep, registry.Page{Limit: pageLimit, Cursor: p.Cursor})}
	}
	return reqs
}

// sameRequests reports whether a and b ask exactly the same requests.
func sameRequests(a, b [numClasses][]request) bool {
	for k := range a {
		if len(a[k]) != len(b[k]) {
			return false
		}
		for i := range a[k] {
			if a[k][i].path != b[k][i].path || a[k][i].territory != b[k][i].territory {
				return false
			}
		}
	}
	return true
}
