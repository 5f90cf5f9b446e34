package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// Ingest is one bulk write of presences into one shard.
type Ingest struct {
	Target  string // "shard s03" or "monolith all"
	Method  string
	Rows    int64
	Elapsed time.Duration
}

// PerSecond returns the rows written per second.
func (i Ingest) PerSecond() float64 {
	if i.Elapsed <= 0 {
		return 0
	}
	return float64(i.Rows) / i.Elapsed.Seconds()
}

// presenceRow is one synthetic presence to ingest.
type presenceRow struct {
	region   int16
	market   int64
	comune   string
	vendor   int64
	stall    int64
	date     time.Time
	checkin  time.Time
	checkout time.Time
}

// ingestStall is a stall presences are ingested into.
type ingestStall struct {
	ID     int64  `db:"id"`
	Market int64  `db:"market_id"`
	Comune string `db:"comune"`
}

// presenceRows builds n presences of region r's stalls on consecutive days
// from first on: every stall of every market once a day, each market's
// stalls held by distinct vendors (consecutive ones from a per-market
// start), so no unique constraint is violated.
// It returns the rows and the last day used.
func presenceRows(r regions.Code, stalls []ingestStall, vendors []int64, first time.Time, n int, rome *time.Location) ([]presenceRow, time.Time, error) {
	if len(stalls) == 0 || len(vendors) == 0 {
		return nil, first, fmt.Errorf("region %s has no stalls or no vendors to ingest presences for", r)
	}
	rows := make([]presenceRow, 0, n)
	day := first
	for d := 0; len(rows) < n; d++ {
		day = first.AddDate(0, 0, d)
		y, mo, dd := day.Date()
		open := time.Date(y, mo, dd, 7, 0, 0, 0, rome)
		pos, base, market := 0, 0, int64(0)
		for i, s := range stalls {
			if s.Market != market {
				pos, base, market = 0, i, s.Market
			}
			if pos < len(vendors) && len(rows) < n {
				in := open.Add(time.Duration(i%90) * time.Minute)
				rows = append(rows, presenceRow{
					region:   int16(r.Num()),
					market:   s.Market,
					comune:   s.Comune,
					vendor:   vendors[(base+pos+d)%len(vendors)],
					stall:    s.ID,
					date:     day,
					checkin:  in,
					checkout: in.Add(5 * time.Hour),
				})
			}
			pos++
		}
	}
	return rows, day, nil
}

const ingestCols = "region_id, market_id, comune, vendor_id, stall_id, date, kind, checkin_at, checkout_at"

// insertSQL is a multi-row INSERT of n presences, eight parameters a row,
// as an ORM's batch insert sends it.
func insertSQL(n int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO vendor_presences (id, " + ingestCols + ") VALUES ")
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		p := i * 8
		arg := func(k int) string { return "$" + strconv.Itoa(p+k) }
		b.WriteString("(dms.next_id('vendor_presences', " + arg(1) + "), " + arg(1) + ", " + arg(2) + ", " + arg(3) + ", " +
			arg(4) + ", " + arg(5) + ", " + arg(6) + ", 'CONCESSION', " + arg(7) + ", " + arg(8) + ")")
	}
	return b.String()
}

func (p presenceRow) args() []any {
	return []any{p.region, p.market, p.comune, p.vendor, p.stall, p.date, p.checkin, p.checkout}
}

// insertBatches writes rows as multi-row INSERTs of batch rows, each in
// its own transaction: the scaling plan's batch insert.
func insertBatches(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, rows []presenceRow, batch int) (int64, error) {
	var n int64
	for i := 0; i < len(rows); i += batch {
		part := rows[i:min(i+batch, len(rows))]
		args := make([]any, 0, 8*len(part))
		for _, r := range part {
			args = append(args, r.args()...)
		}
		err := sh.Tx(ctx, sc, pgx.ReadWrite, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, insertSQL(len(part)), args...)
			n += tag.RowsAffected()
			return err
		})
		if err != nil {
			return n, fmt.Errorf("insert batch at row %d: %w", i, err)
		}
	}
	return n, nil
}

// copyIn writes rows with COPY into a temporary staging table and one
// INSERT ... SELECT from it, in one transaction: COPY cannot write a table
// row-level security guards, the INSERT applies the policy to every row.
func copyIn(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, rows []presenceRow) (int64, error) {
	var n int64
	err := sh.Tx(ctx, sc, pgx.ReadWrite, func(tx pgx.Tx) error {
		// One statement writes every row: the shard's per-statement
		// timeout, sized for reads, does not apply.
		if _, err := tx.Exec(ctx, `SET LOCAL statement_timeout = 0`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE presence_ingest (
			region_id smallint, market_id bigint, comune text, vendor_id bigint, stall_id bigint,
			date date, kind text, checkin_at timestamptz, checkout_at timestamptz) ON COMMIT DROP`); err != nil {
			return err
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"presence_ingest"}, strings.Split(strings.ReplaceAll(ingestCols, " ", ""), ","),
			pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
				r := rows[i]
				return []any{r.region, r.market, r.comune, r.vendor, r.stall, r.date, "CONCESSION", r.checkin, r.checkout}, nil
			}))
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, "INSERT INTO vendor_presences (id, "+ingestCols+
			") SELECT dms.next_id('vendor_presences', region_id), "+ingestCols+" FROM presence_ingest")
		n = tag.RowsAffected()
		return err
	})
	return n, err
}

// ingestInto measures both write paths for n presences of region r on the
// shard of m that serves it, on days from first on, where the seed writes
// nothing. The presences of r on those days are deleted before and after
// each method.
func ingestInto(ctx context.Context, m *shardmap.Map, target string, r regions.Code, n, batch int, first time.Time, rome *time.Location) ([]Ingest, error) {
	sh, err := m.For(r)
	if err != nil {
		return nil, err
	}
	sc := regions.Scope{Region: r, User: subject}
	var stalls []ingestStall
	var vendors []int64
	err = sh.Read(ctx, sc, func(b *pgx.Batch) {
		b.Queue(`SELECT id, market_id, comune FROM stalls WHERE region_id = $1 ORDER BY market_id, number`, int16(r.Num())).
			Query(func(rows pgx.Rows) (err error) {
				stalls, err = pgx.CollectRows(rows, pgx.RowToStructByName[ingestStall])
				return err
			})
		b.Queue(`SELECT id FROM vendors WHERE region_id = $1 ORDER BY id`, int16(r.Num())).
			Query(func(rows pgx.Rows) (err error) {
				vendors, err = pgx.CollectRows(rows, pgx.RowTo[int64])
				return err
			})
	})
	if err != nil {
		return nil, fmt.Errorf("ingest: read stalls and vendors of region %s: %w", r, err)
	}
	rows, last, err := presenceRows(r, stalls, vendors, first, n, rome)
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	clean := func() error {
		return sh.Tx(ctx, sc, pgx.ReadWrite, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `DELETE FROM vendor_presences WHERE region_id = $1 AND date BETWEEN $2 AND $3`, int16(r.Num()), first, last)
			return err
		})
	}
	methods := []struct {
		name  string
		write func() (int64, error)
	}{
		{fmt.Sprintf("INSERT, %d-row batches", batch), func() (int64, error) { return insertBatches(ctx, sh, sc, rows, batch) }},
		{"COPY via staging table", func() (int64, error) { return copyIn(ctx, sh, sc, rows) }},
	}
	var out []Ingest
	for _, meth := range methods {
		if err := clean(); err != nil {
			return out, fmt.Errorf("ingest: clean up: %w", err)
		}
		start := time.Now()
		wrote, err := meth.write()
		elapsed := time.Since(start)
		if err != nil {
			clean()
			return out, fmt.Errorf("ingest %s: %w", meth.name, err)
		}
		if wrote != int64(len(rows)) {
			clean()
			return out, fmt.Errorf("ingest %s: wrote %d rows, want %d", meth.name, wrote, len(rows))
		}
		out = append(out, Ingest{Target: target, Method: meth.name, Rows: wrote, Elapsed: elapsed})
	}
	if err := clean(); err != nil {
		return out, fmt.Errorf("ingest: clean up: %w", err)
	}
	return out, nil
}
