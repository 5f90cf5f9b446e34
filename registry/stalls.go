package registry

import (
	"context"
	"slices"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// Stall is a numbered pitch (posteggio) of a market.
type Stall struct {
	ID       int64    `json:"id" db:"id"`
	Region   string   `json:"region" db:"region"`
	MarketID int64    `json:"market_id" db:"market_id"`
	Number   int32    `json:"number" db:"number"`
	Type     string   `json:"type" db:"type"`
	Status   string   `json:"status" db:"status"`
	AreaMq   float64  `json:"area_mq" db:"area_mq"`
	WidthM   *float64 `json:"width_m" db:"width_m"`
	DepthM   *float64 `json:"depth_m" db:"depth_m"`
	// Sector is the stall's settore merceologico, ALIMENTARE or
	// NON_ALIMENTARE; its concessions share it where the regolamento
	// applies sectors.
	Sector string `json:"sector" db:"sector"`
	// ReservedFor is the category of vendors the spunta offers the stall
	// to first (PRODUTTORE, DISABILE), or nil.
	ReservedFor *string `json:"reserved_for" db:"reserved_for"`
}

// StallFilter narrows a stall list; empty fields do not filter.
type StallFilter struct {
	Status string
	Type   string
}

const stallCols = `s.id, lpad(s.region_id::text, 2, '0') AS region, s.market_id, s.number, s.type, s.status,
	s.area_mq::float8 AS area_mq, s.width_m::float8 AS width_m, s.depth_m::float8 AS depth_m, s.sector, s.reserved_for`

var (
	stallList = newList(listSpec[Stall]{
		name:    "stalls",
		from:    "FROM stalls s",
		cols:    stallCols,
		where:   []string{"s.region_id = @region", "s.market_id = @market"},
		filters: slices.Concat(rowScope("s"), []string{"s.status = @status", "s.type = @type"}),
		key:     "s.number",
		id:      "s.id",
		keyArg:  func(c cursor) (any, bool) { return int32(c.Num), true },
		cursor:  func(s Stall) cursor { return cursor{List: "stalls", Num: int64(s.Number), ID: s.ID} },
	})
	getStall = newGetter[Stall](stallCols, "FROM stalls s", rowScope("s"), "s.region_id = @region", "s.id = @id")
)

// ListStalls returns one page of the stalls of market marketID, ordered by
// number, or ErrNotFound when the market is not visible in scope sc.
func ListStalls(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, marketID int64, f StallFilter, p Page) (List[Stall], error) {
	a := scopeArgs(sc)
	a["market"] = marketID
	given(a, "status", f.Status)
	given(a, "type", f.Type)
	return stallList.run(ctx, sh, sc, a, p, marketGuard.pick(a))
}

// GetStall returns stall id if it lies in scope sc, else ErrNotFound.
func GetStall(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, id int64) (Stall, error) {
	return getStall.get(ctx, sh, sc, id)
}
