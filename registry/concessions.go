package registry

import (
	"context"
	"time"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// Concession is a vendor's right to a stall between ValidFrom and ValidTo.
type Concession struct {
	ID        int64  `json:"id" db:"id"`
	Region    string `json:"region" db:"region"`
	MarketID  int64  `json:"market_id" db:"market_id"`
	StallID   int64  `json:"stall_id" db:"stall_id"`
	VendorID  int64  `json:"vendor_id" db:"vendor_id"`
	ValidFrom string `json:"valid_from" db:"valid_from"`
	ValidTo   string `json:"valid_to" db:"valid_to"`
	Status    string `json:"status" db:"status"`
}

// ConcessionFilter narrows a concession list; zero fields do not filter.
type ConcessionFilter struct {
	MarketID       int64
	VendorID       int64
	Status         string
	ExpiringBefore time.Time // valid_to before this day
}

const concessionCols = `c.id, lpad(c.region_id::text, 2, '0') AS region, c.market_id, c.stall_id, c.vendor_id,
	to_char(c.valid_from, 'YYYY-MM-DD') AS valid_from, to_char(c.valid_to, 'YYYY-MM-DD') AS valid_to, c.status`

var concessionList = listSpec[Concession]{
	name:  "concessions",
	from:  "FROM concessions c",
	cols:  concessionCols,
	order: "c.id",
	after: func(q *query, c cursor) {
		q.conds = append(q.conds, "c.id > "+q.arg(c.ID))
	},
	cursor: func(c Concession) cursor { return cursor{List: "concessions", ID: c.ID} },
}

// ListConcessions returns one page of the concessions in scope sc matching
// f, ordered by id.
func ListConcessions(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, f ConcessionFilter, p Page) (List[Concession], error) {
	var q query
	q.scoped(sc, "c.", "market_id")
	if f.MarketID != 0 {
		q.where("c.market_id = %s", f.MarketID)
	}
	if f.VendorID != 0 {
		q.where("c.vendor_id = %s", f.VendorID)
	}
	if f.Status != "" {
		q.where("c.status = %s", f.Status)
	}
	if !f.ExpiringBefore.IsZero() {
		q.where("c.valid_to < %s", f.ExpiringBefore)
	}
	return concessionList.run(ctx, sh, sc, q, p, "")
}

// GetConcession returns concession id if it lies in scope sc, else ErrNotFound.
func GetConcession(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, id int64) (Concession, error) {
	var q query
	q.scoped(sc, "c.", "market_id")
	q.where("c.id = %s", id)
	return getOne[Concession](ctx, sh, sc, "SELECT "+concessionCols+" FROM concessions c WHERE "+q.clause(), q.args...)
}
