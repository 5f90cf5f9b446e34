package router

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/auth"
	"github.com/dmshub/dmsrouter/config"
	"github.com/dmshub/dmsrouter/internal/pgcluster"
	"github.com/dmshub/dmsrouter/jobs"
	"github.com/dmshub/dmsrouter/national"
	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/registry"
	"github.com/dmshub/dmsrouter/shardmap"
)

// BenchmarkNationalSummary measures GET /v1/national/summary through the
// whole router (HTTP on loopback, authentication, fan-out, merge, JSON) and
// one region's leg alone. It runs against the deployment configured in the
// file named by DMSROUTER_BENCH_CONFIG (a seeded one: see BENCHMARKS.md,
// "National fan-out"), else against the test fixture on 20 shards. It
// reports percentiles of the latencies it measured:
//
//   - uncached/1-client: the cache off, one client: the fan-out's latency;
//   - uncached/same: the cache off, 8 clients asking the same summary, which
//     singleflight collapses into shared fan-outs;
//   - uncached/distinct: the cache off, 8 clients each asking another date,
//     so every request is a fan-out of its own;
//   - cached: 8 clients, answers from the cache;
//   - leg/RR: region RR's leg alone (registry.Summary on its shard), one
//     client; the slowest region's percentiles are also reported as leg/slowest;
//   - legs/serial: the 20 regions' legs one after another without the
//     router (registry.Summary), and legs/scope-only: the same round trips
//     with the scope statement alone, what a leg costs before its query;
//   - monolith/one-statement/8-clients, when DMSROUTER_BENCH_MONOLITH names
//     the configuration of the same data in one database: the floor, the
//     same answer by one SQL statement there (its totals are checked equal
//     to the router's, after the lifecycle job ran for today on both),
//     8 clients asking distinct dates; and
//     monolith/no-distinct-vendors, the statement without the national
//     count of distinct partite IVA, which the router remembers;
//   - scan/all-regions: the same figures without the rollups, every region's
//     tables scanned one region after another (what one database without
//     rollups does), one client.
//
// Every arm through the router first sends warmPerClient requests per
// client, unmeasured, again until a pass is answered in full, so that the
// pooled connections are open and have prepared the leg statement and
// chosen its plan. The CPU metrics are per request:
// pg-cpu-ms/op of the shards' backends (of the monolith's in its arms),
// proc-cpu-ms/op of this process (the router and the clients).
func BenchmarkNationalSummary(b *testing.B) {
	ctx := context.Background()
	var cfg config.Config
	if path := os.Getenv("DMSROUTER_BENCH_CONFIG"); path != "" {
		var err error
		if cfg, err = config.Load(path, os.Getenv); err != nil {
			b.Fatal(err)
		}
	} else {
		var err error
		cfg.Auth.HS256Secret = pgtest.TestSecret
		cfg.ShardMap, err = pg.Deployment(ctx, pgtest.Prefix("natbench"), pgtest.OnePerRegion())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { pg.DropDeployment(context.Background(), cfg.ShardMap) })
		for _, sh := range cfg.ShardMap.Shards {
			exec(b, sh.AdminDSN(), fmt.Sprintf(nationalSQL, "ARRAY["+strconv.Itoa(regions.Code(sh.Name[1:]).Num())+"]"))
		}
	}
	m, err := shardmap.NewHolder(cfg.ShardMap, shardmap.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(m.Close)
	// The monolith, when given, must hold the same data as the shards. A
	// running router's lifecycle job changes concessions (decadenze
	// proposed) on the shards, and no router serves the monolith: run it
	// for today on both, as a router would within the hour, before any arm
	// (and before the cache holds an answer from before it).
	var mono *config.Config
	if path := os.Getenv("DMSROUTER_BENCH_MONOLITH"); path != "" {
		c, err := config.Load(path, os.Getenv)
		if err != nil {
			b.Fatal(err)
		}
		mono = &c
		monoMap, err := shardmap.Open(mono.ShardMap, shardmap.Options{})
		if err != nil {
			b.Fatal(err)
		}
		for _, shards := range []func() []*shardmap.Shard{m.Shards, monoMap.Shards} {
			for _, r := range (&jobs.Lifecycle{Shards: shards, Extensions: mono.Jobs.Lifecycle.Extensions}).RunOnce(ctx) {
				if r.Err != nil {
					b.Fatalf("the lifecycle on shard %s: %v", r.Shard, r.Err)
				}
			}
		}
		monoMap.Close()
	}
	v, err := auth.NewVerifier(cfg.Auth)
	if err != nil {
		b.Fatal(err)
	}
	fan, err := national.New(cfg.National, national.Options{})
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(m, v, fan, Options{})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(s)
	b.Cleanup(srv.Close)
	secret := cfg.Auth.HS256Secret
	tok, err := auth.SignHS256(secret, auth.Principal{Subject: "bench", Role: "auditor", Territory: regions.Territory{Level: regions.National}}, time.Hour, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	// fetch asks path and returns an error unless the answer is a whole
	// 200 (no region missing).
	fetch := func(path string) error {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := client.Do(req)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || bytes.Contains(body, []byte(`"partial":true`)) {
			return fmt.Errorf("GET %s = %d %.2000s", path, res.StatusCode, body)
		}
		return nil
	}
	get := func(path string) {
		if err := fetch(path); err != nil {
			b.Error(err)
		}
	}
	today := s.today()
	var dbs []string // the shard databases, whose backends' CPU time the benchmark reports
	for _, sh := range cfg.ShardMap.Shards {
		if c, err := pgx.ParseConfig(sh.Primary); err == nil {
			dbs = append(dbs, c.Database)
		}
	}
	// load runs n requests spread over clients goroutines, each request do(client, i).
	load := func(clients, n int, do func(c, i int)) {
		var wg sync.WaitGroup
		per := (n + clients - 1) / clients
		for c := range clients {
			wg.Go(func() {
				for i := range per {
					do(c, i)
				}
			})
		}
		wg.Wait()
	}
	// warm sends warmPerClient requests per client, again while any answer
	// is partial: at full scale the clients' first requests open and set
	// up a connection on every shard at once, and legs waiting for them
	// can outlast leg_timeout. Only a pass answered in full ends it.
	warm := func(clients int, path func(c, i int) string) {
		var last error
		for range warmPasses {
			var failed atomic.Pointer[error]
			load(clients, clients*warmPerClient, func(c, i int) {
				if err := fetch(path(c, i)); err != nil {
					failed.Store(&err)
				}
			})
			if failed.Load() == nil {
				return
			}
			last = *failed.Load()
		}
		b.Fatalf("still partial after %d warm-up passes: %v", warmPasses, last)
	}
	measure := func(name string, clients int, cacheTTL time.Duration, path func(client, i int) string) {
		b.Run(name, func(b *testing.B) {
			nc := cfg.National
			nc.CacheTTL = cacheTTL
			fan.SetConfig(nc)
			// Warm every pooled connection the clients will use (its
			// statements prepared, their plans chosen: the first five
			// executions of a statement are planned afresh) and the cache,
			// so that what is measured is the steady state.
			warm(clients, path)
			var lat latencies
			// The process's CPU is read last: reading the backends' walks
			// /proc, which it would otherwise count as the fan-outs'.
			pgCPU, wait := backendsCPU("dms_app", dbs), runQueueWait()
			cpu := processCPU()
			b.ResetTimer()
			load(clients, b.N, func(c, i int) {
				start := time.Now()
				get(path(c, i))
				lat.add(time.Since(start))
			})
			lat.report(b)
			perOp := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(len(lat.d)) }
			b.ReportMetric(perOp(processCPU()-cpu), "proc-cpu-ms/op")
			b.ReportMetric(perOp(since(pgCPU, backendsCPU("dms_app", dbs))), "pg-cpu-ms/op")
			b.ReportMetric(perOp(runQueueWait()-wait), "runq-wait-ms/op")
		})
	}
	measure("uncached/1-client", 1, 0, func(int, int) string { return "/v1/national/summary" })
	measure("uncached/same", 8, 0, func(int, int) string { return "/v1/national/summary" })
	distinctDay := func(c, i int) time.Time { return today.AddDate(0, 0, -((c*7 + i) % 27)) }
	measure("uncached/distinct", 8, 0, func(c, i int) string {
		// Another day of the month for every request in flight.
		return "/v1/national/summary?date=" + distinctDay(c, i).Format(time.DateOnly)
	})
	measure("cached", 8, time.Minute, func(int, int) string { return "/v1/national/summary" })

	// The floor: the same answer by one SQL statement on the monolith (one
	// database holding every region, seeded with the same flags), its
	// rollups read for all regions at once, as the superuser, outside
	// row-level security; 8 clients asking distinct dates as above.
	if mono != nil {
		dsn := mono.ShardMap.Shards[0].AdminDSN()
		pc, err := pgx.ParseConfig(dsn)
		if err != nil {
			b.Fatal(err)
		}
		ask := func(conn *pgx.Conn, sql string, day time.Time) (total national.SummaryFigures) {
			month := time.Date(day.Year(), day.Month(), 1, 0, 0, 0, 0, time.UTC)
			rows, err := conn.Query(ctx, sql, day, month)
			if err != nil {
				b.Fatal(err)
			}
			defer rows.Close()
			for rows.Next() {
				var region, mk, pd, pm, dp, held, cancelled, vendors, national int64
				var counts map[string]int64
				if err := rows.Scan(&region, &mk, &pd, &pm, &dp, &held, &cancelled, &vendors, &national, &counts); err != nil {
					b.Fatal(err)
				}
				for k, n := range counts {
					entity, status, _ := strings.Cut(k, " ")
					m := &total.Stalls
					if entity == "concessions" {
						m = &total.Concessions
					}
					if *m == nil {
						*m = map[string]int64{}
					}
					(*m)[status] += n
				}
				total.MarketsActive += mk
				total.PresencesDay += pd
				total.PresencesMonth += pm
				total.DecadenzaProposed += dp
				total.MarketDaysHeld += held
				total.MarketDaysCancelled += cancelled
				total.Vendors = national
			}
			if err := rows.Err(); err != nil {
				b.Fatal(err)
			}
			return total
		}
		conns := make([]*pgx.Conn, 8)
		for i := range conns {
			if conns[i], err = pgx.ConnectConfig(ctx, pc); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { conns[i].Close(context.Background()) })
		}
		// The same answer: the monolith's totals are the router's (both
		// ran the lifecycle for today above).
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/national/summary", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		var routed national.SummaryResponse
		err = json.NewDecoder(res.Body).Decode(&routed)
		res.Body.Close()
		if err != nil {
			b.Fatal(err)
		}
		got, want := ask(conns[0], monolithSummarySQL, today), routed.Total
		for _, m := range []map[string]int64{want.Stalls, want.Concessions} {
			maps.DeleteFunc(m, func(_ string, n int64) bool { return n == 0 }) // the router lists every status
		}
		if !reflect.DeepEqual(got, want) {
			b.Fatalf("monolith totals on %s = %+v, the router's %+v", today.Format(time.DateOnly), got, want)
		}
		// The router remembers the national count of distinct partite IVA
		// while no region's set changes; the statement without it is the
		// floor of that case.
		noDistinct := strings.Replace(monolithSummarySQL, "(SELECT count(DISTINCT partita_iva) FROM vendors)", "0::int8", 1)
		for _, arm := range []struct {
			name, sql string
			clients   int
		}{{"one-statement", monolithSummarySQL, 8}, {"no-distinct-vendors", noDistinct, 8}} {
			b.Run(fmt.Sprintf("monolith/%s/%d-clients", arm.name, arm.clients), func(b *testing.B) {
				clients := arm.clients
				load(clients, clients*warmPerClient, func(c, i int) { ask(conns[c], arm.sql, distinctDay(c, i)) })
				var lat latencies
				pgCPU := backendsCPU("postgres", []string{pc.Database})
				b.ResetTimer()
				load(clients, b.N, func(c, i int) {
					start := time.Now()
					ask(conns[c], arm.sql, distinctDay(c, i))
					lat.add(time.Since(start))
				})
				lat.report(b)
				b.ReportMetric(float64(since(pgCPU, backendsCPU("postgres", []string{pc.Database})).Microseconds())/1000/float64(len(lat.d)), "pg-cpu-ms/op")
			})
		}
	}

	// The legs without the router: the 20 regions' summaries read one
	// after another (as the router asks, the sets of partite IVA known),
	// and the same round trips with the scope statement alone, which is
	// what a leg costs before its query. Their CPU per op is per fan-out.
	serial := func(name string, leg func(sh *shardmap.Shard, sc regions.Scope, version int64) error) {
		b.Run(name, func(b *testing.B) {
			versions := map[regions.Code]int64{}
			for _, r := range regions.All() {
				sh, _ := m.For(r.Code)
				v, err := registry.Summary(ctx, sh, regions.Scope{Region: r.Code, User: "bench"}, today, 0)
				if err != nil {
					b.Fatal(err)
				}
				versions[r.Code] = v.VendorsVersion
			}
			var lat latencies
			pgCPU := backendsCPU("dms_app", dbs)
			cpu := processCPU()
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				for _, r := range regions.All() {
					sh, _ := m.For(r.Code)
					sc := regions.Scope{Region: r.Code, User: "bench"}
					if err := leg(sh, sc, versions[r.Code]); err != nil {
						b.Fatal(err)
					}
				}
				lat.add(time.Since(start))
			}
			lat.report(b)
			perOp := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(len(lat.d)) }
			b.ReportMetric(perOp(processCPU()-cpu), "proc-cpu-ms/op")
			b.ReportMetric(perOp(since(pgCPU, backendsCPU("dms_app", dbs))), "pg-cpu-ms/op")
		})
	}
	serial("legs/serial", func(sh *shardmap.Shard, sc regions.Scope, version int64) error {
		_, err := registry.Summary(ctx, sh, sc, today, version)
		return err
	})
	serial("legs/scope-only", func(sh *shardmap.Shard, sc regions.Scope, _ int64) error {
		return sh.Read(ctx, sc, func(*pgx.Batch) {})
	})

	var slowest *latencies
	var slowestRegion string
	for _, r := range regions.All() {
		sh, err := m.For(r.Code)
		if err != nil {
			b.Fatal(err)
		}
		sc := regions.Scope{Region: r.Code, User: "bench"}
		var lat latencies
		b.Run("leg/"+string(r.Code), func(b *testing.B) {
			lat = latencies{}
			first, err := registry.Summary(ctx, sh, sc, today, 0)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				// As the router asks: the set of partite IVA is known.
				if _, err := registry.Summary(ctx, sh, sc, today, first.VendorsVersion); err != nil {
					b.Fatal(err)
				}
				lat.add(time.Since(start))
			}
			lat.report(b)
		})
		if slowest == nil || lat.percentile(50) > slowest.percentile(50) {
			slowest, slowestRegion = &lat, string(r.Code)
		}
	}
	// The same figures without rollups, as one database without them would
	// compute them: every region's tables scanned, one region after another.
	b.Run("scan/all-regions", func(b *testing.B) {
		month := time.Date(today.Year(), today.Month(), 1, 0, 0, 0, 0, time.UTC)
		var lat latencies
		for range b.N {
			start := time.Now()
			for _, r := range regions.All() {
				sh, _ := m.For(r.Code)
				err := sh.Read(ctx, regions.Scope{Region: r.Code, User: "bench"}, func(batch *pgx.Batch) {
					n := int16(r.Code.Num())
					for _, q := range []string{
						`SELECT count(*) FROM markets WHERE region_id = $1 AND status = 'ACTIVE'`,
						`SELECT status, count(*) FROM stalls WHERE region_id = $1 GROUP BY 1`,
						`SELECT status, count(*) FROM concessions WHERE region_id = $1 GROUP BY 1`,
						`SELECT partita_iva FROM vendors WHERE region_id = $1`,
					} {
						batch.Queue(q, n)
					}
					batch.Queue(`SELECT count(*) FILTER (WHERE date = $2), count(*) FROM vendor_presences
						WHERE region_id = $1 AND date >= $3 AND date < $4`, n, today, month, month.AddDate(0, 1, 0))
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			lat.add(time.Since(start))
		}
		lat.report(b)
	})
	b.Run("leg/slowest", func(b *testing.B) {
		b.Logf("slowest leg alone: region %s, p50 %s, p99 %s", slowestRegion, slowest.percentile(50), slowest.percentile(99))
		b.ReportMetric(float64(slowest.percentile(50).Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(slowest.percentile(99).Microseconds())/1000, "p99-ms")
	})
}

// processCPU returns the CPU time this process has used (the router and its
// benchmark clients).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// backendsCPU returns the CPU time used so far by each PostgreSQL backend
// of this machine that serves role on one of the databases dbs (their
// process title is "postgres: ROLE DB ..."), by process id. since turns two
// such snapshots into the CPU of a run.
func backendsCPU(role string, dbs []string) map[int]time.Duration {
	prefix := "postgres: " + role + " "
	out := map[int]time.Duration{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range stats {
		title, err := os.ReadFile(filepath.Join(filepath.Dir(path), "cmdline"))
		if err != nil || !bytes.HasPrefix(title, []byte(prefix)) {
			continue
		}
		f := strings.Fields(strings.TrimPrefix(string(title), prefix))
		if len(f) == 0 || !slices.Contains(dbs, f[0]) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(path)))
		if st, err := pgcluster.ProcessStat(pid); err == nil {
			out[pid] = st.CPU
		}
	}
	return out
}

// since returns the CPU time the backends of now used after the snapshot
// before: a backend that started in between counts whole, one that exited
// counts nothing (a pool that closes a connection mid-run makes the figure
// low, never negative).
func since(before, now map[int]time.Duration) time.Duration {
	var d time.Duration
	for pid, t := range now {
		d += t - before[pid]
	}
	return d
}

// runQueueWait returns how long this process's threads have waited for a
// CPU so far (the second field of /proc/self/task/*/schedstat): the cost of
// sharing the machine.
func runQueueWait() time.Duration {
	var ns int64
	tasks, _ := filepath.Glob("/proc/self/task/*/schedstat")
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) >= 2 {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			ns += n
		}
	}
	return time.Duration(ns)
}

// latencies collects request durations from concurrent clients.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) percentile(p float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0
	}
	slices.Sort(l.d)
	return l.d[min(len(l.d)-1, int(float64(len(l.d))*p/100))]
}

func (l *latencies) report(b *testing.B) {
	b.ReportMetric(float64(l.percentile(50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(l.percentile(99).Microseconds())/1000, "p99-ms")
}

// warmPerClient is how many requests each client of an arm sends before
// the arm is measured, in each of at most warmPasses passes.
const (
	warmPerClient = 10
	warmPasses    = 10
)

// monolithSummarySQL computes the national summary's figures of every
// region on one database in one statement (@1 the day, @2 its month): per
// region active markets, presences on the day and in the month, concessions
// proposed for decadenza, market days held and cancelled, partite IVA, and
// the national count of distinct partite IVA, and the stalls and
// concessions by status ("stalls LIBERO": n), from the same rollups the
// legs read (those of migration 00020 too), and the same join of the day's
// presences without a market day's record.
const monolithSummarySQL = `SELECT r.region_id::int8, coalesce(mk.n, 0), coalesce(md.presences, 0), coalesce(pm.n, 0),
	coalesce(dp.n, 0), coalesce(md.held, 0), coalesce(md.cancelled, 0), coalesce(v.n, 0),
	(SELECT count(DISTINCT partita_iva) FROM vendors), coalesce(st.counts, '{}')
FROM generate_series(1, 20) r (region_id)
LEFT JOIN (SELECT region_id, sum(n) AS n FROM region_status_counts WHERE entity = 'markets' AND status = 'ACTIVE' GROUP BY 1) mk USING (region_id)
LEFT JOIN (SELECT region_id, sum(n)::int8 AS n FROM presence_monthly WHERE month = $2 GROUP BY 1) pm USING (region_id)
LEFT JOIN (SELECT region_id, count(*) AS n FROM concessions
	WHERE status = 'ATTIVA' AND decadenza_proposed_on IS NOT NULL GROUP BY 1) dp USING (region_id)
LEFT JOIN (SELECT region_id, count(*) AS n FROM vendors GROUP BY 1) v USING (region_id)
LEFT JOIN (SELECT region_id, jsonb_object_agg(k, n) AS counts FROM (
	SELECT region_id, entity || ' ' || status AS k, sum(n) AS n FROM region_status_counts
	WHERE entity IN ('stalls', 'concessions') GROUP BY 1, 2) c
	GROUP BY 1) st USING (region_id)
LEFT JOIN (SELECT region_id, coalesce(r.held, 0) + coalesce(u.unrecorded, 0) AS held, r.cancelled, u.presences
	FROM (SELECT region_id, coalesce(sum(n) FILTER (WHERE status = 'HELD'), 0) AS held,
			coalesce(sum(n) FILTER (WHERE status = 'CANCELLED'), 0) AS cancelled
		FROM market_day_counts WHERE date = $1 GROUP BY 1) r
	FULL JOIN (SELECT p.region_id, count(*) FILTER (WHERE p.n > 0 AND d.market_id IS NULL) AS unrecorded, sum(p.n)::int8 AS presences
		FROM (SELECT region_id, market_id, sum(n) AS n FROM presence_daily WHERE date = $1 GROUP BY 1, 2) p
		LEFT JOIN market_days d ON d.market_id = p.market_id AND d.date = $1
		GROUP BY 1) u USING (region_id)) md USING (region_id)
ORDER BY 1`
