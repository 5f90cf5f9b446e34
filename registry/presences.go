package registry

import (
	"context"
	"time"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// Presence is a vendor's check-in at a market on a market day.
type Presence struct {
	ID         int64      `json:"id" db:"id"`
	Region     string     `json:"region" db:"region"`
	MarketID   int64      `json:"market_id" db:"market_id"`
	VendorID   int64      `json:"vendor_id" db:"vendor_id"`
	StallID    *int64     `json:"stall_id" db:"stall_id"`
	Date       string     `json:"date" db:"date"`
	Kind       string     `json:"kind" db:"kind"`
	CheckinAt  time.Time  `json:"checkin_at" db:"checkin_at"`
	CheckoutAt *time.Time `json:"checkout_at" db:"checkout_at"`
	// Outcome is a spuntista's day: ASSIGNED, UNASSIGNED or REFUSED at the
	// spunta, LATE when it checked in after the call (appello); null for a
	// holder, and for a spuntista until the spunta.
	Outcome *string `json:"outcome" db:"outcome"`
}

const presenceCols = `p.id, lpad(p.region_id::text, 2, '0') AS region, p.market_id, p.vendor_id, p.stall_id,
	to_char(p.date, 'YYYY-MM-DD') AS date, p.kind, p.checkin_at, p.checkout_at, p.outcome`

var presenceList = newList(listSpec[Presence]{
	name:    "presences",
	from:    "FROM vendor_presences p",
	cols:    presenceCols,
	where:   []string{"p.region_id = @region", "p.market_id = @market", "p.date = @date"},
	filters: rowScope("p"),
	id:      "p.id",
	cursor:  func(p Presence) cursor { return cursor{List: "presences", ID: p.ID} },
	generic: true, // see genericPlans
})

// genericPlans makes the rest of a read's transaction use the plan cache's
// generic plan of each statement (in a read, shardmap.Shard.ReadGeneric
// sets it in the scope statement). vendor_presences has a partition per
// month, and years of them once a region has history. Planned for its
// values, a statement reads one partition but pays for pruning the others
// and for row-level security on every execution (0.4 to 0.9 ms measured
// at 84 partitions, more than running it); the generic plan prunes when it
// runs and costs a few hundredths of a millisecond to reuse. PostgreSQL
// would not choose it by itself, because it costs the plan as if it read
// every partition. Building it takes tens of milliseconds, once per
// connection and statement.
const genericPlans = `SELECT set_config('plan_cache_mode', 'force_generic_plan', true)`

// ListPresences returns one page of the presences of market marketID on
// day, ordered by id, or ErrNotFound when the market is not visible in
// scope sc.
func ListPresences(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, marketID int64, day time.Time, p Page) (List[Presence], error) {
	a := scopeArgs(sc)
	a["market"], a["date"] = marketID, day
	return presenceList.run(ctx, sh, sc, a, p, marketGuard.pick(a))
}
