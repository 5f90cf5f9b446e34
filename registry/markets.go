package registry

import (
	"context"
	"strings"

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

var marketList = listSpec[Market]{
	name:  "markets",
	from:  "FROM markets m",
	cols:  marketCols,
	order: "m.name, m.id",
	after: func(q *query, c cursor) {
		q.conds = append(q.conds, "(m.name, m.id) > ("+q.arg(c.Text)+", "+q.arg(c.ID)+")")
	},
	cursor: func(m Market) cursor { return cursor{List: "markets", Text: m.Name, ID: m.ID} },
}

// marketScope adds the scope's predicates for the markets table itself.
func marketScope(q *query, sc regions.Scope) {
	q.where("m.region_id = %s", int16(sc.Region.Num()))
	if sc.Province != "" {
		q.where("m.province = %s", sc.Province)
	}
	if sc.Comune != "" {
		q.where("m.comune = %s", sc.Comune)
	}
	if sc.Market != 0 {
		q.where("m.id = %s", sc.Market)
	}
}

// ListMarkets returns one page of the markets in scope sc matching f,
// ordered by name and id.
func ListMarkets(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, f MarketFilter, p Page) (List[Market], error) {
	var q query
	marketScope(&q, sc)
	if f.Province != "" {
		q.where("m.province = %s", f.Province)
	}
	if f.Comune != "" {
		q.where("m.comune = %s", f.Comune)
	}
	if f.Status != "" {
		q.where("m.status = %s", f.Status)
	}
	if f.Q != "" {
		q.where("m.name ILIKE %s", "%"+escapeLike(f.Q)+"%")
	}
	return marketList.run(ctx, sh, sc, q, p, "")
}

// GetMarket returns the market id if it lies in scope sc, else ErrNotFound.
func GetMarket(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, id int64) (Market, error) {
	var q query
	marketScope(&q, sc)
	q.where("m.id = %s", id)
	return getOne[Market](ctx, sh, sc, "SELECT "+marketCols+" FROM markets m WHERE "+q.clause(), q.args...)
}

// marketGuard returns a query (and its arguments) that yields a row when
// market id is visible in scope sc.
func marketGuard(sc regions.Scope, id int64) (string, []any) {
	var q query
	marketScope(&q, sc)
	q.where("m.id = %s", id)
	return "SELECT 1 FROM markets m WHERE " + q.clause(), q.args
}

func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
