package seed

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/migrations"
)

// The presences are nearly all the rows, so they take a faster path than
// the small tables. Each shard loads its presences in one transaction that
// locks vendor_presences, truncates it and COPYs every region of the shard
// straight into the monthly partitions with FREEZE: rows are frozen and
// all-visible at once, so there are no hint-bit writes on first read and
// index-only scans work straight away. A big shard also drops the secondary
// indexes of vendor_presences (its unique constraints included) before the
// COPYs and rebuilds them after: one sort per index instead of millions of
// random inserts, and the rebuilt constraints check every loaded row. A
// failure anywhere rolls all of it back, so the schema is never left
// without its constraints.
//
// Writing to the partitions directly bypasses the statement triggers of the
// parent that maintain presence_daily, so the transaction fills
// presence_daily itself, as migration 00002 requires of anyone writing to
// partitions: the generator counts every market day's presences by kind as
// it writes them and COPYs the counts, which costs far less than
// aggregating millions of rows again; presence_daily's own triggers keep
// presence_monthly. The tests check presence_daily against the presences.

// rebuildMarketDays is the number of market days (about ten presences each)
// from which a shard's load drops and rebuilds the indexes: below it,
// maintaining them row by row costs less than rebuilding them.
var rebuildMarketDays int64 = 5_000

// presenceColumns are the columns of every presence COPY.
const presenceColumns = "(id, region_id, market_id, comune, vendor_id, stall_id, date, kind, checkin_at, checkout_at, outcome)"

// dailyCount is the number of presences of each kind of one market day,
// what presence_daily holds.
type dailyCount struct {
	market     int32 // market row of the region
	date       day
	concession int32
	spunta     int32
}

// partitionName returns the monthly partition of vendor_presences that holds
// day d, as dms.ensure_presence_partitions names it.
func partitionName(d day) string { return migrations.PresencePartition(d.time()) }

// loadPresences loads the presences of every shard, at most parallel shards
// at a time, the biggest first, and finishes each shard as soon as its
// presences are in (see finish), so its elapsed time includes that.
func (g *generator) loadPresences(ctx context.Context, shards []*shard, parallel int, reset bool, pr *progress) (TableStats, error) {
	var jobs []loadJob
	for _, sh := range shards {
		// Every shard, even one without presences to load: the transaction
		// also empties the table (Reset leaves that to it).
		jobs = append(jobs, loadJob{sh: sh, units: g.marketDays(sh), what: "shard " + sh.name,
			run: func(ctx context.Context, conn *pgx.Conn) (int64, error) {
				n, err := g.presencesTx(ctx, conn, sh, reset, pr.add)
				if err != nil {
					return n, err
				}
				// At once, before autovacuum comes to analyze the new
				// partitions itself, concurrently with other shards' loads.
				return n, g.finish(ctx, conn, sh)
			}})
	}
	return runJobs(ctx, "vendor_presences", jobs, parallel, pr)
}

// marketDays returns the number of market days with presences on shard sh.
func (g *generator) marketDays(sh *shard) int64 {
	var n int64
	for _, r := range sh.regions {
		n += g.regions[r.Num()].marketDays
	}
	return n
}

// presencesTx loads the presences of shard sh's regions in one transaction
// and returns how many it loaded.
func (g *generator) presencesTx(ctx context.Context, conn *pgx.Conn, sh *shard, reset bool, add func(int64, int64)) (int64, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.Background())
	for _, q := range []string{
		"SET LOCAL maintenance_work_mem = '256MB'",
		"LOCK TABLE vendor_presences IN ACCESS EXCLUSIVE MODE",
	} {
		if _, err := tx.Exec(ctx, q); err != nil {
			return 0, err
		}
	}
	if !reset {
		// Under the lock nobody can have written since the preflight check;
		// make sure of it before the TRUNCATE.
		var has bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT FROM vendor_presences)").Scan(&has); err != nil {
			return 0, err
		}
		if has {
			return 0, ErrNotEmpty
		}
	}
	var idx []index
	if g.marketDays(sh) >= rebuildMarketDays {
		var err error
		if idx, err = secondaryIndexes(ctx, tx); err != nil {
			return 0, err
		}
	}
	for _, ix := range idx {
		if _, err := tx.Exec(ctx, ix.drop); err != nil {
			return 0, fmt.Errorf("drop index %s: %w", ix.name, err)
		}
	}
	// COPY FREEZE needs the tables truncated in this transaction. The
	// TRUNCATE trigger of each empties its rollup, so they cannot be
	// truncated in one statement.
	for _, q := range []string{"TRUNCATE vendor_presences", "TRUNCATE presence_daily", "TRUNCATE market_days, absence_justifications"} {
		if _, err := tx.Exec(ctx, q); err != nil {
			return 0, err
		}
	}
	var rows int64
	for _, r := range sh.regions {
		for pg := newPresenceGen(ctx, g, g.regions[r.Num()], add); !pg.done; pg.nextMonth() {
			part := partitionName(pg.monthFirst)
			src := newCopySource(pg.fill)
			tag, err := tx.Conn().PgConn().CopyFrom(ctx, src,
				"COPY "+pgx.Identifier{part}.Sanitize()+" "+presenceColumns+" FROM STDIN (FORMAT binary, FREEZE)")
			if err != nil {
				return rows, fmt.Errorf("region %s into %s: %w", r, part, err)
			}
			rows += tag.RowsAffected()
		}
	}
	for _, ix := range idx {
		if _, err := tx.Exec(ctx, ix.create); err != nil {
			return rows, fmt.Errorf("rebuild index %s: %w", ix.name, err)
		}
	}
	if err := g.copyDaily(ctx, tx, sh); err != nil {
		return rows, fmt.Errorf("fill presence_daily: %w", err)
	}
	if err := g.copyDays(ctx, tx, sh); err != nil {
		return rows, err
	}
	return rows, tx.Commit(ctx)
}

// copyDaily COPYs the presence counts of every market day of the shard's
// regions into presence_daily, day after day, as its triggers would have
// counted them (a kind with no presence that day has no row); its own
// triggers keep presence_monthly.
func (g *generator) copyDaily(ctx context.Context, tx pgx.Tx, sh *shard) error {
	var all []*regionData
	total := 0
	for _, r := range sh.regions {
		rd := g.regions[r.Num()]
		// In the order market days write them: a day's rows together,
		// as the national summary reads them (one region, one date).
		slices.SortFunc(rd.daily, func(a, b dailyCount) int {
			if a.date != b.date {
				return int(a.date - b.date)
			}
			return int(a.market - b.market)
		})
		all = append(all, rd)
		total += len(rd.daily)
	}
	if total == 0 {
		return nil
	}
	ri, i := 0, 0
	src := newCopySource(func(e *encoder) (bool, error) {
		for ri < len(all) && len(e.buf) < copyChunk {
			rd := all[ri]
			if i == len(rd.daily) {
				rd.daily = nil // done with it
				ri, i = ri+1, 0
				continue
			}
			c := &rd.daily[i]
			i++
			m := &rd.markets[c.market]
			for _, k := range [...]struct {
				kind string
				n    int32
			}{{"CONCESSION", c.concession}, {"SPUNTA", c.spunta}} {
				if k.n == 0 {
					continue
				}
				e.row(6)
				e.int2(int16(rd.num))
				e.int8(rd.id(int(c.market)))
				e.text(m.comune)
				e.date(c.date)
				e.text(k.kind)
				e.int4(k.n)
			}
		}
		return ri < len(all), nil
	})
	_, err := tx.Conn().PgConn().CopyFrom(ctx, src, "COPY presence_daily (region_id, market_id, comune, date, kind, n) FROM STDIN (FORMAT binary, FREEZE)")
	return err
}

// copyDays COPYs the market days of the shard's regions into market_days
// (held, with the call at its time, or cancelled with a reason) and the
// holders' justified absences into absence_justifications.
func (g *generator) copyDays(ctx context.Context, tx pgx.Tx, sh *shard) (rerr error) {
	var rds []*regionData
	for _, r := range sh.regions {
		rds = append(rds, g.regions[r.Num()])
	}
	// A big shard checks the foreign keys once, when they are added back,
	// instead of once per row (a trigger's query each).
	var fks []index
	if g.marketDays(sh) >= rebuildMarketDays {
		var err error
		if fks, err = foreignKeys(ctx, tx, "market_days", "absence_justifications"); err != nil {
			return err
		}
	}
	for _, fk := range fks {
		if _, err := tx.Exec(ctx, fk.drop); err != nil {
			return fmt.Errorf("drop %s: %w", fk.name, err)
		}
	}
	defer func() {
		for _, fk := range fks {
			if _, err := tx.Exec(ctx, fk.create); err != nil && rerr == nil {
				rerr = fmt.Errorf("add back %s: %w", fk.name, err)
			}
		}
	}()
	err := g.days.copy(ctx, tx, "COPY market_days (market_id, region_id, comune, date, status, reason, call_at, updated_by, updated_at) FROM STDIN (FORMAT binary, FREEZE)",
		rds, func(rd *regionData) int { return len(rd.days) }, func(e *encoder, rd *regionData, i int) {
			dr := &rd.days[i]
			m := &rd.markets[dr.market]
			midnight := rd.midnights[dr.date-rd.firstDay]
			e.row(9)
			e.int8(rd.id(int(dr.market)))
			e.int2(int16(rd.num))
			e.text(m.comune)
			e.date(dr.date)
			if dr.reason == reasonHeld {
				e.text("HELD")
				e.text("")
				e.timestamp(midnight + callMinute*60*1e6)
			} else {
				e.text("CANCELLED")
				e.text(cancelReason(dr.reason))
				e.null()
			}
			e.text(seedUser)
			e.timestamp(midnight + callMinute*60*1e6)
		})
	if err != nil {
		return fmt.Errorf("fill market_days: %w", err)
	}
	err = g.absences.copy(ctx, tx, "COPY absence_justifications (concession_id, date, region_id, market_id, comune, reason, note, recorded_by, recorded_at) FROM STDIN (FORMAT binary, FREEZE)",
		rds, func(rd *regionData) int { return len(rd.justified) }, func(e *encoder, rd *regionData, i int) {
			a := &rd.justified[i]
			c := &rd.concessions[a.concession]
			e.row(9)
			e.int8(rd.id(int(a.concession)))
			e.date(a.date)
			e.int2(int16(rd.num))
			e.int8(rd.id(int(c.market)))
			e.text(rd.markets[c.market].comune)
			e.text(justifications[a.reason])
			e.text(justifyNotes[a.reason])
			e.text(seedUser)
			e.timestamp(rd.midnights[a.date-rd.firstDay] + 12*3600*1e6) // recorded at noon
		})
	if err != nil {
		return fmt.Errorf("fill absence_justifications: %w", err)
	}
	return nil
}

// foreignKeys returns the foreign keys of tables and the statements that
// drop them and add them back as they were.
func foreignKeys(ctx context.Context, tx pgx.Tx, tables ...string) ([]index, error) {
	type def struct{ Table, Name, Def string }
	rows, _ := tx.Query(ctx, `
		SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
		WHERE contype = 'f' AND conrelid = ANY ($1::text[]::regclass[]) ORDER BY 1, 2`, tables)
	defs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[def])
	if err != nil {
		return nil, err
	}
	var out []index
	for _, d := range defs {
		t, c := pgx.Identifier{d.Table}.Sanitize(), pgx.Identifier{d.Name}.Sanitize()
		out = append(out, index{name: d.Name,
			drop:   "ALTER TABLE " + t + " DROP CONSTRAINT " + c,
			create: "ALTER TABLE " + t + " ADD CONSTRAINT " + c + " " + d.Def})
	}
	return out, nil
}

// seedUser is who recorded the seeded market days and justifications.
const seedUser = "dmsdev seed"

// copy COPYs rows 0..n(rd)-1 of every region of rds, written by row, with
// the statement copy, and counts them into t.
func (t *dayTable) copy(ctx context.Context, tx pgx.Tx, copy string, rds []*regionData, n func(*regionData) int, row func(*encoder, *regionData, int)) error {
	begin := time.Now()
	ri, i := 0, 0
	src := newCopySource(func(e *encoder) (bool, error) {
		for ri < len(rds) && len(e.buf) < copyChunk {
			if i == n(rds[ri]) {
				ri, i = ri+1, 0
				continue
			}
			row(e, rds[ri], i)
			i++
		}
		return ri < len(rds), nil
	})
	tag, err := tx.Conn().PgConn().CopyFrom(ctx, src, copy)
	t.rows.Add(tag.RowsAffected())
	t.elapsed.Add(int64(time.Since(begin)))
	return err
}

// index is a secondary index of vendor_presences and the statements that
// drop it and create it again exactly as it was.
type index struct {
	name, drop, create string
}

// secondaryIndexes returns the indexes of vendor_presences other than its
// primary key, read from the catalog so that they are rebuilt as the
// migrations defined them; an index behind a constraint (UNIQUE) is dropped
// and added back as that constraint.
func secondaryIndexes(ctx context.Context, tx pgx.Tx) ([]index, error) {
	type def struct{ Name, Index, Constraint, ConstraintDef string }
	rows, _ := tx.Query(ctx, `
		SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid),
		       coalesce(c.conname, ''), coalesce(pg_get_constraintdef(c.oid), '')
		FROM pg_index i
		LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid
		WHERE i.indrelid = 'vendor_presences'::regclass AND NOT i.indisprimary
		ORDER BY 1`)
	defs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[def])
	if err != nil {
		return nil, err
	}
	var out []index
	for _, d := range defs {
		// pg_get_indexdef names a partitioned table ON ONLY: that form
		// makes an invalid index of the parent alone, to which each
		// partition's index is attached one by one. Without ONLY, one
		// statement builds the index on every partition.
		create := strings.Replace(d.Index, " ON ONLY ", " ON ", 1)
		ix := index{name: d.Name, drop: "DROP INDEX " + d.Name, create: create}
		if d.Constraint != "" {
			id := pgx.Identifier{d.Constraint}.Sanitize()
			ix.drop = "ALTER TABLE vendor_presences DROP CONSTRAINT " + id
			ix.create = "ALTER TABLE vendor_presences ADD CONSTRAINT " + id + " " + d.ConstraintDef
		}
		out = append(out, ix)
	}
	return out, nil
}

// presenceGen streams a region's presences a month at a time, each month
// market by market in id order and each market day by day: one COPY per
// monthly partition, and inside it the keys of the (market, date, ...)
// indexes only grow. Each market draws from its own random stream in date
// order, so the rows do not depend on how markets interleave.
type presenceGen struct {
	ctx     context.Context
	rd      *regionData
	today   day
	add     func(units, rows int64)
	vendors []vendorIdent // plan.vendors

	monthFirst day // the month being generated
	monthLast  day
	mi         int       // next market of the month
	seq        int       // presences written so far
	free       []int32   // scratch: the day's free stalls, by number
	called     []arrival // scratch: the day's spuntisti, in ranking order
	done       bool      // no month left
}

func newPresenceGen(ctx context.Context, g *generator, rd *regionData, add func(int64, int64)) *presenceGen {
	pg := &presenceGen{ctx: ctx, rd: rd, today: g.plan.today, add: add, vendors: g.plan.vendors}
	rd.daily = make([]dailyCount, 0, rd.marketDays)
	rd.days = make([]dayRow, 0, rd.marketDays)
	rd.justified, rd.midnights = nil, nil
	if rd.firstDay > rd.lastDay {
		pg.done = true
		return pg
	}
	for d := rd.firstDay; d <= rd.lastDay; d++ {
		// Noon minus 12 hours is midnight in local time for every hour after
		// a daylight-saving switch (which happens at 02:00 or 03:00).
		rd.midnights = append(rd.midnights, localMicros(g.rome, d, 12*60)-12*3600*1e6)
	}
	for i := range rd.markets {
		rd.markets[i].earned = make([]int32, len(rd.markets[i].spunta))
	}
	pg.setMonth(rd.firstDay)
	return pg
}

// setMonth makes the month of d the current one.
func (pg *presenceGen) setMonth(d day) {
	y, m, _ := d.time().Date()
	pg.monthFirst, pg.monthLast = dayOf(y, m, 1), dayOf(y, m+1, 1)-1
	pg.mi = 0
}

// nextMonth moves to the next month, or sets done after the last.
func (pg *presenceGen) nextMonth() {
	if pg.monthLast >= pg.rd.lastDay {
		pg.done = true
		pg.rd.presences = int64(pg.seq)
		return
	}
	pg.setMonth(pg.monthLast + 1)
}

// fill appends about copyChunk bytes of the current month's presences and
// reports whether the month has more.
func (pg *presenceGen) fill(e *encoder) (bool, error) {
	if err := pg.ctx.Err(); err != nil {
		return false, err
	}
	rows0, days := pg.seq, int64(0)
	for pg.mi < len(pg.rd.markets) && len(e.buf) < copyChunk {
		mi := int32(pg.mi)
		pg.mi++
		m := &pg.rd.markets[mi]
		for d := max(m.start, pg.monthFirst); d <= min(m.end, pg.monthLast); d++ {
			if m.weekdays&(1<<d.weekday()) != 0 {
				pg.marketDay(e, mi, m, d)
				days++
			}
		}
	}
	pg.add(days, int64(pg.seq-rows0))
	return pg.mi < len(pg.rd.markets), nil
}

const (
	attendance32  = uint32(holderAttendancePct * (1 << 32) / 100)
	secondsIn90m  = 90 * 60
	secondsInHour = 3600
)

// The call (appello) is at 08:00, the national default of dms.regolamento
// (the seed writes no regolamento): holders arrive from 06:30 and
// spuntisti from 07:00, both before it, but for the few who come late.
const (
	callMinute         = 8 * 60
	latePermille       = 30 // a spuntista checks in after the call
	refusalPermille    = 20 // a spuntista refuses the stalls offered
	justifiedPermille  = 200
	cancelPermille     = 6  // a market day is cancelled (weather, an ordinance)
	holidayCancelPct   = 50 // ... on a public holiday
	outcomeNone        = 0  // a holder's presence
	outcomeAssigned    = 1  // ASSIGNED
	outcomeUnassigned  = 2  // UNASSIGNED
	outcomeRefused     = 3  // REFUSED
	outcomeLate        = 4  // LATE
	reasonHeld         = 0  // dayRow.reason of a held day
	reasonFirstHoliday = 1  // dayRow.reason of the first holiday of holidays
)

var outcomes = [...]string{"", "ASSIGNED", "UNASSIGNED", "REFUSED", "LATE"}

// holidays are the national public holidays on fixed dates, on which most
// comuni cancel their market (Easter Monday moves, and is left out).
var holidays = [...]struct {
	month time.Month
	day   int
	name  string
}{
	{1, 1, "Capodanno"}, {1, 6, "Epifania"}, {4, 25, "Festa della Liberazione"}, {5, 1, "Festa del Lavoro"},
	{6, 2, "Festa della Repubblica"}, {8, 15, "Ferragosto"}, {11, 1, "Ognissanti"},
	{12, 8, "Immacolata Concezione"}, {12, 25, "Natale"}, {12, 26, "Santo Stefano"},
}

// otherReasons are why a market day that is no holiday is cancelled, after
// the holidays in dayRow.reason.
var otherReasons = [...]string{
	"Maltempo: allerta meteo della Protezione civile",
	"Ordinanza del sindaco: manifestazione in piazza",
	"Ordinanza del sindaco: lavori sull'area del mercato",
}

// cancelReason returns the reason of a cancelled day (after
// reasonFirstHoliday) as text.
func cancelReason(r uint8) string {
	if i := int(r - reasonFirstHoliday); i < len(holidays) {
		return "Festività: " + holidays[i].name
	}
	return otherReasons[int(r-reasonFirstHoliday)-len(holidays)]
}

// Justification reasons of absence_justifications, with a note each.
var (
	justifications = [...]string{"MALATTIA", "GRAVIDANZA", "FORZA_MAGGIORE", "ALTRO"}
	justifyNotes   = [...]string{"certificato medico", "certificato di gravidanza", "guasto del mezzo", "lutto familiare"}
)

// justification returns the reason (index of justifications) of a
// justified absence for a draw x of 0..99: mostly illness.
func justification(x uint64) uint8 {
	switch {
	case x < 70:
		return 0
	case x < 75:
		return 1
	case x < 90:
		return 2
	}
	return 3
}

// dayRow is a market day of the window: held, or cancelled for a reason.
type dayRow struct {
	market int32
	date   day
	reason uint8 // reasonHeld, or a cancelReason
}

// absenceRow is a holder's absence on a held day, justified by the office.
type absenceRow struct {
	concession int32
	date       day
	reason     uint8 // index of justifications
}

// arrival is a spuntista who came on a market day.
type arrival struct {
	k       int    // its place in market.spunta
	r, r2   uint64 // its draws: check-in and check-out, late and refusal
	stall   int32  // stall given, -1 for none
	outcome uint8
}

// cancelled returns the reason market day d is cancelled, from the draw
// r, or reasonHeld.
func cancelled(d day, r uint64) uint8 {
	_, month, dd := d.time().Date()
	x := r % 1000
	for i, h := range holidays {
		if h.month == month && h.day == dd {
			if x < holidayCancelPct*10 {
				return reasonFirstHoliday + uint8(i)
			}
			return reasonHeld
		}
	}
	if x < cancelPermille {
		return reasonFirstHoliday + uint8(len(holidays)) + uint8(r>>32%uint64(len(otherReasons)))
	}
	return reasonHeld
}

// marketDay writes the presences of market mi on day d, unless the day is
// cancelled: the concession holders who came, on their stalls; then the
// call, at which the free stalls are offered to the spuntisti present, in
// the order of the ranking (presences earned here, then the earlier
// registration, then the vendor), sector by sector (food first), reserved
// stalls first to their category; each takes the lowest-numbered free
// stall it may have or, rarely, refuses; those who came after the call
// are LATE. A holder's absence is sometimes justified.
func (pg *presenceGen) marketDay(e *encoder, mi int32, m *market, d day) {
	rd, rng := pg.rd, m.rng
	if reason := cancelled(d, rng.Uint64()); reason != reasonHeld {
		rd.days = append(rd.days, dayRow{mi, d, reason})
		return
	}
	rd.days = append(rd.days, dayRow{mi, d, reasonHeld})
	midnight := rd.midnights[d-rd.firstDay]
	marketID := rd.id(int(mi))
	stalls := rd.stalls[m.firstStall : m.firstStall+m.nStalls]
	openToday := d == pg.today
	first := pg.seq
	pg.free = pg.free[:0]
	for k := range stalls {
		s := &stalls[k]
		if c := holderAt(rd, s, d); c >= 0 {
			r := rng.Uint64()
			if uint32(r) < attendance32 {
				pg.row(e, marketID, m.comune, rd.concessions[c].vendor, rd.id(int(m.firstStall)+k), d, "CONCESSION",
					midnight+(6*3600+30*60)*1e6, secondsIn90m, r, openToday, outcomeNone)
				continue
			}
			if r>>32%1000 < justifiedPermille {
				rd.justified = append(rd.justified, absenceRow{c, d, justification(r >> 48 % 100)})
			}
		}
		if s.free {
			pg.free = append(pg.free, int32(k))
		}
	}
	concession := pg.seq - first

	called := pg.called[:0]
	for k := range m.spunta {
		r := rng.Uint64()
		if uint32(r) >= m.spuntaP[k] {
			continue
		}
		a := arrival{k: k, r: r, r2: rng.Uint64(), stall: -1, outcome: outcomeUnassigned}
		if a.r2%1000 < latePermille {
			a.outcome = outcomeLate
		}
		called = append(called, a)
	}
	slices.SortFunc(called, func(a, b arrival) int {
		if d := m.earned[b.k] - m.earned[a.k]; d != 0 {
			return int(d)
		}
		ra, rb := pg.vendors[rd.vendors[m.spunta[a.k]]].registeredOn, pg.vendors[rd.vendors[m.spunta[b.k]]].registeredOn
		if ra != rb {
			if ra == noDay || rb != noDay && rb < ra {
				return 1
			}
			return -1
		}
		return int(m.spunta[a.k] - m.spunta[b.k])
	})
	pg.call(m, called, stalls)
	for _, a := range called {
		var stallID int64
		if a.stall >= 0 {
			stallID = rd.id(int(m.firstStall + a.stall))
		}
		arrive, span := midnight+7*3600*1e6, int64(secondsInHour)
		if a.outcome == outcomeLate {
			arrive = midnight + (callMinute*60+1)*1e6
		}
		pg.row(e, marketID, m.comune, m.spunta[a.k], stallID, d, "SPUNTA", arrive, span, a.r, openToday, a.outcome)
		if a.outcome == outcomeAssigned || a.outcome == outcomeUnassigned {
			m.earned[a.k]++
		}
	}
	pg.called = called
	if pg.seq > first {
		rd.daily = append(rd.daily, dailyCount{mi, d, int32(concession), int32(pg.seq - first - concession)})
	}
}

// call runs the spunta of a market day over called (in ranking order, not
// yet LATE): sector by sector, each spuntista authorised in it and not yet
// served is offered the free stalls of the sector, a reserved one only to
// its category while a spuntista of that category waits further down the
// ranking; it takes the lowest-numbered, its category's reserved ones
// first, or refuses.
func (pg *presenceGen) call(m *market, called []arrival, stalls []stall) {
	rd := pg.rd
	for _, sector := range [...]uint8{sectorFood, sectorNonFood} {
		for i := range called {
			a := &called[i]
			v := m.spunta[a.k]
			if a.outcome != outcomeUnassigned || rd.authSectors[v]&sector == 0 {
				continue
			}
			cat := pg.vendors[rd.vendors[v]].categories
			// waiting reports whether a spuntista of category c is still
			// to be called in this sector.
			waiting := func(c uint8) bool {
				for _, b := range called[i+1:] {
					w := m.spunta[b.k]
					if b.outcome == outcomeUnassigned && rd.authSectors[w]&sector != 0 && pg.vendors[rd.vendors[w]].categories&c != 0 {
						return true
					}
				}
				return false
			}
			choice := -1
			for j, k := range pg.free {
				s := &stalls[k]
				if s.sector != sector {
					continue
				}
				if s.reservedFor != 0 && s.reservedFor&cat != 0 {
					choice = j // its category's reserved stall first
					break
				}
				if choice < 0 && (s.reservedFor == 0 || !waiting(s.reservedFor)) {
					choice = j
					if cat == 0 {
						break
					}
				}
			}
			if choice < 0 {
				continue // nothing of this sector for it: UNASSIGNED unless another sector has
			}
			if a.r2>>32%1000 < refusalPermille {
				a.outcome = outcomeRefused
				continue
			}
			a.stall, a.outcome = pg.free[choice], outcomeAssigned
			pg.free = slices.Delete(pg.free, choice, choice+1)
		}
	}
}

// row writes one presence on day d, checking in within span seconds from
// arrive (micros since pgEpoch). r supplies the random check-in and
// check-out seconds (its high bits: the low 32 decided attendance); the
// market of today has not closed, so nobody has checked out yet.
func (pg *presenceGen) row(e *encoder, marketID int64, comune string, vendor int32, stallID int64, d day, kind string, arrive, span int64, r uint64, openToday bool, outcome uint8) {
	checkin := arrive + int64(r>>32&0x1fff)%span*1e6
	var checkout int64
	if !openToday && r>>58 >= 2 { // about 3% forgot to check out
		checkout = arrive + (6*3600+int64(r>>45&0x1fff)%secondsIn90m)*1e6
	}
	e.row(11)
	e.int8(pg.rd.id(pg.seq))
	e.int2(int16(pg.rd.num))
	e.int8(marketID)
	e.text(comune)
	e.int8(pg.rd.id(int(vendor)))
	e.int8OrNull(stallID)
	e.date(d)
	e.text(kind)
	e.timestamp(checkin)
	e.timestampOrNull(checkout)
	if outcome == outcomeNone {
		e.null()
	} else {
		e.text(outcomes[outcome])
	}
	pg.seq++
}

// holderAt returns the concession whose holder may occupy stall s on day d,
// or -1: the current concession within its term (with its legal extension;
// a SOSPESA one only before its suspension), else the previous one within
// its term.
func holderAt(rd *regionData, s *stall, d day) int32 {
	if s.cur >= 0 {
		c := &rd.concessions[s.cur]
		if d >= c.from && d <= c.end() {
			if c.status == concAttiva || d < c.suspended {
				return s.cur
			}
			return -1
		}
	}
	if s.prev >= 0 {
		c := &rd.concessions[s.prev]
		if d >= c.from && d <= c.end() {
			return s.prev
		}
	}
	return -1
}
