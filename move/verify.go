package move

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/dmshub/dmsrouter/regions"
)

// Connect opens an admin connection to dsn (a shard's AdminDSN) with fixed
// session settings, so that a row's text, which Verify hashes, is the same
// on the source and on the target whatever each server's defaults are:
// TimeZone UTC, DateStyle ISO, IntervalStyle postgres and
// extra_float_digits 3. It names itself "dmsrouter move" in
// pg_stat_activity.
func Connect(ctx context.Context, dsn string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("move: parse DSN: %w", err)
	}
	for k, v := range map[string]string{
		"TimeZone":           "UTC",
		"DateStyle":          "ISO",
		"IntervalStyle":      "postgres",
		"extra_float_digits": "3",
		"application_name":   "dmsrouter move",
	} {
		cfg.RuntimeParams[k] = v
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("move: connect to %s:%d/%s: %w", cfg.Host, cfg.Port, cfg.Database, err)
	}
	return conn, nil
}

// Defaults of VerifyOptions.
const (
	DefaultRangeRows = 50_000
	DefaultRounds    = 10
	// smallRegion is the size (rows of all tables) under which
	// VerifyFrozen hashes every range rather than the newest keys.
	smallRegion = 20_000
	// frozenRangeRows is how many of each table's newest keys
	// VerifyFrozen hashes.
	frozenRangeRows = 10_000
	// recentMargin is how long before the online verification began
	// VerifyFrozen looks for rows by Table.Recent: a row's time is its
	// transaction's start, and a router's transaction lasts at most its
	// query timeout (seconds), so one that began before the verification
	// and committed after it is still looked at.
	recentMargin = time.Minute
)

// VerifyOptions tune Verify.
type VerifyOptions struct {
	// RangeRows is about how many rows one hashed range holds
	// (DefaultRangeRows when 0).
	RangeRows int64
	// Rounds is how many times ranges that differ are checked again
	// (DefaultRounds when 0).
	Rounds int
	// Settle, when not nil, runs before each new check of the ranges that
	// differ: the move waits there until the target shows a fresh mark,
	// so that every change committed on the source before the check
	// began has been applied. Without it, ranges that differ are not
	// checked again.
	Settle func(ctx context.Context) error
	// Tables are the tables to verify (Tables when nil).
	Tables []Table
}

// Sum is the count and the order-independent hash of a set of rows: the
// sum of the first 64 bits of md5 of each row's text, as a decimal.
type Sum struct {
	Rows int64  `json:"rows"`
	Hash string `json:"hash"`
}

// Range is the rows of one table whose Key lies in [Lo, Hi), as found on
// both sides.
type Range struct {
	Table  string `json:"table"`
	Lo     int64  `json:"lo"`
	Hi     int64  `json:"hi"`
	Source Sum    `json:"source"`
	Target Sum    `json:"target"`
	// Since, when set, narrows the range to the rows whose Table.Recent
	// is at or after it.
	Since *time.Time `json:"since,omitempty"`
}

// Same reports whether both sides hold the same rows in the range.
func (r Range) Same() bool { return r.Source == r.Target }

func (r Range) String() string {
	return fmt.Sprintf("%s [%d, %d): source %d rows (hash %s), target %d rows (hash %s)",
		r.Table, r.Lo, r.Hi, r.Source.Rows, r.Source.Hash, r.Target.Rows, r.Target.Hash)
}

// TableCheck is what one verification found in one table.
type TableCheck struct {
	Table string `json:"table"`
	// Rows are the region's rows on the source and the target.
	Rows       int64 `json:"rows"`
	TargetRows int64 `json:"target_rows"`
	// Ranges is the number of ranges the table was split into (hashed
	// ranges for VerifyFrozen); Differing how many of them still differ.
	Ranges    int `json:"ranges"`
	Differing int `json:"differing"`
	// Bounds are the ranges' lower bounds, in order; the last range ends
	// at the region's key range's end. VerifyFrozen hashes the newest
	// range (from the last bound) again.
	Bounds []int64 `json:"bounds"`
}

// Verification is the outcome of Verify or VerifyFrozen.
type Verification struct {
	Region regions.Code `json:"region"`
	At     time.Time    `json:"at"`
	// Frozen is true for VerifyFrozen.
	Frozen  bool          `json:"frozen"`
	Elapsed time.Duration `json:"elapsed_ns"`
	// Rounds is the number of passes: 1 when every range matched at once.
	Rounds    int          `json:"rounds"`
	RangeRows int64        `json:"range_rows"`
	Tables    []TableCheck `json:"tables"`
	// Differing are the ranges that still differ after the last round.
	Differing []Range `json:"differing,omitempty"`
}

// OK reports whether every checked range matched.
func (v Verification) OK() bool { return len(v.Differing) == 0 }

// Rows returns the region's rows on the source, all tables together.
func (v Verification) Rows() int64 {
	var n int64
	for _, t := range v.Tables {
		n += t.Rows
	}
	return n
}

// Verify compares region r's rows on the source (src) and the target (dst)
// table by table. Each table's key range of the region is split into ranges
// of about opts.RangeRows rows, by the source's count and smallest and
// largest key (a table keyed by region_id is one range); for every range
// both sides count the rows and sum a 64-bit prefix of md5 of each row's
// text, in one statement per side, the two sides at the same time. Ranges
// that differ are checked again after opts.Settle, up to opts.Rounds times;
// those that still differ are in the result's Differing. A row missing, an
// extra row and a changed row all change the range's count or hash (short
// of a 64-bit collision of the sums). Rows whose text is equal but whose
// values differ in a way text does not show are not told apart.
//
// The connections should come from Connect. An error is returned only when
// a query fails; differences are in the Verification.
func Verify(ctx context.Context, src, dst *pgx.Conn, r regions.Code, opts VerifyOptions) (Verification, error) {
	if opts.RangeRows <= 0 {
		opts.RangeRows = DefaultRangeRows
	}
	if opts.Rounds <= 0 {
		opts.Rounds = DefaultRounds
	}
	if opts.Tables == nil {
		opts.Tables = Tables
	}
	start := time.Now()
	v := Verification{Region: r, At: start.UTC(), RangeRows: opts.RangeRows}
	var todo []Range
	for _, t := range opts.Tables {
		bounds, err := split(ctx, src, t, r, opts.RangeRows)
		if err != nil {
			return v, err
		}
		v.Tables = append(v.Tables, TableCheck{Table: t.Name, Ranges: len(bounds), Bounds: bounds})
		todo = append(todo, ranges(t, r, bounds)...)
	}
	if err := countRows(ctx, src, dst, r, opts.Tables, &v); err != nil {
		return v, err
	}
	for {
		v.Rounds++
		checked, err := sumRanges(ctx, src, dst, opts.Tables, todo)
		if err != nil {
			return v, err
		}
		todo = todo[:0]
		for _, c := range checked {
			if !c.Same() {
				todo = append(todo, c)
			}
		}
		if len(todo) == 0 || opts.Settle == nil || v.Rounds > opts.Rounds {
			break
		}
		if todo, err = narrow(ctx, src, opts.Tables, todo); err != nil {
			return v, err
		}
		if err := opts.Settle(ctx); err != nil {
			return v, fmt.Errorf("move: verify: settle: %w", err)
		}
	}
	// Rows may have moved in or out of a range between the count and the
	// last round: count again when anything was re-checked.
	if v.Rounds > 1 {
		if err := countRows(ctx, src, dst, r, opts.Tables, &v); err != nil {
			return v, err
		}
	}
	v.Differing = todo
	tally(&v)
	v.Elapsed = time.Since(start)
	return v, nil
}

// Narrowing of the ranges that differ while writes go on.
const (
	// narrowRows is the size under which a differing range is checked
	// again whole rather than split.
	narrowRows = 1_000
	// narrowParts is how many parts a larger differing range is split
	// into before it is checked again.
	narrowParts = 8
)

// narrow splits each of the differing ranges rs that holds more than
// narrowRows rows on either side into narrowParts ranges of equal key
// width between its smallest and largest key on the source, so that the
// next round re-checks, and the freeze finally hashes, only the small
// ranges writes keep changing, not the whole ranges they fall in: under a
// steady load every 50,000-row range of a rollup differs at each look,
// but few of its parts do.
func narrow(ctx context.Context, src *pgx.Conn, tables []Table, rs []Range) ([]Range, error) {
	var out []Range
	for _, rg := range rs {
		t := tables[indexOf(tables, rg.Table)]
		if t.ByRegionID() || max(rg.Source.Rows, rg.Target.Rows) <= narrowRows {
			out = append(out, rg)
			continue
		}
		key := pgx.Identifier{t.Key}.Sanitize()
		var first, last int64
		q := fmt.Sprintf(`SELECT coalesce(min(%[2]s), $1), coalesce(max(%[2]s), $1) FROM %[1]s WHERE %[2]s >= $1 AND %[2]s < $2`, t.Name, key)
		if err := src.QueryRow(ctx, q, rg.Lo, rg.Hi).Scan(&first, &last); err != nil {
			return nil, fmt.Errorf("move: narrow %s: %w", t.Name, err)
		}
		width := (last - first + 1) / narrowParts
		if width < 1 {
			out = append(out, rg)
			continue
		}
		lo := rg.Lo
		for i := int64(1); i < narrowParts; i++ {
			hi := first + i*width
			out = append(out, Range{Table: rg.Table, Lo: lo, Hi: hi})
			lo = hi
		}
		out = append(out, Range{Table: rg.Table, Lo: lo, Hi: rg.Hi})
	}
	return out, nil
}

// VerifyFrozen is the check made while the region is frozen, which must
// fit in the freeze (under a second with millions of rows): it compares
// the count and hash, on both sides, of the rows that writes may have
// changed since last (the online Verify before the freeze): of a table
// with a Table.Recent column (the stored Idempotency-Keys) the rows
// written since last began; every other table keyed by region_id (the
// rollups, a row per key) whole; the newest frozenRangeRows keys of every
// other table (where every row inserted since last lies, and the day's
// presences that check-outs update); and the ranges last left differing. It neither counts nor hashes the older
// ranges again: a row of an older range updated after last whose update
// did not arrive is not found here, but by the whole verification the
// move runs after the switch, while the reverse stream keeps the source
// current and a rollback loses nothing. When last is empty (no Table) or
// the region holds fewer than smallRegion rows, it hashes every range.
//
// The returned Verification has Frozen set; its Tables count the rows of
// the hashed ranges only.
func VerifyFrozen(ctx context.Context, src, dst *pgx.Conn, r regions.Code, last Verification) (Verification, error) {
	return verifyFrozen(ctx, src, dst, r, last, smallRegion, frozenRangeRows)
}

// verifyFrozen is VerifyFrozen hashing every range when the region holds
// fewer than small rows, else the newest top keys of each table.
func verifyFrozen(ctx context.Context, src, dst *pgx.Conn, r regions.Code, last Verification, small, top int64) (Verification, error) {
	var tables []Table
	for _, tc := range last.Tables {
		t, ok := tableNamed(tc.Table)
		if !ok {
			return Verification{}, fmt.Errorf("move: verify frozen: unknown table %s", tc.Table)
		}
		tables = append(tables, t)
	}
	if len(tables) == 0 || last.Rows() < small {
		v, err := Verify(ctx, src, dst, r, VerifyOptions{RangeRows: last.RangeRows, Tables: tables})
		v.Frozen = true
		return v, err
	}
	start := time.Now()
	v := Verification{Region: r, At: start.UTC(), Frozen: true, Rounds: 1, RangeRows: top}
	var todo []Range
	since := last.At.Add(-recentMargin)
	for _, t := range tables {
		lo, hi := t.KeyRange(r)
		rg := Range{Table: t.Name, Lo: lo, Hi: hi}
		switch {
		case t.Recent != "":
			rg.Since = &since
		case !t.ByRegionID():
			first, err := newest(ctx, src, t, lo, hi, top)
			if err != nil {
				return v, err
			}
			rg.Lo = first
		}
		todo = append(todo, rg)
		v.Tables = append(v.Tables, TableCheck{Table: t.Name, Ranges: 1, Bounds: []int64{lo}})
	}
	for _, d := range last.Differing {
		i := indexOf(tables, d.Table)
		if d.Lo < todo[i].Lo && todo[i].Since == nil { // else inside the newest keys, or written since
			todo = append(todo, Range{Table: d.Table, Lo: d.Lo, Hi: min(d.Hi, todo[i].Lo)})
			v.Tables[i].Ranges++
		}
	}
	checked, err := sumRanges(ctx, src, dst, tables, todo)
	if err != nil {
		return v, err
	}
	for _, c := range checked {
		i := indexOf(tables, c.Table)
		v.Tables[i].Rows += c.Source.Rows
		v.Tables[i].TargetRows += c.Target.Rows
		if !c.Same() {
			v.Differing = append(v.Differing, c)
		}
	}
	tally(&v)
	v.Elapsed = time.Since(start)
	return v, nil
}

// newest returns the smallest of the source's n largest keys of t in
// [lo, hi), or lo when the range holds fewer: the primary key's index
// read backwards from the end, n entries.
func newest(ctx context.Context, src *pgx.Conn, t Table, lo, hi, n int64) (int64, error) {
	key := pgx.Identifier{t.Key}.Sanitize()
	q := fmt.Sprintf(`SELECT %[2]s FROM %[1]s WHERE %[2]s >= $1 AND %[2]s < $2 ORDER BY %[2]s DESC OFFSET $3 LIMIT 1`, t.Name, key)
	var top int64
	err := src.QueryRow(ctx, q, lo, hi, n-1).Scan(&top)
	if errors.Is(err, pgx.ErrNoRows) {
		return lo, nil
	}
	if err != nil {
		return 0, fmt.Errorf("move: newest keys of %s: %w", t.Name, err)
	}
	return top, nil
}

// split returns the lower bounds of t's ranges of region r on the source:
// about rangeRows rows each by the source's count and key span, the first
// starting at the region's first key.
func split(ctx context.Context, src *pgx.Conn, t Table, r regions.Code, rangeRows int64) ([]int64, error) {
	lo, hi := t.KeyRange(r)
	if t.ByRegionID() {
		return []int64{lo}, nil
	}
	var n, first, last int64
	q := fmt.Sprintf(`SELECT count(*), coalesce(min(%[2]s), 0), coalesce(max(%[2]s), 0) FROM %[1]s WHERE %[2]s >= $1 AND %[2]s < $2`,
		t.Name, pgx.Identifier{t.Key}.Sanitize())
	if err := src.QueryRow(ctx, q, lo, hi).Scan(&n, &first, &last); err != nil {
		return nil, fmt.Errorf("move: split %s: %w", t.Name, err)
	}
	parts := (n + rangeRows - 1) / rangeRows
	bounds := []int64{lo}
	width := (last - first + 1) / max(parts, 1)
	for i := int64(1); i < parts && width > 0; i++ {
		bounds = append(bounds, first+i*width)
	}
	return bounds, nil
}

// ranges turns t's lower bounds into ranges, the last one ending at the
// end of region r's key range.
func ranges(t Table, r regions.Code, bounds []int64) []Range {
	_, hi := t.KeyRange(r)
	out := make([]Range, len(bounds))
	for i, lo := range bounds {
		end := hi
		if i+1 < len(bounds) {
			end = bounds[i+1]
		}
		out[i] = Range{Table: t.Name, Lo: lo, Hi: end}
	}
	return out
}

// sumRanges computes the Sum of every range on the source and on the
// target, the two sides concurrently, and returns the ranges filled in.
func sumRanges(ctx context.Context, src, dst *pgx.Conn, tables []Table, rs []Range) ([]Range, error) {
	out := append([]Range(nil), rs...)
	g, gctx := errgroup.WithContext(ctx)
	side := func(conn *pgx.Conn, set func(*Range, Sum), name string) func() error {
		return func() error {
			for i := range out {
				t := tables[indexOf(tables, out[i].Table)]
				q := fmt.Sprintf(`SELECT count(*), coalesce(sum(('x' || left(md5(t::text), 16))::bit(64)::bigint), 0)::text
FROM %[1]s t WHERE %[2]s >= $1 AND %[2]s < $2`, t.Name, pgx.Identifier{t.Key}.Sanitize())
				args := []any{out[i].Lo, out[i].Hi}
				if out[i].Since != nil {
					q += fmt.Sprintf(` AND %s >= $3`, pgx.Identifier{t.Recent}.Sanitize())
					args = append(args, *out[i].Since)
				}
				var s Sum
				if err := conn.QueryRow(gctx, q, args...).Scan(&s.Rows, &s.Hash); err != nil {
					return fmt.Errorf("move: hash %s on the %s: %w", t.Name, name, err)
				}
				set(&out[i], s)
			}
			return nil
		}
	}
	g.Go(side(src, func(r *Range, s Sum) { r.Source = s }, "source"))
	g.Go(side(dst, func(r *Range, s Sum) { r.Target = s }, "target"))
	return out, g.Wait()
}

// countRows fills in the rows of region r per table on both sides,
// counted concurrently.
func countRows(ctx context.Context, src, dst *pgx.Conn, r regions.Code, tables []Table, v *Verification) error {
	var s, d map[string]int64
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) { s, err = RegionRows(gctx, src, r, tables); return })
	g.Go(func() (err error) { d, err = RegionRows(gctx, dst, r, tables); return })
	if err := g.Wait(); err != nil {
		return err
	}
	for i := range v.Tables {
		v.Tables[i].Rows = s[v.Tables[i].Table]
		v.Tables[i].TargetRows = d[v.Tables[i].Table]
	}
	return nil
}

// RegionRows counts region r's rows in each of tables (Tables when nil) in
// one statement, keyed by table name. The counts use each table's key
// range, so PostgreSQL answers them from the primary key's index alone
// where the visibility map allows.
func RegionRows(ctx context.Context, conn *pgx.Conn, r regions.Code, tables []Table) (map[string]int64, error) {
	if tables == nil {
		tables = Tables
	}
	parts := make([]string, len(tables))
	for i, t := range tables {
		lo, hi := t.KeyRange(r)
		parts[i] = fmt.Sprintf(`SELECT %[1]d, count(*) FROM %[2]s WHERE %[3]s >= %[4]d AND %[3]s < %[5]d`,
			i, t.Name, pgx.Identifier{t.Key}.Sanitize(), lo, hi)
	}
	rows, err := conn.Query(ctx, strings.Join(parts, "\nUNION ALL "))
	if err != nil {
		return nil, fmt.Errorf("move: count rows of region %s: %w", r, err)
	}
	counts := map[string]int64{}
	var i int
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&i, &n}, func() error {
		counts[tables[i].Name] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("move: count rows of region %s: %w", r, err)
	}
	return counts, nil
}

// tally sets each table's Differing from v.Differing.
func tally(v *Verification) {
	for i := range v.Tables {
		v.Tables[i].Differing = 0
		for _, d := range v.Differing {
			if d.Table == v.Tables[i].Table {
				v.Tables[i].Differing++
			}
		}
	}
}

func tableNamed(name string) (Table, bool) {
	for _, t := range Tables {
		if t.Name == name {
			return t, true
		}
	}
	return Table{}, false
}

func indexOf(tables []Table, name string) int {
	for i, t := range tables {
		if t.Name == name {
			return i
		}
	}
	return -1
}
