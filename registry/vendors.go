package registry

import (
	"context"

	"github.com/jackc/pgx/v5"

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
	Status        string `json:"status" db:"status"`
	// RegisteredOn is the date of the business's registration (registro
	// imprese), the graduatoria's first tie-break; nil when unknown.
	RegisteredOn *string `json:"registered_on" db:"registered_on"`
	// Categories are the categories a reserved stall may be reserved for
	// that the vendor belongs to: PRODUTTORE, DISABILE.
	Categories []string `json:"categories" db:"categories"`
}

// VendorFilter narrows a vendor list; empty fields do not filter.
type VendorFilter struct {
	PartitaIVA    string
	CodiceFiscale string
	Q             string // case-insensitive substring of denominazione
}

const vendorCols = `v.id, lpad(v.region_id::text, 2, '0') AS region, v.partita_iva, v.codice_fiscale,
	v.denominazione, v.comune, v.status, to_char(v.registered_on, 'YYYY-MM-DD') AS registered_on, v.categories`

// Vendors are the region's registry: every principal of the region sees
// them (a comune office checks in spuntisti registered elsewhere), so only
// the region narrows them, here and in the row-level security policy.

var (
	vendorList = newList(listSpec[Vendor]{
		name:    "vendors",
		from:    "FROM vendors v",
		cols:    vendorCols,
		where:   []string{"v.region_id = @region"},
		filters: []string{"v.partita_iva = @partita_iva", "v.codice_fiscale = @codice_fiscale", "v.denominazione ILIKE @q"},
		key:     "v.denominazione",
		id:      "v.id",
		keyArg:  func(c cursor) (any, bool) { return c.Text, true },
		cursor:  func(v Vendor) cursor { return cursor{List: "vendors", Text: v.Denominazione, ID: v.ID} },
	})
	getVendor = newGetter[Vendor](vendorCols, "FROM vendors v", nil, "v.region_id = @region", "v.id = @id")
)

// ListVendors returns one page of the region's vendors matching f, ordered
// by denominazione and id.
func ListVendors(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, f VendorFilter, p Page) (List[Vendor], error) {
	a := pgx.NamedArgs{"region": int16(sc.Region.Num())}
	given(a, "partita_iva", f.PartitaIVA)
	given(a, "codice_fiscale", f.CodiceFiscale)
	if f.Q != "" {
		a["q"] = "%" + escapeLike(f.Q) + "%"
	}
	return vendorList.run(ctx, sh, sc, a, p, statement{})
}

// GetVendor returns vendor id if it lies in scope sc's region, else ErrNotFound.
func GetVendor(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, id int64) (Vendor, error) {
	return getVendor.get(ctx, sh, sc, id)
}
