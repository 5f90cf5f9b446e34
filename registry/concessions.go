package registry

import (
	"context"
	"slices"
	"time"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// Concession is a vendor's right to a stall between ValidFrom and
// EffectiveTo: ValidTo, or the legal extension ExtendedTo.
type Concession struct {
	ID        int64  `json:"id" db:"id"`
	Region    string `json:"region" db:"region"`
	MarketID  int64  `json:"market_id" db:"market_id"`
	StallID   int64  `json:"stall_id" db:"stall_id"`
	VendorID  int64  `json:"vendor_id" db:"vendor_id"`
	ValidFrom string `json:"valid_from" db:"valid_from"`
	ValidTo   string `json:"valid_to" db:"valid_to"`
	Status    string `json:"status" db:"status"`
	Sector    string `json:"sector" db:"sector"`
	// TitleID is the first concession of the title this one continues
	// (through renewals and subingressi); its own id when it starts one.
	TitleID int64 `json:"title_id" db:"title_id"`
	// FollowsID is the concession this one follows, by FollowsBy (RENEWAL
	// or SUBINGRESSO); both nil for the first of a title.
	FollowsID   *int64  `json:"follows_id" db:"follows_id"`
	FollowsBy   *string `json:"follows_by" db:"follows_by"`
	ExtendedTo  *string `json:"extended_to" db:"extended_to"`
	EffectiveTo string  `json:"effective_to" db:"effective_to"`
	// DecadenzaProposedOn and DecadenzaAbsences are the lifecycle job's
	// proposal of decadenza: the day and the unjustified absences it
	// counted; nil when none is proposed.
	DecadenzaProposedOn *string `json:"decadenza_proposed_on" db:"decadenza_proposed_on"`
	DecadenzaAbsences   *int32  `json:"decadenza_absences" db:"decadenza_absences"`
}

// ConcessionFilter narrows a concession list; zero fields do not filter.
type ConcessionFilter struct {
	MarketID       int64
	VendorID       int64
	Status         string
	ExpiringBefore time.Time // effective end (valid_to, or the legal extension) before this day
}

const concessionCols = `c.id, lpad(c.region_id::text, 2, '0') AS region, c.market_id, c.stall_id, c.vendor_id,
	to_char(c.valid_from, 'YYYY-MM-DD') AS valid_from, to_char(c.valid_to, 'YYYY-MM-DD') AS valid_to, c.status,
	c.sector, c.title_id, c.follows_id, c.follows_by, to_char(c.extended_to, 'YYYY-MM-DD') AS extended_to,
	to_char(coalesce(c.extended_to, c.valid_to), 'YYYY-MM-DD') AS effective_to,
	to_char(c.decadenza_proposed_on, 'YYYY-MM-DD') AS decadenza_proposed_on, c.decadenza_absences`

// concessionSpec is the list of concessions by id.
var concessionSpec = listSpec[Concession]{
	name:    "concessions",
	from:    "FROM concessions c",
	cols:    concessionCols,
	where:   []string{"c.region_id = @region"},
	filters: slices.Concat(rowScope("c"), []string{"c.market_id = @market", "c.vendor_id = @vendor", "c.status = @status", "coalesce(c.extended_to, c.valid_to) < @expiring_before"}),
	id:      "c.id",
	cursor:  func(c Concession) cursor { return cursor{List: "concessions", ID: c.ID} },
}

var (
	concessionList = newList(concessionSpec)
	getConcession  = newGetter[Concession](concessionCols, "FROM concessions c", rowScope("c"), "c.region_id = @region", "c.id = @id")
)

// ListConcessions returns one page of the concessions in scope sc matching
// f, ordered by id.
func ListConcessions(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, f ConcessionFilter, p Page) (List[Concession], error) {
	a := scopeArgs(sc)
	given(a, "market", f.MarketID)
	given(a, "vendor", f.VendorID)
	given(a, "status", f.Status)
	if !f.ExpiringBefore.IsZero() {
		a["expiring_before"] = f.ExpiringBefore
	}
	return concessionList.run(ctx, sh, sc, a, p, statement{})
}

// GetConcession returns concession id if it lies in scope sc, else ErrNotFound.
func GetConcession(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, id int64) (Concession, error) {
	return getConcession.get(ctx, sh, sc, id)
}
