package registry

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// The queries of the national dashboards. Each reads one region, in one
// round trip, for a fan-out leg; the router merges the regions. Lists that
// are merged across regions order text in byte order (COLLATE "C"), the
// order the router's k-way merge compares in, whatever the database's
// default collation.

// StallStatuses and ConcessionStatuses are the values the summary counts, in
// the order the schema lists them.
var (
	StallStatuses      = []string{"LIBERO", "OCCUPATO", "RISERVATO"}
	ConcessionStatuses = []string{"ATTIVA", "SOSPESA", "REVOCATA", "DECADUTA", "CESSATA", "SCADUTA"}
)

// RegionSummary is one region's figures for the national summary.
type RegionSummary struct {
	MarketsActive int64
	Stalls        map[string]int64 // by status, every status present
	Concessions   map[string]int64 // by status, every status present
	Vendors       int64            // distinct partite IVA in the region; set only with PartiteIVA
	PartiteIVA    []int64          // the region's partite IVA as numbers, ascending; nil when VendorsUnchanged
	// VendorsVersion stamps the set of partite IVA (0 when the database keeps
	// no stamp), and VendorsUnchanged reports that it equals the known
	// version given to Summary, so the caller's copy of the set is current.
	VendorsVersion   int64
	VendorsUnchanged bool
	PresencesDay     int64 // presences on the day asked for
	PresencesMonth   int64 // presences in that day's month
	// DecadenzaProposed counts the ATTIVA concessions the lifecycle job
	// proposed for decadenza, awaiting an office.
	DecadenzaProposed int64
	// MarketDaysHeld and MarketDaysCancelled count the markets held (by
	// record or presences, dms.held_days) and cancelled on the day.
	MarketDaysHeld      int64
	MarketDaysCancelled int64
}

// Summary reads the national summary's figures of region sc.Region: active
// markets, stalls and concessions by status (from the region_status_counts
// rollup), the region's partite IVA (so that the national count of distinct
// vendors is exact) and the presences on day and in its month (from the
// presence_daily and presence_monthly rollups). The set of partite IVA is
// read only when its version differs from knownVersion (0: not known):
// otherwise VendorsUnchanged is set and PartiteIVA is nil.
func Summary(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, day time.Time, knownVersion int64) (RegionSummary, error) {
	r := int16(sc.Region.Num())
	month := time.Date(day.Year(), day.Month(), 1, 0, 0, 0, 0, time.UTC)
	out := RegionSummary{Stalls: zeroCounts(StallStatuses), Concessions: zeroCounts(ConcessionStatuses)}
	// Planned for its values the leg cost 0.3-0.4 ms of planning per
	// execution at full scale, more than running it, and PostgreSQL kept
	// choosing that custom plan: about 6 ms per fan-out of 20.
	err := sh.ReadGeneric(ctx, sc, func(b *pgx.Batch) {
		summarySQL.queue(b, pgx.NamedArgs{"region": r, "known_version": knownVersion, "day": day, "month": month}).QueryRow(func(row pgx.Row) error {
			var version *int64
			counts := make([]int64, len(StallStatuses)+len(ConcessionStatuses))
			dest := []any{&out.MarketsActive, &out.PresencesDay, &out.PresencesMonth, &out.DecadenzaProposed, &out.MarketDaysHeld,
				&out.MarketDaysCancelled, &version, &out.VendorsUnchanged, &out.PartiteIVA}
			for i := range counts {
				dest = append(dest, &counts[i])
			}
			if err := row.Scan(dest...); err != nil {
				return err
			}
			if version != nil {
				out.VendorsVersion = *version
			}
			for i, st := range StallStatuses {
				out.Stalls[st] = counts[i]
			}
			for i, st := range ConcessionStatuses {
				out.Concessions[st] = counts[len(StallStatuses)+i]
			}
			return nil
		})
	})
	if err != nil {
		return out, err
	}
	if out.VendorsUnchanged {
		out.PartiteIVA = nil
		return out, nil
	}
	// Eleven-digit strings sort as their numbers in any sane collation;
	// make sure, since the national merge relies on it.
	if !slices.IsSorted(out.PartiteIVA) {
		slices.Sort(out.PartiteIVA)
	}
	if out.PartiteIVA == nil {
		out.PartiteIVA = []int64{}
	}
	out.Vendors = int64(len(out.PartiteIVA))
	return out, nil
}

// summarySQL reads a region's summary in one statement (@region, the
// @known_version of its set of partite IVA, the @day, its @month): one
// statement rather than five saves most of the per-statement work of both
// ends, which is most of the work of so small a read. Its columns: active
// markets (region_status_counts' entity 'markets', migration 00020);
// presences on the day (presence_daily, summed in the same pass as the
// day's market days, regionMarketDaysSQL) and in the month
// (presence_monthly); the concessions proposed for decadenza (the partial
// index concessions_decadenza); the market days held and cancelled on the
// day; the stamp of the set of partite IVA, whether it is the
// known one and, when it is not, the set, read in the same snapshot and in
// the order of the unique index on (region_id, partita_iva), which an
// index-only scan reads without sorting; then one count per status of
// StallStatuses and of ConcessionStatuses from region_status_counts (the
// CHECK constraints of stalls and concessions allow no other status).
var summarySQL = named(func() string {
	counts := []string{"coalesce(sum(c.n) FILTER (WHERE c.entity = 'markets' AND c.status = 'ACTIVE'), 0)::int8 AS markets"}
	var cols []string
	for _, e := range []struct {
		entity   string
		statuses []string
	}{{"stalls", StallStatuses}, {"concessions", ConcessionStatuses}} {
		for _, st := range e.statuses {
			col := strings.ToLower(e.entity + "_" + st)
			counts = append(counts, "coalesce(sum(c.n) FILTER (WHERE c.entity = '"+e.entity+"' AND c.status = '"+st+"'), 0)::int8 AS "+col)
			cols = append(cols, "st."+col)
		}
	}
	return `SELECT st.markets, md.presences, pm.n, dp.n, md.held, md.cancelled, vs.version, vs.version IS NOT NULL AND vs.version = @known_version,
	    CASE WHEN vs.version IS NULL OR vs.version <> @known_version THEN (
	        SELECT coalesce(array_agg(p), '{}') FROM (
	            SELECT v.partita_iva::int8 AS p FROM vendors v WHERE v.region_id = @region ORDER BY v.partita_iva) x)
	    END, ` + strings.Join(cols, ", ") + `
	FROM (SELECT coalesce(sum(m.n), 0)::int8 AS n FROM presence_monthly m WHERE m.region_id = @region AND m.month = @month) pm,
	    (SELECT count(*) AS n FROM concessions c WHERE c.region_id = @region AND c.status = 'ATTIVA'
	        AND c.decadenza_proposed_on IS NOT NULL) dp,
	    (` + regionMarketDaysSQL("@day::date", "@day::date") + `) md,
	    (SELECT ` + strings.Join(counts, ", ") + ` FROM region_status_counts c WHERE c.region_id = @region) st,
	    (SELECT) one LEFT JOIN vendor_set_versions vs ON vs.region_id = @region`
}())

// regionMarketDaysSQL is a query of the market days of region @region from
// first to last (SQL expressions), as dms.held_days counts them: its
// columns held (recorded HELD or with presences, and not CANCELLED) and
// cancelled (recorded CANCELLED), each a count of (market, day) pairs, and
// presences, the sum of presence_daily's counts from first to last. The
// recorded days come from the market_day_counts rollup (migration 00020),
// a few rows per day whatever the region's size; a (market, day) has at
// most one record (market_days' primary key), so the held days are the
// recorded HELD ones and those with presences and no record at all. The
// latter take the period's presence_daily rows, which the presences' sum
// reads anyway, joined to the period's records (hashed: probing the
// primary key once per market cost more), and counted distinct only when
// they have no record, which is rare, rather than grouped by market first
// (0.06 ms more on Lombardia's leg): the remaining per-market work of a
// leg, proportional to the markets with presences in the period, not to
// the region's markets.
func regionMarketDaysSQL(first, last string) string {
	return `SELECT (r.held + u.unrecorded)::int8 AS held, r.cancelled, u.presences
	FROM (SELECT coalesce(sum(c.n) FILTER (WHERE c.status = 'HELD'), 0) AS held,
	        coalesce(sum(c.n) FILTER (WHERE c.status = 'CANCELLED'), 0)::int8 AS cancelled
	    FROM market_day_counts c WHERE c.region_id = @region AND c.date BETWEEN ` + first + ` AND ` + last + `) r,
	    (SELECT count(DISTINCT (p.market_id, p.date)) FILTER (WHERE p.n > 0 AND d.market_id IS NULL) AS unrecorded,
	        coalesce(sum(p.n), 0)::int8 AS presences
	    FROM presence_daily p
	    LEFT JOIN market_days d ON d.market_id = p.market_id AND d.date = p.date
	        AND d.region_id = @region AND d.date BETWEEN ` + first + ` AND ` + last + `
	    WHERE p.region_id = @region AND p.date BETWEEN ` + first + ` AND ` + last + `) u`
}

// MarketDayCounts are a region's market days in a period: (market, day)
// pairs held and cancelled.
type MarketDayCounts struct {
	Held      int64 `json:"held" db:"held"`
	Cancelled int64 `json:"cancelled" db:"cancelled"`
}

// marketDaysSQL counts region @region's market days from @from to @to.
var marketDaysSQL = named(`SELECT md.held, md.cancelled FROM (` + regionMarketDaysSQL("@from::date", "@to::date") + `) md`)

// MarketDays returns the market days of region sc.Region from from to to
// inclusive: held (recorded HELD, or with presences, and not cancelled) and
// cancelled.
func MarketDays(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, from, to time.Time) (MarketDayCounts, error) {
	var out MarketDayCounts
	err := sh.ReadGeneric(ctx, sc, func(b *pgx.Batch) { // as Summary's, whose market days it reads
		marketDaysSQL.queue(b, pgx.NamedArgs{"region": int16(sc.Region.Num()), "from": from, "to": to}).
			QueryRow(func(row pgx.Row) error { return row.Scan(&out.Held, &out.Cancelled) })
	})
	return out, err
}

// LifecycleCounts are a region's concessions in the lifecycle's eyes: those
// proposed for decadenza (ATTIVA, awaiting an office), those whose term
// (with its legal extension) ends in the period asked for (ATTIVA or
// SOSPESA), and those running on a legal extension (ATTIVA or SOSPESA,
// extended_to set).
type LifecycleCounts struct {
	Proposed int64 `json:"proposed" db:"proposed"`
	Expiring int64 `json:"expiring" db:"expiring"`
	Extended int64 `json:"extended" db:"extended"`
}

// lifecycleCountsSQL counts region @region's concessions of LifecycleCounts
// whose effective end lies from @from to @until.
var lifecycleCountsSQL = named(`SELECT
	count(*) FILTER (WHERE c.status = 'ATTIVA' AND c.decadenza_proposed_on IS NOT NULL) AS proposed,
	count(*) FILTER (WHERE coalesce(c.extended_to, c.valid_to) BETWEEN @from AND @until) AS expiring,
	count(*) FILTER (WHERE c.extended_to IS NOT NULL) AS extended
	FROM concessions c WHERE c.region_id = @region AND c.status IN ('ATTIVA', 'SOSPESA')`)

// Lifecycle returns the LifecycleCounts of region sc.Region, with the
// concessions whose effective end lies from from to until inclusive.
func Lifecycle(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, from, until time.Time) (LifecycleCounts, error) {
	var out LifecycleCounts
	err := sh.Read(ctx, sc, func(b *pgx.Batch) {
		lifecycleCountsSQL.queue(b, pgx.NamedArgs{"region": int16(sc.Region.Num()), "from": from, "until": until}).
			QueryRow(func(row pgx.Row) error { return row.Scan(&out.Proposed, &out.Expiring, &out.Extended) })
	})
	return out, err
}

func zeroCounts(keys []string) map[string]int64 {
	m := make(map[string]int64, len(keys))
	for _, k := range keys {
		m[k] = 0
	}
	return m
}

// DayCount is the number of presences on one day.
type DayCount struct {
	Date string `db:"date"` // YYYY-MM-DD
	N    int64  `db:"n"`
}

var (
	presencesByDaySQL = named(`SELECT to_char(d.date, 'YYYY-MM-DD') AS date, sum(d.n)::int8 AS n
		FROM presence_daily d WHERE d.region_id = @region AND d.date BETWEEN @from AND @to
		GROUP BY d.date ORDER BY d.date`)
	// wholeMonthsSQL sums the months from @full_from to before @full_to,
	// partMonthsSQL the days from @from to @to outside them.
	wholeMonthsSQL = named(`SELECT to_char(m.month, 'YYYY-MM') AS date, sum(m.n)::int8 AS n
		FROM presence_monthly m WHERE m.region_id = @region AND m.month >= @full_from AND m.month < @full_to
		GROUP BY m.month`)
	partMonthsSQL = named(`SELECT to_char(d.date, 'YYYY-MM') AS date, sum(d.n)::int8 AS n
		FROM presence_daily d WHERE d.region_id = @region AND d.date >= @from AND d.date <= @to
			AND (d.date < @full_from OR d.date >= @full_to)
		GROUP BY 1`)
)

// PresencesByDay returns the presences of region sc.Region on each day from
// from to to inclusive that has any, ordered by date, from the presence_daily
// rollup.
func PresencesByDay(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, from, to time.Time) ([]DayCount, error) {
	var out []DayCount
	err := sh.Read(ctx, sc, func(b *pgx.Batch) {
		presencesByDaySQL.queue(b, pgx.NamedArgs{"region": int16(sc.Region.Num()), "from": from, "to": to}).
			Query(func(rows pgx.Rows) error {
				var err error
				out, err = pgx.CollectRows(rows, pgx.RowToStructByName[DayCount])
				return err
			})
	})
	return out, err
}

// PresencesByMonth returns the presences of region sc.Region from from to
// to inclusive per month (Date is "YYYY-MM"), for the months that have any,
// in order: whole months from the presence_monthly rollup, the days of a
// month the range covers only in part from presence_daily.
func PresencesByMonth(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, from, to time.Time) ([]DayCount, error) {
	r := int16(sc.Region.Num())
	// Whole months: [fullFrom, fullTo).
	fullFrom := time.Date(from.Year(), from.Month(), 1, 0, 0, 0, 0, time.UTC)
	if from.Day() != 1 {
		fullFrom = fullFrom.AddDate(0, 1, 0)
	}
	fullTo := time.Date(to.Year(), to.Month(), 1, 0, 0, 0, 0, time.UTC)
	if to.AddDate(0, 0, 1).Day() == 1 {
		fullTo = fullTo.AddDate(0, 1, 0)
	}
	if !fullFrom.Before(fullTo) {
		fullFrom, fullTo = to.AddDate(0, 0, 1), to.AddDate(0, 0, 1) // none: every day from presence_daily
	}
	sums := map[string]int64{}
	collect := func(rows pgx.Rows) error {
		counts, err := pgx.CollectRows(rows, pgx.RowToStructByName[DayCount])
		for _, c := range counts {
			sums[c.Date] += c.N
		}
		return err
	}
	err := sh.Read(ctx, sc, func(b *pgx.Batch) {
		a := pgx.NamedArgs{"region": r, "from": from, "to": to, "full_from": fullFrom, "full_to": fullTo}
		wholeMonthsSQL.queue(b, a).Query(collect)
		partMonthsSQL.queue(b, a).Query(collect)
	})
	if err != nil {
		return nil, err
	}
	out := make([]DayCount, 0, len(sums))
	for k, n := range sums {
		out = append(out, DayCount{Date: k, N: n})
	}
	slices.SortFunc(out, func(a, b DayCount) int { return strings.Compare(a.Date, b.Date) })
	return out, nil
}

// expiringList names the cursors of the national list of expiring concessions.
const expiringList = "expiring"

// expiringConcessions is the national list of the ATTIVA concessions whose
// effective end (valid_to, or the legal extension) lies from @from to
// @until, by (effective end, id): the list of concessions in scope, ordered
// by their end first (index concessions_active_effective_to).
var expiringConcessions = newList(func() listSpec[Concession] {
	s := concessionSpec
	s.name = expiringList
	s.where = append(slices.Clip(s.where), "c.status = 'ATTIVA'", "coalesce(c.extended_to, c.valid_to) >= @from", "coalesce(c.extended_to, c.valid_to) <= @until")
	s.filters = rowScope("c")
	s.key = "coalesce(c.extended_to, c.valid_to)"
	s.keyArg = func(c cursor) (any, bool) {
		t, err := time.Parse(time.DateOnly, c.Text)
		return t, err == nil
	}
	s.cursor = func(c Concession) cursor { return cursor{List: expiringList, Text: c.EffectiveTo, ID: c.ID} }
	return s
}())

// ExpiringCursor returns the cursor that continues a list of expiring
// concessions after c.
func ExpiringCursor(c Concession) string {
	return expiringConcessions.spec.cursor(c).encode()
}

// ExpiringConcessions returns the first n ATTIVA concessions of region
// sc.Region whose effective end lies between from and until inclusive,
// ordered by (effective end, id), after the position of cur (from ExpiringCursor; "" for the
// start), and the total of such concessions regardless of cur. A cursor this
// package did not issue for the list is ErrBadCursor.
func ExpiringConcessions(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, from, until time.Time, cur string, n int) ([]Concession, int64, error) {
	a := scopeArgs(sc)
	a["from"], a["until"] = from, until
	return expiringConcessions.leg(ctx, sh, sc, a, cur, n)
}

// nationalMarketsList names the cursors of the national list of markets.
const nationalMarketsList = "national-markets"

// nationalMarkets is the list of markets ordered by name in byte order
// (COLLATE "C"), the order of the router's merge, whatever the database's
// collation; the index markets_region_name_bytes serves it.
var nationalMarkets = newList(func() listSpec[Market] {
	s := marketSpec.collate("C")
	s.name = nationalMarketsList
	s.cursor = func(m Market) cursor { return cursor{List: nationalMarketsList, Text: m.Name, ID: m.ID} }
	return s
}())

// NationalMarketsCursor returns the cursor that continues the national list
// of markets after m.
func NationalMarketsCursor(m Market) string {
	return nationalMarkets.spec.cursor(m).encode()
}

// MarketsByName returns the first n markets of region sc.Region matching f
// (its Province and Comune are ignored: they name a region, which the router
// serves from one shard), ordered by name in byte order and id, after the
// position of cur (from NationalMarketsCursor; "" for the start), and the
// total of the matching markets regardless of cur. A cursor this package did
// not issue for the list is ErrBadCursor.
func MarketsByName(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, f MarketFilter, cur string, n int) ([]Market, int64, error) {
	f.Province, f.Comune = "", ""
	return nationalMarkets.leg(ctx, sh, sc, marketArgs(sc, f), cur, n)
}

// MaxVendorConcessions bounds the concessions VendorInRegion lists.
const MaxVendorConcessions = 100

// VendorRegion is a vendor as one region knows it.
type VendorRegion struct {
	Vendor            Vendor       `json:"vendor"`
	Concessions       []Concession `json:"concessions"`         // by id, at most MaxVendorConcessions
	ConcessionsTotal  int64        `json:"concessions_total"`   // all of them
	PresencesThisYear int64        `json:"presences_this_year"` // from yearStart on
}

// The statements of VendorInRegion: the vendor with partita IVA @piva in
// @region (vendors are scoped by region only), its first @limit concessions
// there, their total, and its presences there from @year_start on.
var (
	vendorInRegionSQL    = named("SELECT " + vendorCols + " FROM vendors v WHERE v.region_id = @region AND v.partita_iva = @piva")
	vendorIDSQL          = "(SELECT v.id FROM vendors v WHERE v.region_id = @region AND v.partita_iva = @piva)"
	vendorConcessionsSQL = named("SELECT " + concessionCols + " FROM concessions c WHERE c.region_id = @region AND c.vendor_id = " +
		vendorIDSQL + " ORDER BY c.id LIMIT @limit")
	vendorConcessionsTotalSQL = named("SELECT count(*) FROM concessions c WHERE c.region_id = @region AND c.vendor_id = " + vendorIDSQL)
	vendorPresencesSQL        = named("SELECT count(*) FROM vendor_presences p WHERE p.region_id = @region AND p.vendor_id = " +
		vendorIDSQL + " AND p.date >= @year_start")
)

// vendorInRegionStatements are the statements of VendorInRegion, which Warm
// prepares.
func vendorInRegionStatements() []statement {
	return []statement{vendorInRegionSQL, vendorConcessionsSQL, vendorConcessionsTotalSQL, vendorPresencesSQL}
}

// VendorInRegion returns the vendor with partita IVA piva as region
// sc.Region knows it, with its concessions there and its presences there
// since yearStart, or ErrNotFound when the region has no such vendor.
func VendorInRegion(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, piva string, yearStart time.Time) (VendorRegion, error) {
	out := VendorRegion{Concessions: []Concession{}}
	found := false
	a := pgx.NamedArgs{"region": int16(sc.Region.Num()), "piva": piva, "limit": MaxVendorConcessions, "year_start": yearStart}
	// Generic plans, which Warm builds ahead: planned for its values, the
	// presence count would plan anew at each run and build the generic
	// plan anyway at the sixth (16 ms at 84 partitions).
	err := sh.ReadGeneric(ctx, sc, func(b *pgx.Batch) {
		vendorInRegionSQL.queue(b, a).Query(func(rows pgx.Rows) error {
			v, err := pgx.CollectRows(rows, pgx.RowToStructByName[Vendor])
			if len(v) == 1 {
				out.Vendor, found = v[0], true
			}
			return err
		})
		vendorConcessionsSQL.queue(b, a).Query(func(rows pgx.Rows) error {
			var err error
			out.Concessions, err = pgx.CollectRows(rows, pgx.RowToStructByName[Concession])
			return err
		})
		vendorConcessionsTotalSQL.queue(b, a).QueryRow(func(row pgx.Row) error { return row.Scan(&out.ConcessionsTotal) })
		vendorPresencesSQL.queue(b, a).QueryRow(func(row pgx.Row) error { return row.Scan(&out.PresencesThisYear) })
	})
	if err != nil {
		return out, err
	}
	if !found {
		return out, ErrNotFound
	}
	if out.Concessions == nil {
		out.Concessions = []Concession{}
	}
	return out, nil
}
