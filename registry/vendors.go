package registry

import (
	"context"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// Vendor is a business (impresa) as registered in one region. A vendor
// active in several regions appears in each with the same tax codes.
type Vendor struct {
	ID            int64  `json:"id" db:"id"`
	Region        string `json:"region" db:"region"`
	PartitaIVA    string `json:"partita_iva" db:"partita_iva"`
	CodiceFiscale string `json:"codice_fiscale" db:"codice_fiscale"`
	Denominazione string `json:"denominazione" db:"denominazione"`
	Comune        string `json:"comune" db:"comune"`
	Stato         string `json:"stato" db:"stato"`
}

// VendorFilter narrows a vendor list; empty fields do not filter.
type VendorFilter struct {
	PartitaIVA    string
	CodiceFiscale string
	Q             string // case-insensitive substring of denominazione
}

const vendorCols = `v.id, lpad(v.region_id::text, 2, '0') AS region, v.partita_iva, v.codice_fiscale,
	v.denominazione, v.comune, v.stato`

var vendorList = listSpec[Vendor]{
	name:  "vendors",
	from:  "FROM vendors v",
	cols:  vendorCols,
	order: "v.denominazione, v.id",
	after: func(q *query, c cursor) {
		q.conds = append(q.conds, "(v.denominazione, v.id) > ("+q.arg(c.Text)+", "+q.arg(c.ID)+")")
	},
	cursor: func(v Vendor) cursor { return cursor{List: "vendors", Text: v.Denominazione, ID: v.ID} },
}

// Vendors are the region's registry: every principal of the region sees
// them (a comune office checks in spuntisti registered elsewhere), so only
// the region narrows them, here and in the row-level security policy.

// ListVendors returns one page of the region's vendors matching f, ordered
// by denominazione and id.
func ListVendors(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, f VendorFilter, p Page) (List[Vendor], error) {
	var q query
	q.where("v.region_id = %s", int16(sc.Region.Num()))
	if f.PartitaIVA != "" {
		q.where("v.partita_iva = %s", f.PartitaIVA)
	}
	if f.CodiceFiscale != "" {
		q.where("v.codice_fiscale = %s", f.CodiceFiscale)
	}
	if f.Q != "" {
		q.where("v.denominazione ILIKE %s", "%"+escapeLike(f.Q)+"%")
	}
	return vendorList.run(ctx, sh, sc, q, p, "")
}

// GetVendor returns vendor id if it lies in scope sc's region, else ErrNotFound.
func GetVendor(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, id int64) (Vendor, error) {
	var q query
	q.where("v.region_id = %s", int16(sc.Region.Num()))
	q.where("v.id = %s", id)
	return getOne[Vendor](ctx, sh, sc, "SELECT "+vendorCols+" FROM vendors v WHERE "+q.clause(), q.args...)
}
