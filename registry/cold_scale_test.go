package registry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// schedNS returns the CPU time of process pid so far in nanoseconds
// (/proc/pid/schedstat): a backend of a server on this machine.
func schedNS(pid uint32) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", pid))
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.Fields(string(b))[0], 10, 64)
	return n
}

// errRollback rolls back TestColdStatements' check-ins.
var errRollback = errors.New("rollback")

// TestColdStatements measures, on a seeded shard of a server on this
// machine, what the reads and the check-in that touch the presences' monthly
// partitions cost on a new connection: the wall and backend CPU time of
// each of the first seven runs of each on a one-connection pool, without a
// warm-up and after Warm (whose own cost it also reports), the median of
// DMS_COLD_REPS fresh pools (3). The seventh run shows the plan PostgreSQL
// settles on: a statement planned for its values (custom plans) builds its
// generic plan at the sixth run, to compare. DMS_COLD_DSN names the shard of
// region 03 as the login role, DMS_COLD_ADMIN as a superuser (to pick a
// market with presences); DMS_COLD_ONLY a shape by part of its name. The
// check-ins are rolled back. Without DMS_COLD_DSN it is skipped; it
// asserts nothing of the times (BENCHMARKS.md, "Cold statements").
func TestColdStatements(t *testing.T) {
	dsn, admin := os.Getenv("DMS_COLD_DSN"), os.Getenv("DMS_COLD_ADMIN")
	if dsn == "" {
		t.Skip("DMS_COLD_DSN not set")
	}
	ctx := context.Background()
	ac, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	var (
		market, vendor, stall, conc int64
		comune, province, piva      string
		day                         time.Time
	)
	if err := ac.QueryRow(ctx, `SELECT p.market_id, p.date, m.comune, m.province FROM vendor_presences p JOIN markets m ON m.id = p.market_id
		WHERE p.region_id = 3 AND p.date = (SELECT max(date) FROM vendor_presences WHERE region_id = 3 AND date > now() - interval '20 days') LIMIT 1`).Scan(&market, &day, &comune, &province); err != nil {
		t.Fatal(err)
	}
	if err := ac.QueryRow(ctx, `SELECT c.id, c.vendor_id, c.stall_id, v.partita_iva FROM concessions c JOIN vendors v ON v.id = c.vendor_id WHERE c.market_id = $1 LIMIT 1`, market).Scan(&conc, &vendor, &stall, &piva); err != nil {
		t.Fatal(err)
	}
	ac.Close(ctx)
	t.Logf("market %d day %s comune %s vendor %d conc %d piva %s", market, day.Format(time.DateOnly), comune, vendor, conc, piva)
	cs := regions.Scope{Region: "03", Province: province, Comune: comune, User: "bench"}
	rs := regions.Scope{Region: "03", User: "bench"}
	yearStart := time.Date(day.Year(), 1, 1, 0, 0, 0, 0, time.UTC)
	shapes := []struct {
		name string
		run  func(sh *shardmap.Shard) error
	}{
		{"presences comune", func(sh *shardmap.Shard) error {
			_, err := ListPresences(ctx, sh, cs, market, day, Page{Limit: 50})
			return err
		}},
		{"presences region", func(sh *shardmap.Shard) error {
			_, err := ListPresences(ctx, sh, rs, market, day, Page{Limit: 50})
			return err
		}},
		{"market days", func(sh *shardmap.Shard) error {
			_, err := ListMarketDays(ctx, sh, cs, market, day.AddDate(0, 0, -60), day)
			return err
		}},
		{"absences", func(sh *shardmap.Shard) error {
			_, err := ListAbsences(ctx, sh, cs, conc, day.Year(), day)
			return err
		}},
		{"graduatoria spunta", func(sh *shardmap.Shard) error {
			_, err := GetGraduatoria(ctx, sh, cs, market, GraduatoriaQuery{Kind: "SPUNTA", Year: day.Year(), Date: day}, Page{Limit: 50})
			return err
		}},
		{"spunta", func(sh *shardmap.Shard) error {
			_, err := GetSpunta(ctx, sh, cs, market, day)
			if errors.Is(err, ErrNotFound) {
				return nil
			}
			return err
		}},
		{"vendor in region (national leg)", func(sh *shardmap.Shard) error {
			_, err := VendorInRegion(ctx, sh, rs, piva, yearStart)
			return err
		}},
		{"check-in (rolled back)", func(sh *shardmap.Shard) error {
			args := writeArgs(cs, Write{Actor: Actor{User: "bench", Role: "admin"}}, pgx.NamedArgs{"market": market, "vendor": vendor, "stall": stall,
				"date": day.AddDate(0, 0, 1), "kind": "CONCESSION", "checkin": day.AddDate(0, 0, 1).Add(8 * time.Hour)})
			err := sh.Tx(ctx, cs, pgx.ReadWrite, func(tx pgx.Tx) error {
				// As Shard.BatchAsWriter runs it, in a transaction that can
				// be rolled back.
				if _, err := tx.Exec(ctx, `SELECT set_config('role', $1, true)`, shardmap.RowWriter); err != nil {
					return err
				}
				var row checkInRow
				if err := row.scan(checkInSQL.queryRow(ctx, tx, args)); err != nil {
					return err
				}
				return errRollback
			})
			if errors.Is(err, errRollback) {
				return nil
			}
			return err
		}},
	}
	only := os.Getenv("DMS_COLD_ONLY")
	reps, _ := strconv.Atoi(os.Getenv("DMS_COLD_REPS"))
	if reps == 0 {
		reps = 3
	}
	const calls = 7
	fmt.Println("| statement | Warm | Warm ms (wall / CPU) | run 1 | run 2 | run 3 | run 4 | run 5 | run 6 | run 7 |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, warm := range []bool{false, true} {
		for _, s := range shapes {
			if only != "" && !strings.Contains(s.name, only) {
				continue
			}
			wall := make([][]float64, calls)
			cpu := make([][]float64, calls)
			var warmWall, warmCPU []float64
			for range reps {
				var pid uint32
				var wt time.Duration
				var wc int64
				hook := func(ctx context.Context, c *pgx.Conn) error {
					pid = c.PgConn().PID()
					if warm {
						c0, t0 := schedNS(pid), time.Now()
						err := Warm(ctx, c)
						wt, wc = time.Since(t0), schedNS(pid)-c0
						return err
					}
					return nil
				}
				cfg := shardmap.Config{Database: shardmap.DatabaseConfig{ConnectTimeout: 5 * time.Second, AcquireTimeout: 30 * time.Second, StatementTimeout: 30 * time.Second, QueryTimeout: 30 * time.Second, BreakerFailures: 5, BreakerOpenTimeout: time.Second},
					Shards: []shardmap.ShardConfig{{Name: "s03", Primary: dsn, MaxConns: 1}}, Regions: map[string]string{}}
				for _, r := range regions.All() {
					cfg.Regions[string(r.Code)] = "s03"
				}
				m, err := shardmap.Open(cfg, shardmap.Options{Warm: hook})
				if err != nil {
					t.Fatal(err)
				}
				if err := m.WarmPools(ctx, 1); err != nil {
					t.Fatal(err)
				}
				warmWall = append(warmWall, float64(wt.Microseconds())/1000)
				warmCPU = append(warmCPU, float64(wc)/1e6)
				sh := m.Shards()[0]
				for i := range calls {
					c0, t0 := schedNS(pid), time.Now()
					if err := s.run(sh); err != nil {
						t.Fatalf("%s: %v", s.name, err)
					}
					wall[i] = append(wall[i], float64(time.Since(t0).Microseconds())/1000)
					cpu[i] = append(cpu[i], float64(schedNS(pid)-c0)/1e6)
				}
				m.Close()
			}
			med := func(v []float64) float64 { v = slices.Clone(v); slices.Sort(v); return v[len(v)/2] }
			var b strings.Builder
			fmt.Fprintf(&b, "| %s | %v | %.1f / %.1f |", s.name, warm, med(warmWall), med(warmCPU))
			for i := range calls {
				fmt.Fprintf(&b, " %.2f / %.2f |", med(wall[i]), med(cpu[i]))
			}
			fmt.Println(b.String())
		}
	}
}
