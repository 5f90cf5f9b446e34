package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/bench"
	"github.com/dmshub/dmsrouter/internal/cli"
	"github.com/dmshub/dmsrouter/internal/pgcluster"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// ingestOptions are the command's flags.
type ingestOptions struct {
	markets   int
	prefill   int
	rows      int
	batch     int
	planBatch int
	clients   int
	checkins  int
	maxConns  int
	profile   string
}

// The region measured and the fixed shape of its data: every market has
// stallsPerMarket stalls, the first holdersPerMarket held by a concession
// each, and every market day brings one presence per held stall.
const (
	ingestRegion     = regions.Code("03")
	stallsPerMarket  = 15
	holdersPerMarket = 10
)

// lombardia is region 03's synthetic data: markets LB00001... in the
// province of Milano.
var lombardia = synth{region: ingestRegion, letters: "LB", province: "015"}

// ingestCmd measures the write paths of one regional shard, side by side
// in one run on the same database:
//
//   - bulk presence ingest through the router's POST /v1/presences/batch
//     (10,000-row requests, as JSON and as CSV: COPY into a staging table,
//     one validated INSERT ... SELECT), against the scaling plan's
//     1,000-row multi-row INSERT batches and a raw COPY straight into the
//     table (the floor), with the CPU time each method takes in this
//     process (clients and router) and in PostgreSQL;
//   - single check-ins through POST /v1/markets/{id}/presences with
//     concurrent clients, spread over the markets (without and with an
//     Idempotency-Key) and one market at a time: latency percentiles from
//     every sample, and the CPU time per check-in of this process (clients
//     and router) and of the PostgreSQL server.
//
// It starts a throwaway PostgreSQL cluster (or uses the server PGTEST_DSN
// names), deploys the schema on one shard, fills region 03 (Lombardia) with
// markets, stalls, holders, concessions and --prefill presences (about 4
// million is Lombardia's share, 17%, of the 24 million presences of a
// national year; every market here is held daily with 10 presences), then
// measures. Usage:
//
//	go run ./cmd/dmsdev ingest [--markets 1360] [--prefill 4000000] [--rows 80000] [--clients 16]
func ingestCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("dmsdev", "ingest", stderr)
	var o ingestOptions
	fs.IntVar(&o.markets, "markets", 1360, "markets in region 03 (Lombardia's 17% of 8,000)")
	fs.IntVar(&o.prefill, "prefill", 4_000_000, "presences stored before measuring (rounded to whole market days)")
	fs.IntVar(&o.rows, "rows", 80_000, "presences each ingest method writes")
	fs.IntVar(&o.batch, "batch", 10_000, "rows per request to the batch endpoint")
	fs.IntVar(&o.planBatch, "plan-batch", 1_000, "rows per multi-row INSERT of the plan's method")
	fs.IntVar(&o.clients, "clients", 16, "concurrent clients of the check-in measurement")
	fs.IntVar(&o.checkins, "checkins", 12_800, "single check-ins in all, at most one market day of presences")
	fs.IntVar(&o.maxConns, "max-conns", shardmap.DefaultMaxConns, "the shard's pool size")
	fs.StringVar(&o.profile, "cpuprofile", "", "write a CPU profile of the measurements (clients and router) to this file")
	if err := cli.ParseArgs(fs, args); err != nil {
		return err
	}
	perDay := o.markets * holdersPerMarket
	if o.checkins > perDay {
		return fmt.Errorf("--checkins %d: at most a market day's %d presences", o.checkins, perDay)
	}

	fmt.Fprintln(stderr, "starting PostgreSQL")
	srv, err := pgcluster.Start(ctx, getenv)
	if err != nil {
		return err
	}
	defer srv.Stop()
	layout := pgcluster.Layout{}
	for _, r := range regions.All() {
		layout[r.Code] = "rest"
	}
	layout[ingestRegion] = "lombardia"
	cfg, err := srv.Deployment(ctx, fmt.Sprintf("ingest%d", os.Getpid()), layout)
	if err != nil {
		return err
	}
	defer srv.DropDeployment(context.Background(), cfg)
	var shardCfg shardmap.ShardConfig
	for i := range cfg.Shards {
		cfg.Shards[i].MaxConns = int32(o.maxConns)
		if cfg.Shards[i].Name == "lombardia" {
			shardCfg = cfg.Shards[i]
		}
	}
	admin, err := pgx.Connect(ctx, shardCfg.AdminDSN())
	if err != nil {
		return err
	}
	defer admin.Close(context.Background())

	// Days, newest first, that the measurements write: five ingest arms
	// and the check-ins, each on days of its own, all before today and
	// inside the partitions the schema keeps (the past 13 months).
	days := (o.rows + perDay - 1) / perDay
	measured := 5*days + 5
	prefillDays := o.prefill / perDay
	rome, _, first, err := marketDays(prefillDays + measured)
	if err != nil {
		return fmt.Errorf("--prefill %d at %d markets: %w; use more --markets", o.prefill, o.markets, err)
	}

	t0 := time.Now()
	fmt.Fprintf(stderr, "filling region %s: %d markets, %d stalls, %d holders\n", ingestRegion, o.markets, o.markets*stallsPerMarket, perDay)
	if err := fill(ctx, admin, lombardia, o.markets); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "prefilling %d presences (%d market days)\n", prefillDays*perDay, prefillDays)
	if err := prefill(ctx, admin, ingestRegion, first, prefillDays); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "recording %d market days of every market\n", prefillDays+measured)
	if err := recordMarketDays(ctx, admin, ingestRegion, first, prefillDays+measured); err != nil {
		return err
	}
	if err := vacuumAsAutovacuum(ctx, admin); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "data ready in %s\n", time.Since(t0).Round(time.Second))
	stored, err := count(ctx, admin, `SELECT count(*) FROM vendor_presences`)
	if err != nil {
		return err
	}

	api, err := startRouter(ctx, cfg, "")
	if err != nil {
		return err
	}
	defer api.Close()
	sh, err := api.holder.For(ingestRegion)
	if err != nil {
		return err
	}
	base, client := api.base, api.client
	token, err := regionToken(ingestRegion, "dmsingest")
	if err != nil {
		return err
	}

	holders, err := readHolders(ctx, admin, ingestRegion)
	if err != nil {
		return err
	}
	day := first.AddDate(0, 0, prefillDays)
	next := func() time.Time { d := day; day = day.AddDate(0, 0, 1); return d }
	var batchDays, csvDays, planDays, nextIDDays, copyDays []time.Time
	for range days {
		batchDays = append(batchDays, next())
	}
	for range days {
		csvDays = append(csvDays, next())
	}
	for range days {
		planDays = append(planDays, next())
	}
	for range days {
		nextIDDays = append(nextIDDays, next())
	}
	for range days {
		copyDays = append(copyDays, next())
	}
	// The check-in runs, each on a day of its own. Offices: consecutive
	// check-ins go to different markets, so the clients work like separate
	// market offices; one market at a time: consecutive check-ins are one
	// market's holders, so the clients all wait for the same market day's
	// rollup row (the worst case).
	warmDay, batchWarmDay := next(), next()
	checkinRuns := []struct {
		name      string
		day       time.Time
		keyPrefix string
		offices   bool
		run       checkInRun
	}{
		{name: "offices: each check-in at another market", day: next(), offices: true},
		{name: "offices, with an Idempotency-Key", day: next(), keyPrefix: "checkin-", offices: true},
		{name: "one market at a time (worst case)", day: next()},
	}

	// The ingest arms run in rounds of o.batch rows each, one after the
	// other within a round, so that all see the same background load (this
	// machine is shared); each arm's time and CPU are the sums of its
	// rounds.
	batchRows := presenceRows(holders, batchDays, rome)[:o.rows]
	csvRows := presenceRows(holders, csvDays, rome)[:o.rows]
	planRows := presenceRows(holders, planDays, rome)[:o.rows]
	nextIDRows := presenceRows(holders, nextIDDays, rome)[:o.rows]
	copyRows := presenceRows(holders, copyDays, rome)[:o.rows]
	var bodies, csvBodies [][]byte
	for i := 0; i < len(batchRows); i += o.batch {
		b, err := json.Marshal(map[string]any{"rows": batchRows[i:min(i+o.batch, len(batchRows))]})
		if err != nil {
			return err
		}
		bodies = append(bodies, b)
		csvBodies = append(csvBodies, csvBatch(csvRows[i:min(i+o.batch, len(csvRows))]))
	}
	idRows, err := admin.Query(ctx, `SELECT dms.next_id('vendor_presences', 3::smallint) FROM generate_series(1, $1)`, len(copyRows))
	if err != nil {
		return err
	}
	copyIDs, err := pgx.CollectRows(idRows, pgx.RowTo[int64])
	if err != nil {
		return err
	}
	if o.profile != "" {
		f, err := os.Create(o.profile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	sc := regions.Scope{Region: ingestRegion, User: "dmsingest"}
	meter := bench.NewCPUMeter(ctx, shardCfg.AdminDSN())
	// arm runs one arm's round, f, and adds its wall and CPU times to a.
	// This process's CPU is read inside the server's (a meter without
	// servers reads only the process), so that reading the server's
	// (a walk of /proc, about 10 ms) is not counted.
	arm := func(a *ingestArm, f func() error) (time.Duration, error) {
		_, s0 := meter.Read()
		p0, _ := bench.CPUMeter{}.Read()
		start := time.Now()
		if err := f(); err != nil {
			return 0, err
		}
		d := time.Since(start)
		p1, _ := bench.CPUMeter{}.Read()
		_, s1 := meter.Read()
		a.took, a.cpu, a.serverCPU = a.took+d, a.cpu+p1-p0, a.serverCPU+s1-s0
		return d, nil
	}
	// batch returns a post of body b, of media type ct, to the batch
	// endpoint, with the Idempotency-Key key.
	batch := func(ct string, b []byte, key string) func() error {
		return func() error {
			rep, err := sendAs(ctx, client, http.MethodPost, base+"/v1/presences/batch", token, ct, b, key)
			if err == nil && rep.status != http.StatusCreated {
				err = fmt.Errorf("batch %s (%s): %d %s", key, ct, rep.status, rep.body)
			}
			return err
		}
	}
	// Unmeasured first: a JSON and a CSV batch, so that the measured rounds
	// do not pay for a session's first staging table and first plans.
	warmRows := presenceRows(holders, []time.Time{batchWarmDay}, rome)
	warmHalf := min(len(warmRows)/2, o.batch)
	warmJSON, err := json.Marshal(map[string]any{"rows": warmRows[:warmHalf]})
	if err != nil {
		return err
	}
	if err := batch("application/json", warmJSON, "dmsingest-warm-json")(); err != nil {
		return err
	}
	if err := batch("text/csv", csvBatch(warmRows[warmHalf:2*warmHalf]), "dmsingest-warm-csv")(); err != nil {
		return err
	}
	var batchArm, csvArm, planArm, nextIDArm, copyArm ingestArm
	for round, b := range bodies {
		lo, hi := round*o.batch, min((round+1)*o.batch, o.rows)

		// 1. The batch endpoint: one request of o.batch rows, as JSON and
		// as CSV.
		bt, err := arm(&batchArm, batch("application/json", b, fmt.Sprintf("dmsingest-json-%d", round)))
		if err != nil {
			return err
		}
		cst, err := arm(&csvArm, batch("text/csv", csvBodies[round], fmt.Sprintf("dmsingest-csv-%d", round)))
		if err != nil {
			return err
		}

		// 2. The plan's multi-row INSERTs of o.planBatch rows, each in its
		// own transaction with the scope set, as dms_app: ids from the
		// region's sequence, as a serial column would give them, and (2b)
		// from dms.next_id per row, as bench/ writes them.
		plan := func(rows []row, ids string) func() error {
			return func() error {
				for i := lo; i < hi; i += o.planBatch {
					part := rows[i:min(i+o.planBatch, hi)]
					err := sh.Tx(ctx, sc, "", func(tx pgx.Tx) error {
						_, err := tx.Exec(ctx, insertSQL(len(part), ids), insertArgs(part)...)
						return err
					})
					if err != nil {
						return fmt.Errorf("plan insert: %w", err)
					}
				}
				return nil
			}
		}
		pt, err := arm(&planArm, plan(planRows, "(3::bigint << 48) | nextval('dms.vendor_presences_id_03'::regclass)"))
		if err != nil {
			return err
		}
		nt, err := arm(&nextIDArm, plan(nextIDRows, "dms.next_id('vendor_presences', 3::smallint)"))
		if err != nil {
			return err
		}

		// 3. Raw COPY into the table as its owner: no validation, no RLS
		// (the floor).
		ct, err := arm(&copyArm, func() error {
			_, err := admin.CopyFrom(ctx, pgx.Identifier{"vendor_presences"},
				[]string{"id", "region_id", "market_id", "comune", "vendor_id", "stall_id", "date", "kind", "checkin_at"},
				pgx.CopyFromSlice(hi-lo, func(i int) ([]any, error) {
					r := copyRows[lo+i]
					return []any{copyIDs[lo+i], int16(ingestRegion.Num()), r.MarketID, r.comune, r.VendorID, r.StallID, r.day, r.Kind, r.at}, nil
				}))
			if err != nil {
				return fmt.Errorf("raw copy: %w", err)
			}
			return nil
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "round %d: batch %s, CSV batch %s, plan %s, plan with dms.next_id %s, copy %s\n", round,
			bt.Round(time.Millisecond), cst.Round(time.Millisecond), pt.Round(time.Millisecond), nt.Round(time.Millisecond), ct.Round(time.Millisecond))
	}

	// 4. Single check-ins, o.clients at a time: spread over the markets
	// without and with an Idempotency-Key (one per check-in, as a client
	// that retries safely sends them), and one market at a time.
	// Unmeasured first: every pooled connection prepares both check-in
	// statements, and their generic plans are built.
	warm := interleave(presenceRows(holders, []time.Time{warmDay}, rome))[:min(o.checkins, 32*o.clients)]
	half := len(warm) / 2
	if _, err := checkIns(ctx, client, base, token, warm[:half], o.clients, "", bench.CPUMeter{}); err != nil {
		return err
	}
	if _, err := checkIns(ctx, client, base, token, warm[half:], o.clients, "warm-", bench.CPUMeter{}); err != nil {
		return err
	}
	for i := range checkinRuns {
		c := &checkinRuns[i]
		rows := presenceRows(holders, []time.Time{c.day}, rome)[:o.checkins]
		if c.offices {
			rows = interleave(rows)
		}
		if c.run, err = checkIns(ctx, client, base, token, rows, o.clients, c.keyPrefix, meter); err != nil {
			return err
		}
	}

	// Every method wrote exactly its rows, and the rollup kept up.
	for _, c := range []struct {
		name string
		days []time.Time
		want int
	}{{"batch", batchDays, o.rows}, {"CSV batch", csvDays, o.rows}, {"batch warm-up", []time.Time{batchWarmDay}, 2 * warmHalf}, {"plan", planDays, o.rows}, {"plan with dms.next_id", nextIDDays, o.rows}, {"copy", copyDays, o.rows},
		{"check-ins", []time.Time{warmDay, checkinRuns[0].day, checkinRuns[1].day, checkinRuns[2].day}, min(o.checkins, 32*o.clients) + 3*o.checkins}} {
		n, err := count(ctx, admin, `SELECT count(*) FROM vendor_presences WHERE date = ANY($1)`, c.days)
		if err != nil {
			return err
		}
		if n != int64(c.want) {
			return fmt.Errorf("%s wrote %d rows, want %d", c.name, n, c.want)
		}
	}
	bad, err := count(ctx, admin, `SELECT count(*) FROM (
		SELECT market_id, date, kind, count(*)::int AS n FROM vendor_presences GROUP BY 1, 2, 3) p
		FULL JOIN (SELECT market_id, date, kind, n FROM presence_daily WHERE n > 0) d USING (market_id, date, kind)
		WHERE p.n IS DISTINCT FROM d.n`)
	if err == nil && bad != 0 {
		return fmt.Errorf("presence_daily differs from the presences in %d groups", bad)
	}

	// The server's version and shared_buffers: at full scale the stored
	// presences outgrow a small buffer cache, and runs against servers set
	// otherwise are not comparable.
	var version, buffers string
	if err := admin.QueryRow(ctx, `SELECT current_setting('server_version'), current_setting('shared_buffers')`).Scan(&version, &buffers); err != nil {
		return err
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "dmsdev ingest: %s; PostgreSQL %s, shared_buffers %s; region %s on one shard: %d markets, %d stalls, %d presences stored before the run\n\n",
		machineLine(), version, buffers, ingestRegion, o.markets, o.markets*stallsPerMarket, stored)
	fmt.Fprintf(&sb, "| ingest of %d presences | requests | seconds | rows/s | vs plan | vs COPY floor | CPU ms/10,000 rows: clients + router | PostgreSQL |\n|---|---|---|---|---|---|---|---|\n", o.rows)
	planReqs := (o.rows + o.planBatch - 1) / o.planBatch
	for _, a := range []struct {
		name     string
		requests string
		arm      ingestArm
	}{
		{"POST /v1/presences/batch, JSON (COPY to staging + validated INSERT ... SELECT)", fmt.Sprintf("%d x %d rows", len(bodies), o.batch), batchArm},
		{"POST /v1/presences/batch, CSV (text/csv, same path)", fmt.Sprintf("%d x %d rows", len(csvBodies), o.batch), csvArm},
		{"plan: multi-row INSERT, ids by nextval, dms_app with scope", fmt.Sprintf("%d x %d rows", planReqs, o.planBatch), planArm},
		{"plan: multi-row INSERT, ids by dms.next_id per row (as bench/)", fmt.Sprintf("%d x %d rows", planReqs, o.planBatch), nextIDArm},
		{"raw COPY into vendor_presences as owner (no validation, floor)", fmt.Sprint(len(bodies)), copyArm},
	} {
		per := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 * 10_000 / float64(o.rows) }
		fmt.Fprintf(&sb, "| %s | %s | %.2f | %.0f | %.2fx | %.2fx | %.1f | %.1f |\n", a.name, a.requests, a.arm.took.Seconds(),
			float64(o.rows)/a.arm.took.Seconds(), planArm.took.Seconds()/a.arm.took.Seconds(), copyArm.took.Seconds()/a.arm.took.Seconds(),
			per(a.arm.cpu), per(a.arm.serverCPU))
	}
	sb.WriteString("\n")
	fmt.Fprintf(&sb, "| POST /v1/markets/{id}/presences, %d clients | check-ins | p50 ms | p95 ms | p99 ms | max ms | check-ins/s | CPU ms/check-in: clients + router | PostgreSQL |\n|---|---|---|---|---|---|---|---|---|\n", o.clients)
	for _, c := range checkinRuns {
		per := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(len(c.run.lat)) }
		fmt.Fprintf(&sb, "| %s | %d | %.2f | %.2f | %.2f | %.2f | %.0f | %.2f | %.2f |\n",
			c.name, len(c.run.lat), c.run.ms(0.50), c.run.ms(0.95), c.run.ms(0.99), c.run.ms(1), float64(len(c.run.lat))/c.run.took.Seconds(),
			per(c.run.cpu), per(c.run.serverCPU))
	}
	fmt.Fprint(stdout, sb.String())
	return nil
}

// ingestArm is what one ingest method took over its rounds: wall time,
// and the CPU time of this process (clients and router) and of the
// PostgreSQL server meanwhile.
type ingestArm struct {
	took, cpu, serverCPU time.Duration
}

// csvBatch returns rows as the CSV body of a batch, with a header row.
func csvBatch(rows []row) []byte {
	var b bytes.Buffer
	b.WriteString("market_id,vendor_id,stall_id,date,kind,checkin_at\r\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "%d,%d,", r.MarketID, r.VendorID)
		if r.StallID != nil {
			b.WriteString(strconv.FormatInt(*r.StallID, 10))
		}
		fmt.Fprintf(&b, ",%s,%s,", r.Date, r.Kind)
		if r.CheckinAt != nil {
			b.WriteString(*r.CheckinAt)
		}
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// checkInRun is a run of single check-ins: every latency, sorted, the
// run's wall time, and the CPU time this process (clients and router) and
// the PostgreSQL server used meanwhile.
type checkInRun struct {
	lat            []time.Duration
	took           time.Duration
	cpu, serverCPU time.Duration
}

// ms returns the latency at percentile p (nearest rank), 1 the maximum,
// in milliseconds.
func (r checkInRun) ms(p float64) float64 {
	d := r.lat[min(len(r.lat)-1, int(p*float64(len(r.lat))))]
	return float64(d.Microseconds()) / 1000
}

// checkIns checks in the holders of rows, clients at a time, each with
// the Idempotency-Key keyPrefix and its index unless keyPrefix is "".
func checkIns(ctx context.Context, client *http.Client, base, token string, rows []row, clients int, keyPrefix string, meter bench.CPUMeter) (checkInRun, error) {
	lat := make([]time.Duration, len(rows))
	var wg sync.WaitGroup
	work := make(chan int)
	var failed error
	var mu sync.Mutex
	cpu, serverCPU := meter.Read()
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				key := ""
				if keyPrefix != "" {
					key = fmt.Sprintf("%s%d", keyPrefix, i)
				}
				t := time.Now()
				rep, err := checkIn(ctx, client, base, token, rows[i], key)
				lat[i] = time.Since(t)
				if err == nil && rep.status != http.StatusCreated {
					err = fmt.Errorf("check-in: %d %s", rep.status, rep.body)
				}
				if err != nil {
					mu.Lock()
					failed = err
					mu.Unlock()
				}
			}
		}()
	}
	for i := range rows {
		work <- i
	}
	close(work)
	wg.Wait()
	run := checkInRun{lat: lat, took: time.Since(start)}
	run.cpu, run.serverCPU = meter.Read()
	run.cpu -= cpu
	run.serverCPU -= serverCPU
	slices.Sort(lat)
	return run, failed
}

// insertSQL is the plan's multi-row INSERT of n presences, their ids given
// by the SQL expression ids.
func insertSQL(n int, ids string) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO vendor_presences (id, region_id, market_id, comune, vendor_id, stall_id, date, kind, checkin_at) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		p := i*7 + 1
		fmt.Fprintf(&b, "(%s, 3, $%d, $%d, $%d, $%d, $%d, $%d, $%d)", ids, p, p+1, p+2, p+3, p+4, p+5, p+6)
	}
	return b.String()
}

func insertArgs(rows []row) []any {
	args := make([]any, 0, 7*len(rows))
	for _, r := range rows {
		args = append(args, r.MarketID, r.comune, r.VendorID, r.StallID, r.day, r.Kind, r.at)
	}
	return args
}
