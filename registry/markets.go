package registry

import (
	"context"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// Market is a public market.
type Market struct {
	ID         int64   `json:"id" db:"id"`
	Region     string  `json:"region" db:"region"`
	Code       string  `json:"code" db:"code"`
	Name       string  `json:"name" db:"name"`
	Province   string  `json:"province" db:"province"`
	Comune     string  `json:"comune" db:"comune"`
	ComuneName string  `json:"comune_name" db:"comune_name"`
	Days       []int16 `json:"days" db:"days"`
	Status     string  `json:"status" db:"status"`
	CostPerSqm float64 `json:"cost_per_sqm" db:"cost_per_sqm"`
}

// MarketFilter narrows a market list; empty fields do not filter.
type MarketFilter struct {
	Province string // canonical three-digit province code
	Comune   string
	Status   string
	Q        string // case-insensitive substring of the name
}

const marketCols = `m.id, lpad(m.region_id::text, 2, '0') AS region, m.code, m.name, m.province, m.comune,
	m.comune_name, m.days, m.status, m.cost_per_sqm::float8 AS cost_per_sqm`

// marketSpec is the list of markets, regional and national alike.
var marketSpec = listSpec[Market]{
	name:    "markets",
	from:    "FROM markets m",
	cols:    marketCols,
	where:   []string{"m.region_id = @region"},
	filters: slices.Concat(marketScope, []string{"m.province = @province", "m.comune = @comune", "m.status = @status", "m.name ILIKE @q"}),
	key:     "m.name",
	id:      "m.id",
	keyArg:  func(c cursor) (any, bool) { return c.Text, true },
	cursor:  func(m Market) cursor { return cursor{List: "markets", Text: m.Name, ID: m.ID} },
}

var (
	marketList = newList(marketSpec)
	getMarket  = newGetter[MarketDetail](marketCols+", "+regolamentoJSON("m.id")+" AS regolamento", "FROM markets m", marketScope,
		"m.region_id = @region", "m.id = @id")
	// marketGuard yields a row when market @market is visible in the scope.
	marketGuard = newVariants(marketScope, func(on []string) string {
		return "SELECT 1 FROM markets m WHERE " + where(slices.Concat([]string{"m.region_id = @region", "m.id = @market"}, on)...)
	})
)

// marketArgs returns the arguments of scope sc and filter f.
func marketArgs(sc regions.Scope, f MarketFilter) pgx.NamedArgs {
	a := scopeArgs(sc)
	given(a, "province", f.Province)
	given(a, "comune", f.Comune)
	given(a, "status", f.Status)
	if f.Q != "" {
		a["q"] = "%" + escapeLike(f.Q) + "%"
	}
	return a
}

// ListMarkets returns one page of the markets in scope sc matching f,
// ordered by name and id.
func ListMarkets(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, f MarketFilter, p Page) (List[Market], error) {
	return marketList.run(ctx, sh, sc, marketArgs(sc, f), p, statement{})
}

// MarketDetail is a market with the regolamento that applies to it, as
// one market is shown.
type MarketDetail struct {
	Market
	Regolamento Regolamento `json:"regolamento" db:"regolamento"`
}

// GetMarket returns the market id, with its regolamento, if it lies in
// scope sc, else ErrNotFound.
func GetMarket(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, id int64) (MarketDetail, error) {
	return getMarket.get(ctx, sh, sc, id)
}

func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
