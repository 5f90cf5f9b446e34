package seed

import (
	"context"
	"fmt"
	"slices"
	"strings"

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
const presenceColumns = "(id, region_id, market_id, comune, vendor_id, stall_id, date, kind, checkin_at, checkout_at)"

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
	for _, q := range []string{"TRUNCATE vendor_presences", "TRUNCATE presence_daily"} {
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
	ctx   context.Context
	rd    *regionData
	today day
	add   func(units, rows int64)

	midnights  []int64 // Europe/Rome midnight of every day from rd.firstDay (valid from 03:00 on), micros since pgEpoch
	monthFirst day     // the month being generated
	monthLast  day
	mi         int     // next market of the month
	seq        int     // presences written so far
	free       []int32 // scratch: stalls offered to spuntisti
	done       bool    // no month left
}

func newPresenceGen(ctx context.Context, g *generator, rd *regionData, add func(int64, int64)) *presenceGen {
	pg := &presenceGen{ctx: ctx, rd: rd, today: g.plan.today, add: add}
	rd.daily = make([]dailyCount, 0, rd.marketDays)
	if rd.firstDay > rd.lastDay {
		pg.done = true
		return pg
	}
	for d := rd.firstDay; d <= rd.lastDay; d++ {
		// Noon minus 12 hours is midnight in local time for every hour after
		// a daylight-saving switch (which happens at 02:00 or 03:00).
		pg.midnights = append(pg.midnights, localMicros(g.rome, d, 12*60)-12*3600*1e6)
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
	attendance32 = uint32(holderAttendancePct * (1 << 32) / 100)
	secondsIn90m = 90 * 60
)

// marketDay writes the presences of market mi on day d: the concession
// holders who came, on their stalls, then the spuntisti who came in ranking
// order, each given the next free stall while any is left.
func (pg *presenceGen) marketDay(e *encoder, mi int32, m *market, d day) {
	rd, rng := pg.rd, m.rng
	midnight := pg.midnights[d-rd.firstDay]
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
				pg.row(e, marketID, m.comune, rd.concessions[c].vendor, rd.id(int(m.firstStall)+k), d, "CONCESSION", midnight+(6*3600+30*60)*1e6, r, openToday)
				continue
			}
		}
		if s.freeForSpunta {
			pg.free = append(pg.free, int32(k))
		}
	}
	concession := pg.seq - first
	next := 0
	for k, v := range m.spunta {
		r := rng.Uint64()
		if uint32(r) >= m.spuntaP[k] {
			continue
		}
		var stallID int64
		if next < len(pg.free) {
			stallID = rd.id(int(m.firstStall + pg.free[next]))
			next++
		}
		pg.row(e, marketID, m.comune, v, stallID, d, "SPUNTA", midnight+(7*3600+30*60)*1e6, r, openToday)
	}
	if pg.seq > first {
		rd.daily = append(rd.daily, dailyCount{mi, d, int32(concession), int32(pg.seq - first - concession)})
	}
}

// row writes one presence on day d, arriving in the 90 minutes from arrive
// (micros since pgEpoch). r supplies the random check-in and check-out
// seconds (its high bits: the low 32 decided attendance); the market of
// today has not closed, so nobody has checked out yet.
func (pg *presenceGen) row(e *encoder, marketID int64, comune string, vendor int32, stallID int64, d day, kind string, arrive int64, r uint64, openToday bool) {
	checkin := arrive + int64(r>>32&0x1fff)%secondsIn90m*1e6
	var checkout int64
	if !openToday && r>>58 >= 2 { // about 3% forgot to check out
		checkout = arrive + (6*3600+int64(r>>45&0x1fff)%secondsIn90m)*1e6
	}
	e.row(10)
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
	pg.seq++
}

// holderAt returns the concession whose holder may occupy stall s on day d,
// or -1: the current concession within its term (a SOSPESA one only before
// its suspension), else the previous one within its term.
func holderAt(rd *regionData, s *stall, d day) int32 {
	if s.cur >= 0 {
		c := &rd.concessions[s.cur]
		if d >= c.from && d <= c.to {
			if c.status == concAttiva || d < c.suspended {
				return s.cur
			}
			return -1
		}
	}
	if s.prev >= 0 {
		c := &rd.concessions[s.prev]
		if d >= c.from && d <= c.to {
			return s.prev
		}
	}
	return -1
}
