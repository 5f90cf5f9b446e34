package registry

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// Field is one field of a patch: Set says whether the patch changes it, V
// is the new value.
type Field[T any] struct {
	Set bool
	V   T
}

// setField gives the argument @set_<column> of an updater when the patch
// sets f.
func setField[T any](a pgx.NamedArgs, column string, f Field[T]) {
	if f.Set {
		a["set_"+column] = f.V
	}
}

// updater is the audited UPDATE of one row of a table by @id in @region,
// with a statement for every combination of the columns a patch sets.
type updater[T any] struct{ v variants }

// newUpdater returns the updater of table (aliased alias in cols, the select
// list of the row's API form) for an audit entity, whose patches set some of
// columns (each from the argument @set_<column>) plus the assignments extra.
func newUpdater[T any](table, alias, entity, cols string, columns []string, extra ...string) updater[T] {
	var sets []string
	for _, c := range columns {
		sets = append(sets, c+" = @set_"+c)
	}
	return updater[T]{newVariants(sets, func(on []string) string {
		return `WITH old AS (
			SELECT * FROM ` + table + ` WHERE id = @id AND region_id = @region FOR UPDATE
		), upd AS (
			UPDATE ` + table + ` t SET ` + strings.Join(slices.Concat(on, extra), ", ") + ` FROM old WHERE t.id = old.id RETURNING t.*
		), ` + auditCTE("audit", "update", entity, "n.id, to_jsonb(o), to_jsonb(n) FROM old o JOIN upd n ON n.id = o.id") + `
		SELECT ` + cols + ` FROM upd ` + alias
	})}
}

// update runs the UPDATE with arguments a (writeArgs, @id and the patch's
// @set_ arguments) and returns the updated row, or ErrNotFound when the
// row is not in scope.
func (u updater[T]) update(ctx context.Context, tx pgx.Tx, a pgx.NamedArgs) (T, error) {
	rows, err := u.v.pick(a).query(ctx, tx, a)
	return collectOne[T](rows, err)
}

// write runs the update with arguments a in its own write transaction.
func (u updater[T]) write(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, w Write, a pgx.NamedArgs) (Result[T], error) {
	return write(ctx, sh, sc, w, func(tx pgx.Tx) (T, bool, error) {
		v, err := u.update(ctx, tx, a)
		return v, false, err
	})
}

var (
	marketUpdate = newUpdater[Market]("markets", "m", "market", marketCols,
		[]string{"code", "name", "comune_name", "days", "status", "cost_per_sqm"}, "updated_at = now()")
	stallUpdate = newUpdater[Stall]("stalls", "s", "stall", stallCols,
		[]string{"number", "type", "status", "width_m", "depth_m", "sector", "reserved_for"}, stallAreaSQL)
	vendorUpdate = newUpdater[Vendor]("vendors", "v", "vendor", vendorCols,
		[]string{"partita_iva", "codice_fiscale", "denominazione", "comune", "status", "registered_on", "categories"})
)

// stallAreaSQL assigns a stall's area: @set_area_mq when the patch sets
// it, else width_m × depth_m when the patch changes either (flagged by
// @width_set and @depth_set) and both are known after it, else the area
// as it was.
const stallAreaSQL = `area_mq = CASE
	WHEN @set_area_mq::numeric IS NOT NULL THEN @set_area_mq::numeric
	WHEN (@width_set::boolean OR @depth_set::boolean)
		AND (CASE WHEN @width_set THEN @set_width_m::numeric ELSE t.width_m END) IS NOT NULL
		AND (CASE WHEN @depth_set THEN @set_depth_m::numeric ELSE t.depth_m END) IS NOT NULL
	THEN round((CASE WHEN @width_set THEN @set_width_m::numeric ELSE t.width_m END)
		* (CASE WHEN @depth_set THEN @set_depth_m::numeric ELSE t.depth_m END), 2)
	ELSE t.area_mq END`

// areaFits reports whether area is width × depth, to the hundredth an
// area keeps, or either side is unknown.
func areaFits(area float64, width, depth *float64) bool {
	return width == nil || depth == nil || math.Abs(area-*width**depth) < 0.01
}

// errAreaRange is a width and depth whose product no area can hold.
var errAreaRange = &InvalidError{Field: "area_mq", Reason: "width_m × depth_m must be above 0 and at most 9999.99"}

// NewMarket is a market to create in the scope's region.
type NewMarket struct {
	Code       string
	Name       string
	Comune     string // six-digit ISTAT code; the province is its first three digits
	ComuneName string
	Days       []int16
	Status     string
	CostPerSqm float64
}

// createMarketSQL is the insert of CreateMarket, with its audit row.
var createMarketSQL = named(`WITH ins AS (
		INSERT INTO markets (id, region_id, code, name, province, comune, comune_name, days, status, cost_per_sqm)
		VALUES (dms.next_id('markets', @region::smallint), @region, @code, @name, left(@comune::text, 3), @comune,
			@comune_name, @days, @status, @cost)
		RETURNING *
	), ` + auditCTE("audit", "create", "market", "n.id, NULL, to_jsonb(n) FROM ins n") + `
	SELECT ` + marketCols + ` FROM ins m`)

// CreateMarket creates a market in scope sc. A code already taken is a
// *ConflictError.
func CreateMarket(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, w Write, in NewMarket) (Result[Market], error) {
	return write(ctx, sh, sc, w, func(tx pgx.Tx) (Market, bool, error) {
		rows, err := createMarketSQL.query(ctx, tx, writeArgs(sc, w, pgx.NamedArgs{"code": in.Code, "name": in.Name, "comune": in.Comune,
			"comune_name": in.ComuneName, "days": in.Days, "status": in.Status, "cost": in.CostPerSqm}))
		m, err := collectOne[Market](rows, err)
		return m, true, err
	})
}

// MarketPatch changes the fields it sets. A market's comune never changes:
// its stalls, concessions and presences carry it.
type MarketPatch struct {
	Code       Field[string]
	Name       Field[string]
	ComuneName Field[string]
	Days       Field[[]int16]
	Status     Field[string]
	CostPerSqm Field[float64]
}

// UpdateMarket applies p to market id in scope sc, or returns ErrNotFound.
func UpdateMarket(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, w Write, id int64, p MarketPatch) (Result[Market], error) {
	a := writeArgs(sc, w, pgx.NamedArgs{"id": id})
	setField(a, "code", p.Code)
	setField(a, "name", p.Name)
	setField(a, "comune_name", p.ComuneName)
	setField(a, "days", p.Days)
	setField(a, "status", p.Status)
	setField(a, "cost_per_sqm", p.CostPerSqm)
	return marketUpdate.write(ctx, sh, sc, w, a)
}

// NewStall is a stall to create in a market.
type NewStall struct {
	Number int32
	Type   string
	Status string
	AreaMq float64
	WidthM *float64
	DepthM *float64
	Sector string // ALIMENTARE or NON_ALIMENTARE; "": NON_ALIMENTARE, the schema's default
	// ReservedFor is the category the stall is reserved for (PRODUTTORE,
	// DISABILE), or nil.
	ReservedFor *string
}

// createStallSQL is the insert of CreateStall, with its audit row.
var createStallSQL = named(`WITH mk AS (
		SELECT id, comune FROM markets WHERE id = @market AND region_id = @region
	), ins AS (
		INSERT INTO stalls (id, region_id, market_id, comune, number, type, status, area_mq, width_m, depth_m, sector, reserved_for)
		SELECT dms.next_id('stalls', @region::smallint), @region, mk.id, mk.comune, @number, @type, @status,
			@area, @width, @depth, coalesce(nullif(@sector::text, ''), 'NON_ALIMENTARE'), @reserved_for
		FROM mk
		RETURNING *
	), ` + auditCTE("audit", "create", "stall", "n.id, NULL, to_jsonb(n) FROM ins n") + `
	SELECT ` + stallCols + ` FROM ins s`)

// CreateStall creates a stall in market marketID, or returns ErrNotFound
// when the market is not in scope sc. A number the market already has is a
// *ConflictError; with a width and a depth, an area that is not their
// product an *InvalidError.
func CreateStall(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, w Write, marketID int64, in NewStall) (Result[Stall], error) {
	if !areaFits(in.AreaMq, in.WidthM, in.DepthM) {
		return Result[Stall]{}, areaMismatch(*in.WidthM, *in.DepthM)
	}
	return write(ctx, sh, sc, w, func(tx pgx.Tx) (Stall, bool, error) {
		rows, err := createStallSQL.query(ctx, tx, writeArgs(sc, w, pgx.NamedArgs{"market": marketID, "number": in.Number, "type": in.Type, "status": in.Status,
			"area": in.AreaMq, "width": in.WidthM, "depth": in.DepthM, "sector": in.Sector, "reserved_for": in.ReservedFor}))
		s, err := collectOne[Stall](rows, err)
		return s, true, err
	})
}

// StallPatch changes the fields it sets; WidthM and DepthM may be set to nil.
type StallPatch struct {
	Number Field[int32]
	Type   Field[string]
	Status Field[string]
	AreaMq Field[float64]
	WidthM Field[*float64]
	DepthM Field[*float64]
	Sector Field[string]
	// ReservedFor may be set to nil: the stall is no longer reserved.
	ReservedFor Field[*string]
}

// UpdateStall applies p to stall id in scope sc, or returns ErrNotFound. A
// stall's area follows its width and depth: a patch that changes either
// sets the area to their product when both are known, and an area set
// while both are known must be their product, else it is an
// *InvalidError. A sector that a concession holding the stall (ATTIVA or
// SOSPESA, not yet ended) does not share, where the market's regolamento
// applies sectors, is a *ConflictError with rule sector-mismatch: the
// office changes the concession's title first.
func UpdateStall(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, w Write, id int64, p StallPatch) (Result[Stall], error) {
	a := writeArgs(sc, w, pgx.NamedArgs{"id": id, "width_set": p.WidthM.Set, "depth_set": p.DepthM.Set})
	setField(a, "number", p.Number)
	setField(a, "type", p.Type)
	setField(a, "status", p.Status)
	setField(a, "area_mq", p.AreaMq)
	setField(a, "width_m", p.WidthM)
	setField(a, "depth_m", p.DepthM)
	setField(a, "sector", p.Sector)
	setField(a, "reserved_for", p.ReservedFor)
	return write(ctx, sh, sc, w, func(tx pgx.Tx) (Stall, bool, error) {
		s, err := stallUpdate.update(ctx, tx, a)
		switch {
		case isPgCode(err, "22003"), isPgConstraint(err, "stalls_area_mq_check"):
			return s, false, errAreaRange
		case err != nil:
			return s, false, err
		case p.AreaMq.Set && !areaFits(s.AreaMq, s.WidthM, s.DepthM):
			return s, false, areaMismatch(*s.WidthM, *s.DepthM)
		case !p.Sector.Set:
			return s, false, nil
		}
		rows, err := stallHolderSectorSQL.query(ctx, tx, a)
		held, err := pgx.CollectRows(rows, pgx.RowTo[string])
		switch {
		case err != nil:
			return s, false, err
		case len(held) > 0:
			return s, false, ruleConflict("sector-mismatch", "%s; its sector stays that of the concession", held[0])
		}
		return s, false, nil
	})
}

// stallHolderSectorSQL describes a concession that holds stall @id (ATTIVA
// or SOSPESA, not ended by today in Europe/Rome) in another sector than
// @set_sector, where its market's regolamento applies sectors.
var stallHolderSectorSQL = named(`SELECT format('concession %s holds the stall in sector %s', c.id, c.sector)
	FROM concessions c
	WHERE c.stall_id = @id AND c.region_id = @region AND c.status IN ('ATTIVA', 'SOSPESA') AND c.sector <> @set_sector
		AND coalesce(c.extended_to, c.valid_to) >= (now() AT TIME ZONE 'Europe/Rome')::date
		AND (SELECT r.sectors FROM dms.regolamento(c.market_id) r)
	ORDER BY c.valid_from LIMIT 1`)

// areaMismatch is an area that is not width × depth.
func areaMismatch(width, depth float64) error {
	return &InvalidError{Field: "area_mq", Reason: fmt.Sprintf("with width_m and depth_m, the area is their product, %.2f", width*depth)}
}

// NewVendor is a vendor to register in the scope's region.
type NewVendor struct {
	PartitaIVA    string
	CodiceFiscale string
	Denominazione string
	Comune        string     // the registered office, anywhere in Italy
	Status        string     // ATTIVA, SOSPESA or CESSATA
	RegisteredOn  *time.Time // registro imprese; nil when unknown
	Categories    []string   // PRODUTTORE, DISABILE
}

// createVendorSQL is the insert of CreateVendor, with its audit row.
var createVendorSQL = named(`WITH ins AS (
		INSERT INTO vendors (id, region_id, partita_iva, codice_fiscale, denominazione, comune, status, registered_on, categories)
		VALUES (dms.next_id('vendors', @region::smallint), @region, @piva, @cf, @den, @comune, @status, @registered_on,
			coalesce(@categories::text[], '{}'))
		RETURNING *
	), ` + auditCTE("audit", "create", "vendor", "n.id, NULL, to_jsonb(n) FROM ins n") + `
	SELECT ` + vendorCols + ` FROM ins v`)

// CreateVendor registers a vendor in scope sc's region. A partita IVA or
// codice fiscale the region already has is a *ConflictError.
func CreateVendor(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, w Write, in NewVendor) (Result[Vendor], error) {
	return write(ctx, sh, sc, w, func(tx pgx.Tx) (Vendor, bool, error) {
		rows, err := createVendorSQL.query(ctx, tx, writeArgs(sc, w, pgx.NamedArgs{"piva": in.PartitaIVA, "cf": in.CodiceFiscale, "den": in.Denominazione,
			"comune": in.Comune, "status": in.Status, "registered_on": in.RegisteredOn, "categories": in.Categories}))
		v, err := collectOne[Vendor](rows, err)
		return v, true, err
	})
}

// VendorPatch changes the fields it sets.
type VendorPatch struct {
	PartitaIVA    Field[string]
	CodiceFiscale Field[string]
	Denominazione Field[string]
	Comune        Field[string]
	Status        Field[string]
	RegisteredOn  Field[*time.Time] // may be set to nil: unknown
	Categories    Field[[]string]
}

// vendorExistsSQL reports whether vendor @id is in @region, which every
// scope of the region may read.
var vendorExistsSQL = named(`SELECT EXISTS (SELECT FROM vendors WHERE id = @id AND region_id = @region)`)

// UpdateVendor applies p to vendor id in scope sc's region. Every scope of
// the region reads its vendors, but row-level security lets a province,
// comune or market scope change only those registered in it, and only a
// regional scope change a stato (migration 00011): a vendor of the region
// outside the scope, or a stato changed by a narrower one, is
// ErrOutsideScope. A vendor not in the region is ErrNotFound.
func UpdateVendor(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, w Write, id int64, p VendorPatch) (Result[Vendor], error) {
	a := writeArgs(sc, w, pgx.NamedArgs{"id": id})
	setField(a, "partita_iva", p.PartitaIVA)
	setField(a, "codice_fiscale", p.CodiceFiscale)
	setField(a, "denominazione", p.Denominazione)
	setField(a, "comune", p.Comune)
	setField(a, "status", p.Status)
	setField(a, "registered_on", p.RegisteredOn)
	setField(a, "categories", p.Categories)
	return write(ctx, sh, sc, w, func(tx pgx.Tx) (Vendor, bool, error) {
		v, err := vendorUpdate.update(ctx, tx, a)
		if !errors.Is(err, ErrNotFound) {
			return v, false, err
		}
		var exists bool
		if err := vendorExistsSQL.queryRow(ctx, tx, a).Scan(&exists); err != nil {
			return v, false, err
		}
		if exists {
			return v, false, fmt.Errorf("%w: vendor %d is registered outside the scope", ErrOutsideScope, id)
		}
		return v, false, ErrNotFound
	})
}

// NewConcession is a concession to grant: vendor VendorID on stall StallID
// of market MarketID, from ValidFrom to ValidTo inclusive, in Sector ("":
// the stall's).
type NewConcession struct {
	MarketID  int64
	StallID   int64
	VendorID  int64
	ValidFrom time.Time
	ValidTo   time.Time
	Sector    string
}

// grant is a concession to insert: a NewConcession and, for one that
// continues a title, the title and the concession it follows and how.
type grant struct {
	NewConcession
	titleID, followsID *int64
	followsBy          *string
}

// The statements of a grant. lockVendorGrantsSQL serialises the grants of
// vendor @vendor, so that two concurrent grants cannot both pass the cap:
// a transaction-scoped advisory lock rather than the vendor row FOR
// UPDATE, which row-level security hides from a province, comune or
// market scope when the vendor is registered elsewhere (migration 00011,
// vendors_update_scope). concessionPartsSQL reads what the grant refers
// to and what its rules need: its market's comune, its stall's market and
// sector, its vendor's state (NULL for each missing), whether the
// market's regolamento applies sectors, the market's stalls, and the
// vendor's concessions at the market in the grant's sector (@sector, else
// the stall's) holding another stall (ATTIVA or SOSPESA) on a day of the
// grant's term: one holding the same stall then is the exclusion
// constraint's conflict, whatever the cap.
var (
	lockVendorGrantsSQL = named(`SELECT pg_advisory_xact_lock(hashtext('dmsrouter concession grant'), hashint8(@vendor::bigint))`)
	concessionPartsSQL  = named(`WITH st AS (
		SELECT market_id, sector FROM stalls WHERE id = @stall AND region_id = @region
	)
	SELECT
		(SELECT comune FROM markets WHERE id = @market AND region_id = @region),
		(SELECT market_id FROM st),
		(SELECT sector FROM st),
		(SELECT status FROM vendors WHERE id = @vendor AND region_id = @region),
		(SELECT r.sectors FROM dms.regolamento(@market) r),
		(SELECT count(*) FROM stalls WHERE market_id = @market AND region_id = @region),
		(SELECT count(*) FROM concessions c
		 WHERE c.vendor_id = @vendor AND c.market_id = @market AND c.region_id = @region AND c.stall_id <> @stall
			AND c.sector = coalesce(@sector::text, (SELECT sector FROM st)) AND c.status IN ('ATTIVA', 'SOSPESA')
			AND daterange(c.valid_from, coalesce(c.extended_to, c.valid_to), '[]') && daterange(@from::date, @to::date, '[]'))`)
)

// grantSQL returns the insert of a grant, audited with action: the
// concession, and the type A authorisation of its sector from its
// market's comune that a concession rests on, unless the vendor has it.
func grantSQL(action string) statement {
	return named(`WITH ins AS (
		INSERT INTO concessions (id, region_id, market_id, comune, stall_id, vendor_id, valid_from, valid_to, status,
			sector, title_id, follows_id, follows_by)
		VALUES (dms.next_id('concessions', @region::smallint), @region, @market, @comune, @stall, @vendor,
			@from, @to, 'ATTIVA', @sector, @title, @follows, @follows_by)
		RETURNING *
	), auth AS (
		INSERT INTO authorisations (id, region_id, vendor_id, type, sector, comune, issued_on)
		SELECT dms.next_id('authorisations', @region::smallint), n.region_id, n.vendor_id, 'A', n.sector, n.comune, n.valid_from
		FROM ins n
		ON CONFLICT ON CONSTRAINT authorisations_vendor_type_sector DO NOTHING
		RETURNING *
	), ` + auditCTE("audit", action, "concession", "n.id, NULL, to_jsonb(n) FROM ins n") + `, ` +
		auditCTE("audit_auth", "create", "authorisation", "n.id, NULL, to_jsonb(n) FROM auth n") + `
	SELECT ` + concessionCols + ` FROM ins c`)
}

var (
	createConcessionSQL = grantSQL("create")
	renewConcessionSQL  = grantSQL("renewal")
)

// The caps of concessions per vendor, market and sector (Intesa
// Stato-Regioni 5 July 2012, point 7; L. 214/2023 art. 11 c.2(c)): two, and
// three at a market of more than bigMarketStalls stalls.
const (
	concessionCap    = 2
	bigConcessionCap = 3
	bigMarketStalls  = 100
)

// concessionLimit is the most concessions a vendor may hold in one sector
// at a market of stalls stalls.
func concessionLimit(stalls int) int {
	if stalls > bigMarketStalls {
		return bigConcessionCap
	}
	return concessionCap
}

// grantConcession inserts g in tx with the insert ins, after the checks
// every grant passes. A market, stall or vendor not in scope is a
// *MissingError, a stall of another market an *InvalidError; a vendor that
// is not ATTIVA, another concession holding the stall on a day of the
// term, a sector other than the stall's where the regolamento applies
// sectors (rule sector-mismatch) and a vendor at its cap of concessions in
// the sector at the market (rule concession-cap) are a *ConflictError.
func grantConcession(ctx context.Context, tx pgx.Tx, sc regions.Scope, w Write, g grant, ins statement) (Concession, error) {
	var sector *string
	if g.Sector != "" {
		sector = &g.Sector
	}
	a := writeArgs(sc, w, pgx.NamedArgs{"market": g.MarketID, "stall": g.StallID, "vendor": g.VendorID, "from": g.ValidFrom, "to": g.ValidTo,
		"sector": sector, "title": g.titleID, "follows": g.followsID, "follows_by": g.followsBy})
	if _, err := lockVendorGrantsSQL.exec(ctx, tx, a); err != nil {
		return Concession{}, err
	}
	var (
		comune, stallSector, vendorStatus *string
		stallMarket                       *int64
		sectors                           bool
		stalls, held                      int
	)
	err := concessionPartsSQL.queryRow(ctx, tx, a).Scan(&comune, &stallMarket, &stallSector, &vendorStatus, &sectors, &stalls, &held)
	switch {
	case err != nil:
		return Concession{}, err
	case comune == nil:
		return Concession{}, &MissingError{Field: "market_id"}
	case stallMarket == nil:
		return Concession{}, &MissingError{Field: "stall_id"}
	case *stallMarket != g.MarketID:
		return Concession{}, &InvalidError{Field: "stall_id", Reason: "not a stall of this market"}
	case vendorStatus == nil:
		return Concession{}, &MissingError{Field: "vendor_id"}
	case *vendorStatus != "ATTIVA":
		return Concession{}, conflict("the vendor is %s", *vendorStatus)
	case sector != nil && sectors && *sector != *stallSector:
		return Concession{}, ruleConflict("sector-mismatch", "the stall is of sector %s, the concession of %s; the market's regolamento applies sectors",
			*stallSector, *sector)
	}
	if held >= concessionLimit(stalls) {
		if sector == nil {
			sector = stallSector
		}
		return Concession{}, ruleConflict("concession-cap",
			"the vendor holds %d concessions of sector %s at this market in these dates, the most a vendor may hold at a market of %d stalls",
			held, *sector, stalls)
	}
	a["comune"] = *comune
	rows, err := ins.query(ctx, tx, a)
	return collectOne[Concession](rows, err)
}

// CreateConcession grants an ATTIVA concession in scope sc, with the type
// A authorisation it rests on when the vendor has none of its sector from
// the market's comune. The errors are grantConcession's.
func CreateConcession(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, w Write, in NewConcession) (Result[Concession], error) {
	return write(ctx, sh, sc, w, func(tx pgx.Tx) (Concession, bool, error) {
		c, err := grantConcession(ctx, tx, sc, w, grant{NewConcession: in}, createConcessionSQL)
		return c, true, err
	})
}

// Renewal is a new period of a concession's title: from ValidFrom (the
// zero time: the day after the renewed concession's effective end) to
// ValidTo inclusive.
type Renewal struct {
	ValidFrom time.Time
	ValidTo   time.Time
}

// renewableStatuses are the statuses of a concession that may be renewed.
var renewableStatuses = []string{"ATTIVA", "SOSPESA", "SCADUTA"}

// lockRenewedSQL reads concession @id, which a renewal continues, for update.
var lockRenewedSQL = named(`SELECT market_id, stall_id, vendor_id, sector, title_id, status, coalesce(extended_to, valid_to)
	FROM concessions WHERE id = @id AND region_id = @region FOR UPDATE`)

// RenewConcession grants, in scope sc, a new ATTIVA concession on the
// title of concession id (same title, vendor, market, stall and sector;
// follows id by RENEWAL), audited as a renewal. Only an ATTIVA, SOSPESA or
// SCADUTA concession is renewed, else a *ConflictError; the new term
// starts after the old one's effective end (a ValidFrom on or before it,
// or a ValidTo not after the start, is an *InvalidError). A concession not
// in scope is ErrNotFound; the grant's own errors are grantConcession's.
func RenewConcession(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, w Write, id int64, in Renewal) (Result[Concession], error) {
	return write(ctx, sh, sc, w, func(tx pgx.Tx) (Concession, bool, error) {
		var (
			g      grant
			status string
			end    time.Time
		)
		err := lockRenewedSQL.queryRow(ctx, tx, writeArgs(sc, w, pgx.NamedArgs{"id": id})).
			Scan(&g.MarketID, &g.StallID, &g.VendorID, &g.Sector, &g.titleID, &status, &end)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return Concession{}, false, ErrNotFound
		case err != nil:
			return Concession{}, false, err
		case !slices.Contains(renewableStatuses, status):
			return Concession{}, false, conflict("a %s concession cannot be renewed", status)
		}
		g.ValidFrom, g.ValidTo = in.ValidFrom, in.ValidTo
		if g.ValidFrom.IsZero() {
			g.ValidFrom = end.AddDate(0, 0, 1)
		}
		if !g.ValidFrom.After(end) {
			return Concession{}, false, &InvalidError{Field: "valid_from",
				Reason: "a renewal starts after the renewed concession ends, " + end.Format(time.DateOnly)}
		}
		if !g.ValidTo.After(g.ValidFrom) {
			return Concession{}, false, &InvalidError{Field: "valid_to", Reason: "must be after valid_from, " + g.ValidFrom.Format(time.DateOnly)}
		}
		renewal := "RENEWAL"
		g.followsID, g.followsBy = &id, &renewal
		c, err := grantConcession(ctx, tx, sc, w, g, renewConcessionSQL)
		return c, true, err
	})
}

// concessionTransitions are the status changes a request may make. SCADUTA
// is never set by hand: the lifecycle job sets it when the term ends.
// DECADUTA confirms the lifecycle job's proposal of decadenza (too many
// unjustified absences, D.Lgs. 114/1998 art. 29 c.4(b)): only a proposed
// concession may become DECADUTA.
var concessionTransitions = map[string][]string{
	"ATTIVA":  {"SOSPESA", "REVOCATA", "CESSATA", "DECADUTA"},
	"SOSPESA": {"ATTIVA", "REVOCATA", "CESSATA", "DECADUTA"},
}

// The statements of SetConcessionStatus: lockConcessionSQL reads concession
// @id's status, effective end (with its legal extension) and whether the
// lifecycle job proposed its decadenza, for update; setConcessionStatusSQL
// sets its @status and audits the change with its @reason.
var (
	lockConcessionSQL = named(`SELECT status, coalesce(extended_to, valid_to), decadenza_proposed_on IS NOT NULL
		FROM concessions WHERE id = @id AND region_id = @region FOR UPDATE`)
	setConcessionStatusSQL = named(`WITH old AS (
		SELECT * FROM concessions WHERE id = @id AND region_id = @region
	), upd AS (
		UPDATE concessions t SET status = @status FROM old WHERE t.id = old.id RETURNING t.*
	), ` + auditCTE("audit", "status", "concession",
		"n.id, to_jsonb(o), to_jsonb(n) || jsonb_build_object('reason', @reason::text) FROM old o JOIN upd n ON n.id = o.id") + `
	SELECT ` + concessionCols + ` FROM upd c`)
)

// SetConcessionStatus moves concession id in scope sc to status, recording
// reason in the audit log. Only ATTIVA <-> SOSPESA, and ATTIVA or SOSPESA
// -> REVOCATA, CESSATA or DECADUTA are allowed; any other change,
// reactivating a concession whose term (with its legal extension) ended
// before today, or reactivating one whose stall meanwhile has another
// concession is a *ConflictError, as is DECADUTA for a concession the
// lifecycle job has not proposed (rule not-proposed). A concession not in
// scope is ErrNotFound.
func SetConcessionStatus(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, w Write, id int64, status, reason string, today time.Time) (Result[Concession], error) {
	return write(ctx, sh, sc, w, func(tx pgx.Tx) (Concession, bool, error) {
		var (
			from     string
			end      time.Time
			proposed bool
		)
		a := writeArgs(sc, w, pgx.NamedArgs{"id": id, "status": status, "reason": reason})
		err := lockConcessionSQL.queryRow(ctx, tx, a).Scan(&from, &end, &proposed)
		if errors.Is(err, pgx.ErrNoRows) {
			return Concession{}, false, ErrNotFound
		}
		if err != nil {
			return Concession{}, false, err
		}
		switch {
		case !slices.Contains(concessionTransitions[from], status):
			return Concession{}, false, conflict("a %s concession cannot become %s", from, status)
		case status == "ATTIVA" && end.Before(today):
			return Concession{}, false, conflict("the concession expired on %s: it is SCADUTA", end.Format(time.DateOnly))
		case status == "DECADUTA" && !proposed:
			return Concession{}, false, ruleConflict("not-proposed",
				"the concession is not proposed for decadenza: the lifecycle job proposes it when its unjustified absences exceed the limit")
		}
		rows, err := setConcessionStatusSQL.query(ctx, tx, a)
		c, err := collectOne[Concession](rows, err)
		return c, false, err
	})
}
