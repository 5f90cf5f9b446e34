package bench

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/registry"
	"github.com/dmshub/dmsrouter/shardmap"
)

// The query classes of the mix. Each is one read of the API, asked of the
// router over HTTP and of the shard (or the monolith) through the registry
// function the router's handler calls, so every arm runs the same SQL in
// the same single-round-trip batch.
const (
	MarketsOfComune = iota
	StallsOfMarket
	PresencesToday
	ConcessionsOfVendor
	DeepOffset
	DeepKeyset
	numClasses
)

// Class describes a query class: its name in reports, what it asks and
// its share of the mix.
type Class struct {
	Name   string
	About  string
	Weight int // percent of the requests of the mix
}

// Classes returns the query classes of the mix, indexed by the constants
// above. The weights sum to 100.
func Classes() []Class {
	return []Class{
		MarketsOfComune:     {"markets_of_comune", "GET /v1/markets?comune=C (page of 50), comune token", 25},
		StallsOfMarket:      {"stalls_of_market", "GET /v1/markets/{id}/stalls (page of 50), comune token", 20},
		PresencesToday:      {"presences_today", "GET /v1/markets/{id}/presences?date=D (page of 50), comune token", 25},
		ConcessionsOfVendor: {"concessions_of_vendor", "GET /v1/concessions?vendor_id=V (page of 50), region token", 15},
		DeepOffset:          {"region_deep_offset", "GET /v1/markets?region=R&offset=O (page of 50), region token", 7},
		DeepKeyset:          {"region_deep_keyset", "GET /v1/markets?region=R&cursor=K, the same page by keyset, region token", 8},
	}
}

// pageLimit is the page size of every request: the API's default.
const pageLimit = 50

// request is one concrete request of a class: the territory it is asked
// in, the router's URL path, and the registry call that runs the same SQL
// on a shard.
type request struct {
	region    regions.Code
	territory regions.Territory
	path      string // path and query of the router's URL
	query     func(ctx context.Context, sh *shardmap.Shard, sc regions.Scope) (total int64, items int, err error)
}

// scope returns the scope the router derives for the request's principal.
func (r request) scope() (regions.Scope, error) {
	return r.territory.Scope(r.region, subject)
}

// subject is the token subject of every request, and so the dms.user
// setting of every scope.
const subject = "bench"

func comuneTerritory(c string) regions.Territory {
	return regions.Territory{Level: regions.Municipal, Code: c}
}

func regionTerritory(r regions.Code) regions.Territory {
	return regions.Territory{Level: regions.Regional, Code: string(r)}
}

func marketsOfComune(m marketRef) request {
	return request{
		region:    m.region,
		territory: comuneTerritory(m.Comune),
		path:      "/v1/markets?comune=" + m.Comune,
		query: func(ctx context.Context, sh *shardmap.Shard, sc regions.Scope) (int64, int, error) {
			l, err := registry.ListMarkets(ctx, sh, sc, registry.MarketFilter{Comune: m.Comune}, registry.Page{Limit: pageLimit})
			return l.Total, len(l.Items), err
		},
	}
}

func stallsOfMarket(m marketRef) request {
	return request{
		region:    m.region,
		territory: comuneTerritory(m.Comune),
		path:      "/v1/markets/" + strconv.FormatInt(m.ID, 10) + "/stalls",
		query: func(ctx context.Context, sh *shardmap.Shard, sc regions.Scope) (int64, int, error) {
			l, err := registry.ListStalls(ctx, sh, sc, m.ID, registry.StallFilter{}, registry.Page{Limit: pageLimit})
			return l.Total, len(l.Items), err
		},
	}
}

func presencesOn(m marketRef, day time.Time) request {
	return request{
		region:    m.region,
		territory: comuneTerritory(m.Comune),
		path:      "/v1/markets/" + strconv.FormatInt(m.ID, 10) + "/presences?date=" + day.Format(time.DateOnly),
		query: func(ctx context.Context, sh *shardmap.Shard, sc regions.Scope) (int64, int, error) {
			l, err := registry.ListPresences(ctx, sh, sc, m.ID, day, registry.Page{Limit: pageLimit})
			return l.Total, len(l.Items), err
		},
	}
}

func concessionsOfVendor(r regions.Code, vendor int64) request {
	return request{
		region:    r,
		territory: regionTerritory(r),
		path:      "/v1/concessions?vendor_id=" + strconv.FormatInt(vendor, 10),
		query: func(ctx context.Context, sh *shardmap.Shard, sc regions.Scope) (int64, int, error) {
			l, err := registry.ListConcessions(ctx, sh, sc, registry.ConcessionFilter{VendorID: vendor}, registry.Page{Limit: pageLimit})
			return l.Total, len(l.Items), err
		},
	}
}

func regionMarkets(r regions.Code, p registry.Page) request {
	path := "/v1/markets?region=" + string(r)
	switch {
	case p.Cursor != "":
		path += "&cursor=" + url.QueryEscape(p.Cursor)
	case p.Offset > 0:
		path += "&offset=" + strconv.Itoa(p.Offset)
	}
	return request{
		region:    r,
		territory: regionTerritory(r),
		path:      path,
		query: func(ctx context.Context, sh *shardmap.Shard, sc regions.Scope) (int64, int, error) {
			l, err := registry.ListMarkets(ctx, sh, sc, registry.MarketFilter{}, p)
			return l.Total, len(l.Items), err
		},
	}
}

// run runs the request's registry call on the shard of m that serves its region.
func (r request) run(ctx context.Context, m *shardmap.Map) (int64, int, error) {
	sh, err := m.For(r.region)
	if err != nil {
		return 0, 0, err
	}
	sc, err := r.scope()
	if err != nil {
		return 0, 0, fmt.Errorf("scope of %s: %w", r.path, err)
	}
	return r.query(ctx, sh, sc)
}
