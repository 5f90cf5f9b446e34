package seed

import (
	"context"
	"strconv"
)

// sectors, categories and categoryNames name the bits of stall.sector,
// stall.reservedFor and vendorIdent.categories.
var (
	sectors       = [...]string{sectorFood: "ALIMENTARE", sectorNonFood: "NON_ALIMENTARE"}
	categories    = [...]string{0: "", catProduttore: "PRODUTTORE", catDisabile: "DISABILE"}
	categoryNames = [...][]string{0: nil, catProduttore: {"PRODUTTORE"}, catDisabile: {"DISABILE"}, catProduttore | catDisabile: {"PRODUTTORE", "DISABILE"}}
)

// table is one table the seed loads: its COPY statement and how a region's
// rows are written to it.
type table struct {
	name string
	copy string // COPY ... FROM STDIN (FORMAT binary)
	// units returns how many rows region rd has for this table.
	units func(rd *regionData) int64
	// source returns the fill function that writes rd's rows; add reports
	// progress (units done, rows written).
	source func(ctx context.Context, g *generator, rd *regionData, add func(units, rows int64)) func(e *encoder) (bool, error)
}

// tables are the small tables, loaded in this order, which the foreign keys
// require; the presences follow (see loadPresences).
var tables = []table{
	{
		name:  "markets",
		copy:  `COPY markets (id, region_id, code, name, province, comune, comune_name, days, status, cost_per_sqm, created_at, updated_at) FROM STDIN (FORMAT binary)`,
		units: func(rd *regionData) int64 { return int64(len(rd.markets)) },
		source: func(ctx context.Context, _ *generator, rd *regionData, add func(int64, int64)) func(*encoder) (bool, error) {
			return rowsOf(ctx, len(rd.markets), add, func(e *encoder, i int) {
				m := &rd.markets[i]
				e.row(12)
				e.int8(rd.id(i))
				e.int2(int16(rd.num))
				e.text(m.code)
				e.text(m.name)
				e.text(m.province)
				e.text(m.comune)
				e.text(m.comuneName)
				e.int2Array(m.days)
				if m.active {
					e.text("ACTIVE")
				} else {
					e.text("INACTIVE")
				}
				e.numeric2(m.costCents)
				e.timestamp(m.created)
				e.timestamp(m.updated)
			})
		},
	},
	{
		name:  "stalls",
		copy:  `COPY stalls (id, region_id, market_id, comune, number, type, status, area_mq, width_m, depth_m, sector, reserved_for) FROM STDIN (FORMAT binary)`,
		units: func(rd *regionData) int64 { return int64(len(rd.stalls)) },
		source: func(ctx context.Context, _ *generator, rd *regionData, add func(int64, int64)) func(*encoder) (bool, error) {
			return rowsOf(ctx, len(rd.stalls), add, func(e *encoder, i int) {
				s := &rd.stalls[i]
				e.row(12)
				e.int8(rd.id(i))
				e.int2(int16(rd.num))
				e.int8(rd.id(int(s.market)))
				e.text(rd.markets[s.market].comune)
				e.int4(s.number)
				e.text(stallTypes[s.typ])
				e.text(stallStatuses[s.status])
				e.numeric2(s.area)
				e.numeric2(s.width)
				e.numeric2(s.depth)
				e.text(sectors[s.sector])
				e.textOrNull(categories[s.reservedFor])
			})
		},
	},
	{
		name:  "vendors",
		copy:  `COPY vendors (id, region_id, partita_iva, codice_fiscale, denominazione, comune, status, registered_on, categories) FROM STDIN (FORMAT binary)`,
		units: func(rd *regionData) int64 { return int64(len(rd.vendors)) },
		source: func(ctx context.Context, g *generator, rd *regionData, add func(int64, int64)) func(*encoder) (bool, error) {
			return rowsOf(ctx, len(rd.vendors), add, func(e *encoder, i int) {
				v := &g.plan.vendors[rd.vendors[i]]
				e.row(9)
				e.int8(rd.id(i))
				e.int2(int16(rd.num))
				e.text(v.partitaIVA)
				e.text(v.codiceFiscale)
				e.text(v.denominazione)
				e.text(v.comune)
				e.text(v.status)
				e.dateOrNull(v.registeredOn)
				e.textArray(categoryNames[v.categories])
			})
		},
	},
	{
		name:  "authorisations",
		copy:  `COPY authorisations (id, region_id, vendor_id, type, sector, comune, number, issued_on) FROM STDIN (FORMAT binary)`,
		units: func(rd *regionData) int64 { return int64(len(rd.auths)) },
		source: func(ctx context.Context, _ *generator, rd *regionData, add func(int64, int64)) func(*encoder) (bool, error) {
			return rowsOf(ctx, len(rd.auths), add, func(e *encoder, i int) {
				a := &rd.auths[i]
				e.row(8)
				e.int8(rd.id(i))
				e.int2(int16(rd.num))
				e.int8(rd.id(int(a.vendor)))
				typ := "A"
				if a.typeB {
					typ = "B"
				}
				e.text(typ)
				e.text(sectors[a.sector])
				e.text(a.comune)
				// The comune's register: a serial and the year of issue.
				if a.issuedOn == noDay {
					e.text(strconv.Itoa(i+1) + "/" + typ)
				} else {
					e.text(strconv.Itoa(i+1) + "/" + typ + "/" + strconv.Itoa(a.issuedOn.time().Year()))
				}
				e.dateOrNull(a.issuedOn)
			})
		},
	},
	{
		name:  "concessions",
		copy:  `COPY concessions (id, region_id, market_id, comune, stall_id, vendor_id, valid_from, valid_to, status, sector, title_id, follows_id, follows_by, extended_to) FROM STDIN (FORMAT binary)`,
		units: func(rd *regionData) int64 { return int64(len(rd.concessions)) },
		source: func(ctx context.Context, _ *generator, rd *regionData, add func(int64, int64)) func(*encoder) (bool, error) {
			return rowsOf(ctx, len(rd.concessions), add, func(e *encoder, i int) {
				c := &rd.concessions[i]
				e.row(14)
				e.int8(rd.id(i))
				e.int2(int16(rd.num))
				e.int8(rd.id(int(c.market)))
				e.text(rd.markets[c.market].comune)
				e.int8(rd.id(int(c.stall)))
				e.int8(rd.id(int(c.vendor)))
				e.date(c.from)
				e.date(c.to)
				e.text(concStatuses[c.status])
				e.text(sectors[rd.stalls[c.stall].sector])
				e.int8(rd.id(int(c.title)))
				if c.follows >= 0 {
					e.int8(rd.id(int(c.follows)))
					e.text("SUBINGRESSO")
				} else {
					e.null()
					e.null()
				}
				e.dateOrNull(c.extendedTo)
			})
		},
	},
}

// rowsOf returns a fill function writing rows 0..n-1 with row.
func rowsOf(ctx context.Context, n int, add func(units, rows int64), row func(e *encoder, i int)) func(*encoder) (bool, error) {
	i := 0
	return func(e *encoder) (bool, error) {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		start := i
		for ; i < n && len(e.buf) < copyChunk; i++ {
			row(e, i)
		}
		add(int64(i-start), int64(i-start))
		return i < n, nil
	}
}
