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
	stallUpdate  = newUpdater[Stall]("stalls", "s", "stall", stallCols, []string{"number", "type", "status", "width_m", "depth_m"}, stallAreaSQL)
	vendorUpdate = newUpdater[Vendor]("vendors", "v", "vendor", vendorCols,
		[]string{"partita_iva", "codice_fiscale", "denominazione", "comune", "status"})
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
}

// createStallSQL is the insert of CreateStall, with its audit row.
var createStallSQL = named(`WITH mk AS (
		SELECT id, comune FROM markets WHERE id = @market AND region_id = @region
	), ins AS (
		INSERT INTO stalls (id, region_id, market_id, comune, number, type, status, area_mq, width_m, depth_m)
		SELECT dms.next_id('stalls', @region::smallint), @region, mk.id, mk.comune, @number, @type, @status,
			@area, @width, @depth
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
			"area": in.AreaMq, "width": in.WidthM, "depth": in.DepthM}))
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
}

// UpdateStall applies p to stall id in scope sc, or returns ErrNotFound. A
// stall's area follows its width and depth: a patch that changes either
// sets the area to their product when both are known, and an area set
// while both are known must be their product, else it is an
// *InvalidError.
func UpdateStall(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, w Write, id int64, p StallPatch) (Result[Stall], error) {
	a := writeArgs(sc, w, pgx.NamedArgs{"id": id, "width_set": p.WidthM.Set, "depth_set": p.DepthM.Set})
	setField(a, "number", p.Number)
	setField(a, "type", p.Type)
	setField(a, "status", p.Status)
	setField(a, "area_mq", p.AreaMq)
	setField(a, "width_m", p.WidthM)
	setField(a, "depth_m", p.DepthM)
	return write(ctx, sh, sc, w, func(tx pgx.Tx) (Stall, bool, error) {
		s, err := stallUpdate.update(ctx, tx, a)
		switch {
		case isPgCode(err, "22003"), isPgConstraint(err, "stalls_area_mq_check"):
			return s, false, errAreaRange
		case err != nil:
			return s, false, err
		case p.AreaMq.Set && !areaFits(s.AreaMq, s.WidthM, s.DepthM):
			return s, false, areaMismatch(*s.WidthM, *s.DepthM)
		}
		return s, false, nil
	})
}

// areaMismatch is an area that is not width × depth.
func areaMismatch(width, depth float64) error {
	return &InvalidError{Field: "area_mq", Reason: fmt.Sprintf("with width_m and depth_m, the area is their product, %.2f", width*depth)}
}

// NewVendor is a vendor to register in the scope's region.
type NewVendor struct {
	PartitaIVA    string
	CodiceFiscale string
	Denominazione string
	Comune        string // the registered office, anywhere in Italy
	Status        string // ATTIVA, SOSPESA or CESSATA
}

// createVendorSQL is the insert of CreateVendor, with its audit row.
var createVendorSQL = named(`WITH ins AS (
		INSERT INTO vendors (id, region_id, partita_iva, codice_fiscale, denominazione, comune, status)
		VALUES (dms.next_id('vendors', @region::smallint), @region, @piva, @cf, @den, @comune, @status)
		RETURNING *
	), ` + auditCTE("audit", "create", "vendor", "n.id, NULL, to_jsonb(n) FROM ins n") + `
	SELECT ` + vendorCols + ` FROM ins v`)

// CreateVendor registers a vendor in scope sc's region. A partita IVA or
// codice fiscale the region already has is a *ConflictError.
func CreateVendor(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, w Write, in NewVendor) (Result[Vendor], error) {
	return write(ctx, sh, sc, w, func(tx pgx.Tx) (Vendor, bool, error) {
		rows, err := createVendorSQL.query(ctx, tx, writeArgs(sc, w, pgx.NamedArgs{"piva": in.PartitaIVA, "cf": in.CodiceFiscale, "den": in.Denominazione,
			"comune": in.Comune, "status": in.Status}))
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
// of market MarketID, from ValidFrom to ValidTo inclusive.
type NewConcession struct {
	MarketID  int64
	StallID   int64
	VendorID  int64
	ValidFrom time.Time
	ValidTo   time.Time
}

// concessionPartsSQL reads what a new concession refers to: its market's
// comune, its stall's market and its vendor's state (NULL for each missing).
var concessionPartsSQL = named(`SELECT
	(SELECT comune FROM markets WHERE id = @market AND region_id = @region),
	(SELECT market_id FROM stalls WHERE id = @stall AND region_id = @region),
	(SELECT status FROM vendors WHERE id = @vendor AND region_id = @region)`)

// createConcessionSQL is the insert of CreateConcession, with its audit row.
var createConcessionSQL = named(`WITH ins AS (
		INSERT INTO concessions (id, region_id, market_id, comune, stall_id, vendor_id, valid_from, valid_to, status)
		VALUES (dms.next_id('concessions', @region::smallint), @region, @market, @comune, @stall, @vendor,
			@from, @to, 'ATTIVA')
		RETURNING *
	), ` + auditCTE("audit", "create", "concession", "n.id, NULL, to_jsonb(n) FROM ins n") + `
	SELECT ` + concessionCols + ` FROM ins c`)

// CreateConcession grants an ATTIVA concession in scope sc. A market, stall
// or vendor not in scope is a *MissingError, a stall of another market an
// *InvalidError, a vendor that is not ATTIVA or another ATTIVA concession on
// the stall overlapping the dates a *ConflictError.
func CreateConcession(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, w Write, in NewConcession) (Result[Concession], error) {
	return write(ctx, sh, sc, w, func(tx pgx.Tx) (Concession, bool, error) {
		var (
			comune, vendorStatus *string
			stallMarket          *int64
		)
		err := concessionPartsSQL.queryRow(ctx, tx,
			pgx.NamedArgs{"region": int16(sc.Region.Num()), "market": in.MarketID, "stall": in.StallID, "vendor": in.VendorID}).
			Scan(&comune, &stallMarket, &vendorStatus)
		switch {
		case err != nil:
			return Concession{}, false, err
		case comune == nil:
			return Concession{}, false, &MissingError{Field: "market_id"}
		case stallMarket == nil:
			return Concession{}, false, &MissingError{Field: "stall_id"}
		case *stallMarket != in.MarketID:
			return Concession{}, false, &InvalidError{Field: "stall_id", Reason: "not a stall of this market"}
		case vendorStatus == nil:
			return Concession{}, false, &MissingError{Field: "vendor_id"}
		case *vendorStatus != "ATTIVA":
			return Concession{}, false, conflict("the vendor is %s", *vendorStatus)
		}
		rows, err := createConcessionSQL.query(ctx, tx, writeArgs(sc, w, pgx.NamedArgs{"market": in.MarketID, "comune": *comune, "stall": in.StallID,
			"vendor": in.VendorID, "from": in.ValidFrom, "to": in.ValidTo}))
		c, err := collectOne[Concession](rows, err)
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
