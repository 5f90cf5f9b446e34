package registry

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// Authorisation is a vendor's licence to trade in one sector: type A on a
// stall, issued by the comune of its market with the concession; type B
// itinerant, valid in all of Italy, issued by the comune of the vendor's
// residence. A spuntista is ranked in the sectors it is authorised for.
// Authorisations are the region's registry, as vendors are.
type Authorisation struct {
	ID       int64   `json:"id" db:"id"`
	Region   string  `json:"region" db:"region"`
	VendorID int64   `json:"vendor_id" db:"vendor_id"`
	Type     string  `json:"type" db:"type"`
	Sector   string  `json:"sector" db:"sector"`
	Comune   string  `json:"comune" db:"comune"` // the issuing comune's ISTAT code
	Number   string  `json:"number" db:"number"`
	IssuedOn *string `json:"issued_on" db:"issued_on"`
}

// VendorAuthorisations are the authorisations of one vendor.
type VendorAuthorisations struct {
	VendorID int64           `json:"vendor_id"`
	Items    []Authorisation `json:"items"`
}

const authorisationCols = `a.id, lpad(a.region_id::text, 2, '0') AS region, a.vendor_id, a.type, a.sector, a.comune, a.number,
	to_char(a.issued_on, 'YYYY-MM-DD') AS issued_on`

// authorisationsSQL lists the authorisations of vendor @id in @region.
var authorisationsSQL = named(`SELECT ` + authorisationCols + ` FROM authorisations a
	WHERE a.vendor_id = @id AND a.region_id = @region ORDER BY a.type, a.sector, a.comune, a.id`)

// ListAuthorisations returns the authorisations of vendor id, ordered by
// type, sector and comune, if the vendor lies in scope sc's region, else
// ErrNotFound.
func ListAuthorisations(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, id int64) (VendorAuthorisations, error) {
	out := VendorAuthorisations{VendorID: id, Items: []Authorisation{}}
	found := false
	a := pgx.NamedArgs{"region": int16(sc.Region.Num()), "id": id}
	err := sh.Read(ctx, sc, func(b *pgx.Batch) {
		vendorExistsSQL.queue(b, a).QueryRow(func(row pgx.Row) error { return row.Scan(&found) })
		authorisationsSQL.queue(b, a).Query(func(rows pgx.Rows) error {
			items, err := pgx.CollectRows(rows, pgx.RowToStructByName[Authorisation])
			if len(items) > 0 {
				out.Items = items
			}
			return err
		})
	})
	if err == nil && !found {
		err = ErrNotFound
	}
	return out, err
}

// NewAuthorisation is an authorisation to record for a vendor.
type NewAuthorisation struct {
	Type     string // A or B
	Sector   string // ALIMENTARE or NON_ALIMENTARE
	Comune   string // the issuing comune's ISTAT code
	Number   string
	IssuedOn *time.Time
}

// createAuthorisationSQL is the insert of CreateAuthorisation, with its
// audit row; no row when vendor @vendor is not in @region.
var createAuthorisationSQL = named(`WITH ins AS (
		INSERT INTO authorisations (id, region_id, vendor_id, type, sector, comune, number, issued_on)
		SELECT dms.next_id('authorisations', @region::smallint), @region, v.id, @type, @sector, @comune, @number, @issued_on
		FROM vendors v WHERE v.id = @vendor AND v.region_id = @region
		RETURNING *
	), ` + auditCTE("audit", "create", "authorisation", "n.id, NULL, to_jsonb(n) FROM ins n") + `
	SELECT ` + authorisationCols + ` FROM ins a`)

// CreateAuthorisation records an authorisation of vendor vendorID in scope
// sc's region, or returns ErrNotFound when the vendor is not there. An
// authorisation of the same type and sector from the same comune that the
// vendor already has is a *ConflictError.
func CreateAuthorisation(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, w Write, vendorID int64, in NewAuthorisation) (Result[Authorisation], error) {
	return write(ctx, sh, sc, w, func(tx pgx.Tx) (Authorisation, bool, error) {
		rows, err := createAuthorisationSQL.query(ctx, tx, writeArgs(sc, w, pgx.NamedArgs{"vendor": vendorID, "type": in.Type,
			"sector": in.Sector, "comune": in.Comune, "number": in.Number, "issued_on": in.IssuedOn}))
		au, err := collectOne[Authorisation](rows, err)
		if isPgConstraint(err, "authorisations_vendor_type_sector") {
			err = conflict("the vendor has a type %s authorisation of sector %s from comune %s", in.Type, in.Sector, in.Comune)
		}
		return au, true, err
	})
}
