package registry

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/internal/pgcluster"
	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/seed"
)

// BenchmarkBatchCost takes the batch statement's cost apart: 10,000 new
// presences of Lombardia (SPUNTA rows of 500 ATTIVA vendors a day on 20
// days of next month, ten at each of 50 markets a day, each at a market
// where it holds no concession: 1,000 market days, as a regional office's
// upload) written four ways, each in a transaction rolled back:
//
//   - copy-owner: raw COPY into vendor_presences as the owner, no row-level
//     security and no validation (the floor of issue 14, item 2);
//   - insert-select: COPY to a temporary table, then one INSERT ... SELECT
//     as dms_app in the region's scope: row-level security, the rollup
//     trigger and the indexes, no validation;
//   - plan: ten 1,000-row INSERT ... VALUES as dms_app (the scaling plan's
//     method);
//   - batch: what IngestPresences runs for new, distinct rows
//     (batchSetupSQL, COPY to presence_staging_v1, fastSQL).
//
// pg-cpu-ms/op is the backend's CPU per 10,000 rows, from /proc (10 ms
// ticks: run 20 or more iterations); ns/op includes a VACUUM of the
// month's partition before each write, off the CPU figure. With
// DMSROUTER_BENCH_SHARD, the admin DSN of a seeded database holding region
// 03 (a full-scale one: BENCHMARKS.md), it runs there, as dms_app on the
// same server; otherwise on a single-shard deployment seeded at the demo's
// scale. Run the arms in turns with -count, since the machine's load moves
// between them:
//
//	go test ./registry/ -run '^$' -bench BenchmarkBatchCost -benchtime 20x -count 3
func BenchmarkBatchCost(b *testing.B) {
	ctx := context.Background()
	adminDSN := os.Getenv("DMSROUTER_BENCH_SHARD")
	if adminDSN == "" {
		cfg := pgtest.NewDeployment(b, pg, "batchcost", pgtest.SingleShard())
		if _, err := seed.Run(ctx, cfg, seed.Options{Markets: 800, Days: 30, Seed: 1}); err != nil {
			b.Fatal(err)
		}
		adminDSN = cfg.Shards[0].AdminDSN()
	}
	// Both connections run without JIT, as the router's do.
	connect := func(user string) *pgx.Conn {
		cfg, err := pgx.ParseConfig(adminDSN)
		if err != nil {
			b.Fatal(err)
		}
		cfg.RuntimeParams["jit"] = "off"
		if user != "" {
			cfg.User, cfg.Password = user, ""
		}
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { conn.Close(context.Background()) })
		return conn
	}
	owner, app := connect(""), connect("dms_app")

	first := time.Now().UTC().AddDate(0, 1, 0)
	first = time.Date(first.Year(), first.Month(), 5, 0, 0, 0, 0, time.UTC)
	last := first.AddDate(0, 0, 19)
	type row struct {
		market int64
		comune string
		vendor int64
		date   time.Time
	}
	rows, _ := owner.Query(ctx, `
		WITH m AS (SELECT id, comune, row_number() OVER (ORDER BY id) - 1 AS i, count(*) OVER () AS n
		           FROM markets WHERE region_id = 3 AND status = 'ACTIVE'),
		     v AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS j FROM vendors WHERE region_id = 3 AND status = 'ATTIVA'),
		     d AS (SELECT k, $1::date + k AS date FROM generate_series(0, 19) k)
		SELECT m.id, m.comune, v.id, d.date FROM d JOIN v ON v.j < 550 JOIN m ON m.i = (v.j / 10 + d.k * 7) % m.n
		WHERE NOT EXISTS (SELECT FROM concessions c WHERE c.vendor_id = v.id AND c.market_id = m.id)
		ORDER BY d.date, m.id, v.id
		LIMIT 10000`, first)
	data, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (x row, err error) {
		return x, r.Scan(&x.market, &x.comune, &x.vendor, &x.date)
	})
	if err != nil {
		b.Fatal(err)
	}
	if len(data) < 10000 {
		b.Fatalf("only %d rows to write: region 03 needs 550 ATTIVA vendors", len(data))
	}

	const columns = "id, region_id, market_id, comune, vendor_id, stall_id, date, kind, checkin_at"
	scope := func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `SELECT set_config('dms.region', '03', true), set_config('dms.province', '', true),
			set_config('dms.comune', '', true), set_config('dms.market', '', true), set_config('dms.user', 'bench', true)`)
		return err
	}
	var seq int64 // ids of the owner's COPY, never committed
	arms := []struct {
		name  string
		conn  *pgx.Conn
		write func(tx pgx.Tx) error
	}{
		{"copy-owner", owner, func(tx pgx.Tx) error {
			_, err := tx.CopyFrom(ctx, pgx.Identifier{"vendor_presences"}, strings.Split(columns, ", "),
				pgx.CopyFromSlice(len(data), func(i int) ([]any, error) {
					seq++
					r := data[i]
					return []any{3<<48 | (1<<40 + seq), int16(3), r.market, r.comune, r.vendor, nil, r.date, "SPUNTA", time.Now()}, nil
				}))
			return err
		}},
		{"insert-select", app, func(tx pgx.Tx) error {
			if err := scope(tx); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS bench_rows (market_id bigint, comune text, vendor_id bigint, date date)
				ON COMMIT DELETE ROWS`); err != nil {
				return err
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"bench_rows"}, []string{"market_id", "comune", "vendor_id", "date"},
				pgx.CopyFromSlice(len(data), func(i int) ([]any, error) {
					r := data[i]
					return []any{r.market, r.comune, r.vendor, r.date}, nil
				})); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO vendor_presences (`+columns+`)
				SELECT (3::int8 << 48) | nextval('dms.vendor_presences_id_03'), 3, market_id, comune, vendor_id, NULL, date, 'SPUNTA', now()
				FROM bench_rows`)
			return err
		}},
		{"plan", app, func(tx pgx.Tx) error {
			if err := scope(tx); err != nil {
				return err
			}
			for lo := 0; lo < len(data); lo += 1000 {
				var sql strings.Builder
				args := make([]any, 0, 4000)
				sql.WriteString("INSERT INTO vendor_presences (" + columns + ") VALUES ")
				for i, r := range data[lo : lo+1000] {
					if i > 0 {
						sql.WriteString(", ")
					}
					n := len(args)
					fmt.Fprintf(&sql, "((3::int8 << 48) | nextval('dms.vendor_presences_id_03'), 3, $%d, $%d, $%d, NULL, $%d, 'SPUNTA', now())",
						n+1, n+2, n+3, n+4)
					args = append(args, r.market, r.comune, r.vendor, r.date)
				}
				if _, err := tx.Exec(ctx, sql.String(), args...); err != nil {
					return err
				}
			}
			return nil
		}},
		{"batch", app, func(tx pgx.Tx) error {
			if err := scope(tx); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, batchSetupSQL); err != nil {
				return err
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"presence_staging_v1"},
				[]string{"row_no", "market_id", "vendor_id", "stall_id", "date", "kind", "checkin_at"},
				pgx.CopyFromSlice(len(data), func(i int) ([]any, error) {
					r := data[i]
					return []any{int32(i), r.market, r.vendor, nil, r.date, "SPUNTA", nil}, nil
				})); err != nil {
				return err
			}
			var inserted, eligible, duplicate int
			var rejected string
			err := fastSQL.queryRow(ctx, tx, pgx.NamedArgs{"first": first, "last": last, "region": int16(3),
				"id_seq": "dms.vendor_presences_id_03", "today": time.Now()}).Scan(&inserted, &eligible, &duplicate, &rejected)
			if err == nil && inserted != len(data) {
				err = fmt.Errorf("the batch inserted %d of %d rows: %.300s", inserted, len(data), rejected)
			}
			return err
		}},
	}
	// Each write is rolled back and leaves its 10,000 rows dead in the
	// month's partition and its indexes, where the next write of the same
	// keys would meet them in every unique check and read of the stored
	// presences: the partitions are vacuumed before each write, off the
	// clock. The run must start with them empty and not bloated (an
	// earlier run's dead rows, vacuumed, leave the pages behind): the
	// benchmark refuses partitions that hold rows, and truncates them.
	rows, _ = owner.Query(ctx, `SELECT DISTINCT format('vendor_presences_%s', to_char(d, 'YYYY_MM'))
		FROM generate_series($1::date, $2::date, interval '1 day') d`, first, last)
	partitions, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range partitions {
		var holds bool
		if err := owner.QueryRow(ctx, "SELECT EXISTS (SELECT FROM "+p+")").Scan(&holds); err != nil || holds {
			b.Fatalf("%s holds rows (%v): the benchmark writes there and truncates it", p, err)
		}
	}
	if _, err := owner.Exec(ctx, "TRUNCATE "+strings.Join(partitions, ", ")); err != nil {
		b.Fatal(err)
	}
	vacuum := "VACUUM " + strings.Join(partitions, ", ")
	for _, arm := range arms {
		b.Run(arm.name, func(b *testing.B) {
			pid := int(arm.conn.PgConn().PID())
			// backendCPU reads the CPU time the backend has used so far
			// (the server runs on this machine).
			backendCPU := func() time.Duration {
				st, err := pgcluster.ProcessStat(pid)
				if err != nil {
					b.Fatalf("the backend's CPU: %v (the server must run on this machine)", err)
				}
				return st.CPU
			}
			write := func() time.Duration {
				if _, err := owner.Exec(ctx, vacuum); err != nil {
					b.Fatal(err)
				}
				before := backendCPU()
				tx, err := arm.conn.Begin(ctx)
				if err != nil {
					b.Fatal(err)
				}
				defer tx.Rollback(ctx)
				if err := arm.write(tx); err != nil {
					b.Fatal(err)
				}
				if err := tx.Rollback(ctx); err != nil {
					b.Fatal(err)
				}
				return backendCPU() - before
			}
			write() // prepares the statements and builds their plans
			var cpu time.Duration
			b.ResetTimer()
			for range b.N {
				cpu += write()
			}
			b.StopTimer()
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "pg-cpu-ms/op")
		})
	}
}
