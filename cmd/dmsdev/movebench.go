package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/bench"
	"github.com/dmshub/dmsrouter/control"
	"github.com/dmshub/dmsrouter/internal/cli"
	"github.com/dmshub/dmsrouter/internal/pgcluster"
	"github.com/dmshub/dmsrouter/move"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// movebenchOptions are the command's flags.
type movebenchOptions struct {
	markets      int
	prefill      int
	otherMarkets int
	loadDays     int
	clients      int
	rate         float64
	baseline     time.Duration
	maxConns     int
	maxFreeze    time.Duration
	out          string
}

// The regions of the move benchmark: Lombardia moves, Veneto shares its
// source server and takes load meanwhile.
const (
	moveRegion  = ingestRegion
	otherRegion = regions.Code("05")
	// spareShard is the target of the move, on a cluster of its own.
	spareShard = "s03b"
	// sectionHeading heads the section --out writes or replaces.
	sectionHeading = "## Online region move"
)

// veneto is region 05's synthetic data: markets VE00001... in the
// province of Venezia.
var veneto = synth{region: otherRegion, letters: "VE", province: "027"}

// movebenchCmd measures an online region move (package move, the engine
// of dmsrouter region move) under load, in one run on two throwaway
// clusters: the source server holds region 03 (Lombardia) on a shard
// database of its own, region 05 (Veneto) on another and every other
// region on a third, and the control database; the target server holds
// the spare shard s03b. It fills 03 at its full-scale share, as ingest
// does, and 05 at a smaller scale, then measures
//
//  1. the floor: a raw COPY of 03's rows of every moved table into a
//     scratch database on the target server;
//  2. the baseline: check-ins and reads of 03 and of 05 through an
//     in-process router that follows the control database;
//  3. the move of 03 to s03b with that load running: the copy rate
//     against the floor, catch-up, verification, the freeze as the move
//     measured it and as the clients saw it, and the latencies of both
//     regions during each phase against the baseline;
//  4. `complete`: its time and the rows it removed from the source.
//
// It checks that every answered check-in is stored exactly once where its
// region lives, and prints a markdown report; --out FILE writes it into
// FILE as its "Online region move" section, replacing one there. Usage:
//
//	go run ./cmd/dmsdev movebench [--markets 1360] [--prefill 4000000] [--clients 8] [--rate 100] [--baseline 30s] [--out BENCHMARKS.md]
func movebenchCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("dmsdev", "movebench", stderr)
	var o movebenchOptions
	fs.IntVar(&o.markets, "markets", 1360, "markets in region 03, the region moved (Lombardia's 17% of 8,000)")
	fs.IntVar(&o.prefill, "prefill", 4_000_000, "presences of region 03 stored before measuring (rounded to whole market days)")
	fs.IntVar(&o.otherMarkets, "other-markets", 400, "markets in region 05, which shares the source server (as many market days of presences as 03)")
	fs.IntVar(&o.loadDays, "load-days", 40, "market days, after the prefilled ones, that the load's check-ins fill")
	fs.IntVar(&o.clients, "clients", 8, "concurrent clients per region")
	fs.Float64Var(&o.rate, "rate", 100, "check-ins per second per region, all its clients together (0: as fast as they go)")
	fs.DurationVar(&o.baseline, "baseline", 30*time.Second, "measured load before the move")
	fs.IntVar(&o.maxConns, "max-conns", shardmap.DefaultMaxConns, "every shard's pool size")
	fs.DurationVar(&o.maxFreeze, "max-freeze", move.DefaultMaxFreeze, "the move's --max-freeze")
	fs.StringVar(&o.out, "out", "", "write the report into this file as its \""+strings.TrimPrefix(sectionHeading, "## ")+"\" section, replacing one there (it is always printed)")
	if err := cli.ParseArgs(fs, args); err != nil {
		return err
	}
	if o.markets <= 0 || o.otherMarkets <= 0 || o.clients <= 0 || o.loadDays <= 0 || o.rate < 0 || o.baseline <= 0 {
		return errors.New("--markets, --other-markets, --clients, --load-days and --baseline must be positive, --rate not negative")
	}
	perDay := o.markets * holdersPerMarket
	prefillDays := o.prefill / perDay
	rome, today, first, err := marketDays(prefillDays + o.loadDays)
	if err != nil {
		return fmt.Errorf("--prefill %d at %d markets and --load-days %d: %w; use more --markets or fewer --load-days", o.prefill, o.markets, o.loadDays, err)
	}
	loadFirst := first.AddDate(0, 0, prefillDays)
	logf := func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) }

	logf("starting two PostgreSQL clusters")
	bed, err := startMoveBed(ctx, int32(o.maxConns))
	defer bed.Close()
	if err != nil {
		return err
	}
	cfg, admin, target, ctlDSN := bed.cfg, bed.admin, bed.target, bed.ctlDSN

	t0 := time.Now()
	for _, f := range []struct {
		s       synth
		markets int
	}{{lombardia, o.markets}, {veneto, o.otherMarkets}} {
		logf("filling region %s: %d markets, %d holders, %d market days of presences", f.s.region, f.markets, f.markets*holdersPerMarket, prefillDays)
		if err := fill(ctx, admin[f.s.region], f.s, f.markets); err != nil {
			return err
		}
		if err := prefill(ctx, admin[f.s.region], f.s.region, first, prefillDays); err != nil {
			return err
		}
		if _, err := admin[f.s.region].Exec(ctx, `VACUUM ANALYZE`); err != nil {
			return err
		}
	}
	logf("data ready in %s", time.Since(t0).Round(time.Second))
	var pgVersion string
	if err := admin[moveRegion].QueryRow(ctx, `SHOW server_version`).Scan(&pgVersion); err != nil {
		return err
	}

	// 1. The floor.
	logf("floor: raw COPY of region %s's rows into a scratch database on the target server", moveRegion)
	floor, err := copyFloor(ctx, admin[moveRegion], bed.scratch.AdminDSN(), moveRegion)
	if err != nil {
		return err
	}
	if err := bed.dst.Exec(ctx, `DROP DATABASE `+scratchDB); err != nil {
		return err
	}
	logf("floor: %d rows in %s, %.0f rows/s", floor.rows, floor.took.Round(time.Millisecond), floor.rate())

	// 2. The baseline: both regions' load through a router that follows
	// the control database, as serve's do.
	api, err := startRouter(ctx, cfg, ctlDSN)
	if err != nil {
		return err
	}
	defer api.Close()
	var loads []*load
	for _, r := range []regions.Code{moveRegion, otherRegion} {
		holders, err := readHolders(ctx, admin[r], r)
		if err != nil {
			return err
		}
		token, err := regionToken(r, "dmsmovebench")
		if err != nil {
			return err
		}
		l := &load{region: r, api: api, token: token, holders: holders, rome: rome, day: loadFirst, last: today.AddDate(0, 0, -1), stop: make(chan struct{})}
		l.start(ctx, o.clients, o.rate)
		defer l.halt()
		loads = append(loads, l)
	}
	moved, other := loads[0], loads[1]
	warm := min(5*time.Second, o.baseline/3)
	logf("load: %d clients per region, %s; %s unmeasured, then the baseline, %s", o.clients, rateText(o.rate), warm, o.baseline)
	if err := sleep(ctx, warm); err != nil {
		return err
	}
	meter := bench.NewCPUMeter(ctx, bed.src.AdminDSN)
	base := window{from: time.Now()}
	cpu0, srvCPU0 := meter.Read()
	if err := sleep(ctx, o.baseline); err != nil {
		return err
	}
	base.to = time.Now()
	cpu1, srvCPU1 := meter.Read()
	for _, l := range loads {
		if err := l.counts().firstErr; err != nil {
			return err
		}
	}

	// 3. The move, under the same load.
	totals, err := move.RegionRows(ctx, admin[moveRegion], moveRegion, nil)
	if err != nil {
		return err
	}
	var moveRows int64
	for _, n := range totals {
		moveRows += n
	}
	progress := &stampedLines{w: stderr}
	m := move.New(cfg, ctlDSN, move.Options{MaxFreeze: o.maxFreeze, Poll: 250 * time.Millisecond, Out: progress})
	logf("moving region %s (%d rows) to %s", moveRegion, moveRows, spareShard)
	moveStart := time.Now()
	p, err := m.Prepare(ctx, moveRegion, spareShard)
	if err != nil {
		return err
	}
	if !p.OK() {
		move.PrintChecks(stderr, p.Checks)
		return errors.New("the move's preflight failed")
	}
	rec, err := m.Move(ctx, p)
	if err != nil {
		// What the clients and the move's log saw of a failed switch.
		rf := refusalsOf(moved.attempts(false))
		logf("region %s's clients saw %d refused writes, the longest run %s", moveRegion, rf.count, rf.run.to.Sub(rf.run.from).Round(time.Millisecond))
		if tl, _ := readTimeline(ctx, ctlDSN, rec, progress); len(tl.freezeSteps) > 0 {
			logf("the move's last freeze, each step's time after the one before: %s", tl.freezeText())
		}
		return err
	}
	moveEnd := time.Now()
	tl, err := readTimeline(ctx, ctlDSN, rec, progress)
	if err != nil {
		return err
	}
	afterSwitch := window{from: moveEnd}
	if err := sleep(ctx, max(time.Second, o.baseline/3)); err != nil {
		return err
	}
	afterSwitch.to = time.Now()

	// 4. complete, the load still running.
	logf("completing the move")
	completion := window{from: time.Now()}
	_, removed, err := m.Complete(ctx, moveRegion)
	if err != nil {
		return err
	}
	completion.to = time.Now()
	var removedRows int64
	for _, rm := range removed {
		removedRows += rm.Rows
	}
	for _, l := range loads {
		l.halt()
	}

	// Every answered check-in is stored once, where its region lives now;
	// the source holds none of the moved region's rows.
	var problems []string
	for _, c := range []struct {
		l    *load
		conn *pgx.Conn
		on   string
	}{{moved, target, spareShard}, {other, admin[otherRegion], "s05"}} {
		n, err := count(ctx, c.conn, `SELECT count(*) FROM vendor_presences WHERE region_id = $1 AND date >= $2`, c.l.region.Num(), loadFirst)
		if err != nil {
			return err
		}
		tally := c.l.counts()
		if n != int64(tally.acked) {
			problems = append(problems, fmt.Sprintf("region %s: %d check-ins answered 201, %d stored on %s", c.l.region, tally.acked, n, c.on))
		}
		if tally.errs > 0 {
			problems = append(problems, fmt.Sprintf("region %s: %d request(s) failed, the first: %v", c.l.region, tally.errs, tally.firstErr))
		}
	}
	left, err := move.RegionRows(ctx, admin[moveRegion], moveRegion, nil)
	if err != nil {
		return err
	}
	for table, n := range left {
		if n != 0 {
			problems = append(problems, fmt.Sprintf("the source still holds %d rows of region %s in %s", n, moveRegion, table))
		}
	}
	slices.Sort(problems)

	r := moveReport{
		o: o, args: args, pgVersion: pgVersion, moveRows: moveRows, floor: floor, rec: rec, tl: tl,
		moveStart: moveStart, moveEnd: moveEnd, base: base, afterSwitch: afterSwitch, completion: completion,
		removedRows: removedRows, moved: moved, other: other, problems: problems,
		stored: [2]int64{int64(o.markets * holdersPerMarket * prefillDays), int64(o.otherMarkets * holdersPerMarket * prefillDays)},
	}
	if n := base.count(moved, other); n > 0 {
		r.cpuPerCheckIn = (cpu1 - cpu0) / time.Duration(n)
		r.srvCPUPerCheckIn = (srvCPU1 - srvCPU0) / time.Duration(n)
	}
	text := r.markdown()
	fmt.Fprint(stdout, text)
	if o.out != "" {
		if err := replaceSection(o.out, sectionHeading, text); err != nil {
			return err
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("movebench: %s", strings.Join(problems, "; "))
	}
	return nil
}

// The databases of the move's test bed.
const (
	controlDB = "movebench_control"
	spareDB   = "movebench_s03b"
	scratchDB = "movebench_scratch"
)

// moveBed is where movebench moves a region: two throwaway clusters, the
// source (shards s03, s05 and rest, and the control database, which
// assigns 03 to s03) and the target (the spare shard and the floor's
// scratch database, which serve no region), each database migrated, and
// superuser connections to the two regions' databases on the source
// (admin) and to the spare.
type moveBed struct {
	src, dst *pgcluster.Server
	// cfg holds the source's shards and the spare, not the scratch.
	cfg     shardmap.Config
	scratch shardmap.ShardConfig
	ctlDSN  string
	admin   map[regions.Code]*pgx.Conn
	target  *pgx.Conn
}

// startMoveBed starts a moveBed whose shards have pools of maxConns.
// Close it even when it fails: it stops what was started.
func startMoveBed(ctx context.Context, maxConns int32) (*moveBed, error) {
	b := &moveBed{admin: map[regions.Code]*pgx.Conn{}}
	var err error
	if b.src, err = pgcluster.StartTemp(ctx); err != nil {
		return b, err
	}
	if b.dst, err = pgcluster.StartTemp(ctx); err != nil {
		return b, err
	}
	layout := pgcluster.Split("rest", pgcluster.Layout{moveRegion: "s03", otherRegion: "s05"})
	if b.cfg, err = b.src.Deployment(ctx, "movebench", layout); err != nil {
		return b, err
	}
	spare := shardmap.ShardConfig{Name: spareShard, Primary: b.dst.DSN(spareDB, "dms_app"), Admin: b.dst.AdminDB(spareDB)}
	b.scratch = shardmap.ShardConfig{Name: "scratch", Primary: b.dst.DSN(scratchDB, "dms_app"), Admin: b.dst.AdminDB(scratchDB)}
	if _, err := pgcluster.Prepare(ctx, shardmap.Config{Shards: []shardmap.ShardConfig{spare, b.scratch}}, ""); err != nil {
		return b, err
	}
	b.cfg.Shards = append(b.cfg.Shards, spare)
	for i := range b.cfg.Shards {
		b.cfg.Shards[i].MaxConns = maxConns
	}
	b.ctlDSN = b.src.AdminDB(controlDB)
	if err := b.src.Exec(ctx, "CREATE DATABASE "+controlDB); err != nil {
		return b, err
	}
	if r := control.Migrate(ctx, b.ctlDSN, b.cfg.Regions); r.Err != nil {
		return b, r.Err
	}
	for _, s := range b.cfg.Shards {
		var r regions.Code
		switch s.Name {
		case "s03":
			r = moveRegion
		case "s05":
			r = otherRegion
		case spareShard:
			b.target, err = pgx.Connect(ctx, s.AdminDSN())
		default:
			continue
		}
		if r != "" {
			b.admin[r], err = pgx.Connect(ctx, s.AdminDSN())
		}
		if err != nil {
			return b, err
		}
	}
	return b, nil
}

// Close closes b's connections and stops its clusters.
func (b *moveBed) Close() {
	for _, c := range append(slices.Collect(maps.Values(b.admin)), b.target) {
		if c != nil {
			c.Close(context.Background())
		}
	}
	for _, s := range []*pgcluster.Server{b.src, b.dst} {
		if s != nil {
			s.Stop()
		}
	}
}

func rateText(rate float64) string {
	if rate == 0 {
		return "as fast as they go"
	}
	return fmt.Sprintf("%.0f check-ins/s in all", rate)
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// floorCopy is the raw COPY of a region's rows: how many and how long.
type floorCopy struct {
	rows int64
	took time.Duration
}

func (f floorCopy) rate() float64 { return float64(f.rows) / f.took.Seconds() }

// copyFloor copies region r's rows of every table a move copies (the same
// row filters) from src into the database at dstDSN, of the same schema,
// table after table: COPY (SELECT ...) TO STDOUT on src piped into COPY
// ... FROM STDIN, text format as logical replication's initial copy, with
// session_replication_role = replica as its apply worker (no triggers, no
// foreign key checks).
func copyFloor(ctx context.Context, src *pgx.Conn, dstDSN string, r regions.Code) (floorCopy, error) {
	dst, err := pgx.Connect(ctx, dstDSN)
	if err != nil {
		return floorCopy{}, err
	}
	defer dst.Close(context.Background())
	if _, err := dst.Exec(ctx, `SET session_replication_role = replica`); err != nil {
		return floorCopy{}, err
	}
	var f floorCopy
	start := time.Now()
	for _, t := range move.Tables {
		pr, pw := io.Pipe()
		sent := make(chan error, 1)
		go func() {
			_, err := src.PgConn().CopyTo(ctx, pw, fmt.Sprintf(`COPY (SELECT * FROM %s WHERE %s) TO STDOUT`, t.Name, t.Filter(r)))
			pw.CloseWithError(err)
			sent <- err
		}()
		tag, err := dst.PgConn().CopyFrom(ctx, pr, fmt.Sprintf(`COPY %s FROM STDIN`, t.Name))
		pr.CloseWithError(errors.New("the copy into the scratch database ended"))
		if serr := <-sent; err == nil && serr != nil {
			err = serr
		}
		if err != nil {
			return f, fmt.Errorf("floor: copy %s: %w", t.Name, err)
		}
		f.rows += tag.RowsAffected()
	}
	f.took = time.Since(start)
	return f, nil
}

// sample is one request of the load: when it was sent, how long its
// answer took, whether it was a read, and its status (0: no answer).
type sample struct {
	start  time.Time
	took   time.Duration
	read   bool
	status int
}

func (s sample) end() time.Time { return s.start.Add(s.took) }

// load drives one region's check-ins through the router, and a read of
// the market's presences after every fourth: its clients together send
// at most rate check-ins a second (0: no limit), each on a holder of the
// region not checked in yet, day after day from day to last. A check-in
// or read answered 503 is sent again after its Retry-After, with the same
// Idempotency-Key, as the README tells clients to.
type load struct {
	region  regions.Code
	api     *inproc
	token   string
	holders []holder
	rome    *time.Location
	stop    chan struct{}
	wg      sync.WaitGroup

	mu      sync.Mutex
	day     time.Time // the next day whose check-ins are drawn
	last    time.Time
	pending []row // the rest of the current day's check-ins, markets interleaved
	drawn   int
	samples []sample
	tally   loadTally
}

// loadTally is what a load counted: the check-ins answered 201, the
// longest a request waited from its first refused attempt to its answer
// (Retry-After waits included), and the requests that failed otherwise.
type loadTally struct {
	acked       int
	longestWait time.Duration
	errs        int
	firstErr    error
}

// start starts the load's clients.
func (l *load) start(ctx context.Context, clients int, rate float64) {
	unlimited := make(chan time.Time)
	close(unlimited) // always ready
	var ticks <-chan time.Time = unlimited
	if rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / rate))
		ticks = t.C
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			<-l.stop
			t.Stop()
		}()
	}
	for range clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.client(ctx, ticks)
		}()
	}
}

// halt stops the clients and waits for them; it may be called again.
func (l *load) halt() {
	l.mu.Lock()
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.mu.Unlock()
	l.wg.Wait()
}

func (l *load) client(ctx context.Context, ticks <-chan time.Time) {
	for n := 1; ; n++ {
		select {
		case <-l.stop:
			return
		case <-ctx.Done():
			return
		case <-ticks:
		}
		r, key, ok := l.next()
		if !ok {
			l.fail(fmt.Errorf("region %s ran out of check-ins: use more --load-days", l.region))
			return
		}
		base, client := l.api.base, l.api.client
		if !l.send(ctx, false, http.StatusCreated, func() (reply, error) { return checkIn(ctx, client, base, l.token, r, key) }) {
			continue
		}
		l.mu.Lock()
		l.tally.acked++
		l.mu.Unlock()
		if n%4 == 0 {
			url := fmt.Sprintf("%s/v1/markets/%d/presences?date=%s", base, r.MarketID, r.Date)
			l.send(ctx, true, http.StatusOK, func() (reply, error) { return send(ctx, client, http.MethodGet, url, l.token, nil, "") })
		}
	}
}

// next draws the next check-in and its Idempotency-Key; false when the
// days ran out.
func (l *load) next() (row, string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.pending) == 0 {
		if l.day.After(l.last) {
			return row{}, "", false
		}
		l.pending = interleave(presenceRows(l.holders, []time.Time{l.day}, l.rome))
		l.day = l.day.AddDate(0, 0, 1)
	}
	r := l.pending[0]
	l.pending = l.pending[1:]
	l.drawn++
	return r, fmt.Sprintf("movebench-%s-%d", l.region, l.drawn), true
}

// send sends a request until it is answered want, waiting out the
// Retry-After of every 503, and records each attempt. It reports whether
// it got want: another answer is recorded as the load's failure; a stop
// while it waits gives up.
func (l *load) send(ctx context.Context, read bool, want int, do func() (reply, error)) bool {
	var refused time.Time
	for {
		start := time.Now()
		rep, err := do()
		l.mu.Lock()
		l.samples = append(l.samples, sample{start: start, took: time.Since(start), read: read, status: rep.status})
		if rep.status == want && !refused.IsZero() {
			l.tally.longestWait = max(l.tally.longestWait, time.Since(refused))
		}
		l.mu.Unlock()
		switch {
		case err != nil:
			if ctx.Err() == nil {
				l.fail(err)
			}
			return false
		case rep.status == want:
			return true
		case rep.status != http.StatusServiceUnavailable:
			l.fail(fmt.Errorf("region %s: %d %s", l.region, rep.status, strings.TrimSpace(rep.body)))
			return false
		}
		if refused.IsZero() {
			refused = start
		}
		t := time.NewTimer(max(rep.retryAfter, 100*time.Millisecond))
		select {
		case <-l.stop:
			t.Stop()
			return false
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}

func (l *load) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tally.errs++
	if l.tally.firstErr == nil {
		l.tally.firstErr = err
	}
}

// counts returns what the load counted so far.
func (l *load) counts() loadTally {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tally
}

// attempts returns a copy of the load's samples (reads or writes) in the
// order they were sent.
func (l *load) attempts(read bool) []sample {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []sample
	for _, s := range l.samples {
		if s.read == read {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b sample) int { return a.start.Compare(b.start) })
	return out
}

// window is a span of the run.
type window struct{ from, to time.Time }

// union returns the window from the earlier start to the later end.
func (w window) union(v window) window {
	if v.from.Before(w.from) {
		w.from = v.from
	}
	if v.to.After(w.to) {
		w.to = v.to
	}
	return w
}

func (w window) contains(t time.Time) bool { return !t.Before(w.from) && t.Before(w.to) }

// overlaps reports whether s ran during w.
func (w window) overlaps(s sample) bool { return s.start.Before(w.to) && s.end().After(w.from) }

// count returns the check-ins of loads answered 201 that were sent in w.
func (w window) count(loads ...*load) int {
	n := 0
	for _, l := range loads {
		for _, s := range l.attempts(false) {
			if w.contains(s.start) && s.status == http.StatusCreated {
				n++
			}
		}
	}
	return n
}

// latency is the latency of the answered requests of a window.
type latency struct {
	n, refused, failed int
	sorted             []time.Duration
}

// measure returns the latency of the samples sent in w, leaving out those
// that ran during any of skip.
func measure(samples []sample, w window, skip ...window) latency {
	var lt latency
	for _, s := range samples {
		if !w.contains(s.start) || slices.ContainsFunc(skip, func(k window) bool { return k.overlaps(s) }) {
			continue
		}
		switch s.status {
		case http.StatusOK, http.StatusCreated:
			lt.n++
			lt.sorted = append(lt.sorted, s.took)
		case http.StatusServiceUnavailable:
			lt.refused++
		default:
			lt.failed++
		}
	}
	slices.Sort(lt.sorted)
	return lt
}

func (lt latency) ms(p float64) string {
	if lt.n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", float64(bench.Percentile(lt.sorted, p))/float64(time.Millisecond))
}

// refusals is the freeze as the clients of a region saw it: the number
// of refused writes and their longest run, from the first refused write's
// sending to the last one's answer, with no write answered 201 sent in
// between.
type refusals struct {
	run   window
	count int
}

// refusalsOf reads the refused writes among samples (in sending order).
func refusalsOf(samples []sample) refusals {
	var rf refusals
	var cur window
	inRun := false
	for _, s := range samples {
		switch s.status {
		case http.StatusServiceUnavailable:
			rf.count++
			if !inRun {
				cur, inRun = window{from: s.start}, true
			}
			cur.to = s.end()
			if cur.to.Sub(cur.from) > rf.run.to.Sub(rf.run.from) {
				rf.run = cur
			}
		case http.StatusCreated:
			inRun = false
		}
	}
	return rf
}

// timeline is when the move's steps happened, from its log in the
// control database and the lines it printed.
type timeline struct {
	copyStart, copyEnd, caughtUp, switching, frozen time.Time
	// freezeSteps are the steps inside the freeze, each with its time
	// since the one before (the first since the region was frozen).
	freezeSteps []stepTime
}

// freezeText lists the steps inside the freeze with their times.
func (tl timeline) freezeText() string {
	var steps []string
	for _, s := range tl.freezeSteps {
		steps = append(steps, fmt.Sprintf("%s %.0f ms", s.name, float64(s.took)/float64(time.Millisecond)))
	}
	return strings.Join(steps, ", ")
}

type stepTime struct {
	name string
	took time.Duration
}

// readTimeline reads move rec's steps from the control database and when
// the move printed its last lag line (the catch-up reached its threshold
// and the online verification began).
func readTimeline(ctx context.Context, ctlDSN string, rec move.Record, progress *stampedLines) (timeline, error) {
	conn, err := pgx.Connect(ctx, ctlDSN)
	if err != nil {
		return timeline{}, err
	}
	defer conn.Close(context.Background())
	rows, _ := conn.Query(ctx, `SELECT at, phase, step FROM control.move_steps WHERE move_id = $1 ORDER BY id`, rec.ID)
	type step struct {
		At    time.Time `db:"at"`
		Phase string    `db:"phase"`
		Step  string    `db:"step"`
	}
	steps, err := pgx.CollectRows(rows, pgx.RowToStructByName[step])
	if err != nil {
		return timeline{}, fmt.Errorf("read the steps of move %d: %w", rec.ID, err)
	}
	var tl timeline
	var prev time.Time
	for _, s := range steps {
		switch {
		case s.Step == "copy":
			tl.copyStart = s.At
		case s.Step == "phase" && s.Phase == string(move.CatchingUp) && tl.copyEnd.IsZero():
			tl.copyEnd = s.At
		case s.Step == "phase" && s.Phase == string(move.Switching):
			tl.switching = s.At
		case s.Step == "frozen":
			tl.frozen, prev, tl.freezeSteps = s.At, s.At, nil
		case s.Phase == string(move.Switching) && !prev.IsZero():
			tl.freezeSteps = append(tl.freezeSteps, stepTime{s.Step, s.At.Sub(prev)})
			prev = s.At
		}
	}
	tl.caughtUp = progress.last("catching up:")
	if tl.copyStart.IsZero() || tl.copyEnd.IsZero() || tl.switching.IsZero() || tl.frozen.IsZero() || tl.caughtUp.IsZero() {
		return tl, fmt.Errorf("move %d: its log lacks a step (copy %v, catching up %v, caught up %v, switching %v, frozen %v)",
			rec.ID, tl.copyStart, tl.copyEnd, tl.caughtUp, tl.switching, tl.frozen)
	}
	return tl, nil
}

// stampedLines passes the move's progress lines on to w, indented, and
// keeps when each was written.
type stampedLines struct {
	w     io.Writer
	mu    sync.Mutex
	lines []stampedLine
}

type stampedLine struct {
	at   time.Time
	text string
}

func (s *stampedLines) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for line := range strings.Lines(string(p)) {
		s.lines = append(s.lines, stampedLine{now, strings.TrimRight(line, "\r\n")})
		fmt.Fprintf(s.w, "  %s", line)
	}
	return len(p), nil
}

// last returns when the last line beginning with prefix was written.
func (s *stampedLines) last(prefix string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(s.lines[i].text, prefix) {
			return s.lines[i].at
		}
	}
	return time.Time{}
}

// moveReport is what movebench measured.
type moveReport struct {
	o                               movebenchOptions
	args                            []string
	pgVersion                       string
	stored                          [2]int64 // presences of 03 and 05 before the run
	moveRows                        int64
	floor                           floorCopy
	rec                             move.Record
	tl                              timeline
	moveStart, moveEnd              time.Time
	base, afterSwitch, completion   window
	removedRows                     int64
	moved, other                    *load
	cpuPerCheckIn, srvCPUPerCheckIn time.Duration
	problems                        []string
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()) }

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

// markdown returns the report as the section --out writes.
func (r moveReport) markdown() string {
	var b strings.Builder
	o, tl := r.o, r.tl
	full := o.markets == 1360 && o.prefill == 4_000_000
	fmt.Fprintf(&b, "%s\n\n", sectionHeading)
	fmt.Fprintf(&b, "Measured by `dmsdev movebench` (cmd/dmsdev/movebench.go), which writes this section with `--out BENCHMARKS.md`.\n")
	fmt.Fprintf(&b, "Two throwaway PostgreSQL %s clusters (`wal_level=logical`, `fsync=off`, as the demo's): the source holds region %s\n", r.pgVersion, moveRegion)
	fmt.Fprintf(&b, "(%s) on a shard database of its own, region %s (%s) on another, the other regions on a third, and the control\n", moveRegion.Name(), otherRegion, otherRegion.Name())
	fmt.Fprintf(&b, "database; the target holds the spare shard %s. Region %s is filled as `dmsdev ingest` fills it, region %s at a smaller\n", spareShard, moveRegion, otherRegion)
	fmt.Fprintf(&b, "scale. In one run: the floor (a raw COPY of %s's rows of every moved table, row filters as the move's, into a scratch\n", moveRegion)
	fmt.Fprintf(&b, "database on the target server: `COPY (SELECT ...) TO STDOUT` piped into `COPY ... FROM STDIN`, text format,\n")
	fmt.Fprintf(&b, "`session_replication_role = replica`, table after table); check-ins and reads of both regions through an in-process\n")
	fmt.Fprintf(&b, "router that follows the control database (a read of the market's presences after every fourth check-in; a 503 is sent\n")
	fmt.Fprintf(&b, "again after its Retry-After with the same Idempotency-Key); the baseline; then `region move` of %s to %s with the load\n", moveRegion, spareShard)
	fmt.Fprintf(&b, "running, `complete`, and a check that every check-in answered 201 is stored exactly once where its region lives.\n")
	fmt.Fprintf(&b, "Latencies are per attempt (a refused attempt and its retry are two), from every sample, nearest rank. The\n")
	fmt.Fprintf(&b, "move's phases are timed from its log in the control database (it polls every 250 ms); its subscription copies up to\n")
	fmt.Fprintf(&b, "`max_sync_workers_per_subscription` (2) tables at once, the floor one at a time.\n\n")
	scale := "at full scale"
	if !full {
		scale = "at a reduced scale; full scale is `go run ./cmd/dmsdev movebench` with its defaults (`--markets 1360 --prefill 4000000`)"
	}
	fmt.Fprintf(&b, "### %s UTC, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04"), scale)
	fmt.Fprintf(&b, "`go run ./cmd/dmsdev movebench %s`: %s, PostgreSQL %s. Region %s: %d markets, %d presences stored before the run;\n",
		strings.Join(r.args, " "), machineLine(), r.pgVersion, moveRegion, o.markets, r.stored[0])
	fmt.Fprintf(&b, "region %s: %d markets, %d presences. Load: %d clients per region, %s; move `--max-freeze %s`.\n\n",
		otherRegion, o.otherMarkets, r.stored[1], o.clients, rateText(o.rate), o.maxFreeze)

	copyTook := tl.copyEnd.Sub(tl.copyStart)
	copyRate := float64(r.moveRows) / copyTook.Seconds()
	var frozenVerify time.Duration
	for _, s := range tl.freezeSteps {
		if s.name == "verified" {
			frozenVerify = s.took
		}
	}
	freeze := time.Duration(0)
	if r.rec.Freeze != nil {
		freeze = *r.rec.Freeze
	}
	writes := r.moved.attempts(false)
	rf := refusalsOf(writes)
	// The freeze's window: the move's measure and the clients' refusals.
	frozen := window{from: tl.frozen, to: tl.frozen.Add(freeze)}
	if rf.count > 0 {
		frozen = frozen.union(rf.run)
	}
	skip := []window{frozen}

	fmt.Fprintf(&b, "| step | rows | seconds | rows/s | note |\n|---|---:|---:|---:|---|\n")
	fmt.Fprintf(&b, "| floor: raw COPY of region %s's rows into a scratch database on the target server | %d | %s | %.0f | 1.00x |\n",
		moveRegion, r.floor.rows, secs(r.floor.took), r.floor.rate())
	fmt.Fprintf(&b, "| move, copy phase: subscription created -> every table ready (rows counted at the start) | %d | %s | %.0f | %.2fx the floor |\n",
		r.moveRows, secs(copyTook), copyRate, copyRate/r.floor.rate())
	fmt.Fprintf(&b, "| move, catch-up: copy done -> lag under 1 MiB | | %s | | |\n", secs(tl.caughtUp.Sub(tl.copyEnd)))
	fmt.Fprintf(&b, "| move, online verification (counts and hashes per id range, both sides) | | %s | | |\n", secs(tl.switching.Sub(tl.caughtUp)))
	fmt.Fprintf(&b, "| move, freeze as the move measured it: frozen -> every router on the new epoch | | %s | | target <= 1 s: %s |\n",
		secs(freeze), yesNo(freeze <= time.Second))
	fmt.Fprintf(&b, "| move, of which the frozen verification | | %s | | |\n", secs(frozenVerify))
	fmt.Fprintf(&b, "| move, freeze as clients saw it: longest run of refused writes of region %s | %d refused | %s | | |\n",
		moveRegion, rf.count, secs(rf.run.to.Sub(rf.run.from)))
	fmt.Fprintf(&b, "| longest wait of one check-in: first refusal -> 201 (Retry-After included) | | %s | | |\n", secs(r.moved.counts().longestWait))
	fmt.Fprintf(&b, "| move, whole command: prepare -> switched, reverse stream running | | %s | | |\n", secs(r.moveEnd.Sub(r.moveStart)))
	fmt.Fprintf(&b, "| complete: drop the replication objects, delete the region's rows from the source | %d removed | %s | %.0f | |\n\n",
		r.removedRows, secs(r.completion.to.Sub(r.completion.from)), float64(r.removedRows)/r.completion.to.Sub(r.completion.from).Seconds())
	fmt.Fprintf(&b, "Inside the freeze, each step's time after the one before (from the region frozen on the source): %s; then the epoch written and every router waited for.\n\n",
		tl.freezeText())

	moving := window{from: tl.copyStart, to: r.moveEnd}
	windows := []struct {
		name string
		w    window
		skip []window
	}{
		{"baseline, before the move", r.base, nil},
		{"copy phase", window{tl.copyStart, tl.copyEnd}, skip},
		{"catch-up and online verification", window{tl.copyEnd, tl.switching}, skip},
		{"whole move outside the freeze", moving, skip},
		{"the freeze (as the move measured it, and the clients' refusals)", frozen, nil},
		{"the first second after the freeze (the target's first requests)", window{frozen.to, frozen.to.Add(time.Second)}, nil},
		{"after the switch (" + string(moveRegion) + " on " + spareShard + ", streaming back)", r.afterSwitch, nil},
		{"complete", r.completion, nil},
	}
	fmt.Fprintf(&b, "| window | seconds | %[1]s check-ins | %[1]s p50 ms | %[1]s p99 ms | %[1]s max ms | %[1]s refused | %[1]s reads p99 ms | %[2]s check-ins | %[2]s p50 ms | %[2]s p99 ms | %[2]s max ms |\n",
		moveRegion, otherRegion)
	fmt.Fprintf(&b, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	oWrites, mReads := r.other.attempts(false), r.moved.attempts(true)
	for _, x := range windows {
		mw, mr, ow := measure(writes, x.w, x.skip...), measure(mReads, x.w, x.skip...), measure(oWrites, x.w)
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s | %d | %s | %d | %s | %s | %s |\n", x.name, secs(x.w.to.Sub(x.w.from)),
			mw.n, mw.ms(50), mw.ms(99), mw.ms(100), mw.refused, mr.ms(99), ow.n, ow.ms(50), ow.ms(99), ow.ms(100))
	}
	baseM, baseO := measure(writes, r.base), measure(oWrites, r.base)
	duringM := measure(writes, moving, skip...)
	duringO := measure(oWrites, window{tl.copyStart, tl.copyEnd})
	ratio := func(a, b latency) float64 {
		if a.n == 0 || b.n == 0 {
			return 0
		}
		return float64(bench.Percentile(a.sorted, 99)) / float64(bench.Percentile(b.sorted, 99))
	}
	fmt.Fprintf(&b, "\nCPU per check-in in the baseline (both regions' check-ins, their reads included): %.2f ms in this process (clients and router), %.2f ms in the source's PostgreSQL.\n\n",
		float64(r.cpuPerCheckIn)/float64(time.Millisecond), float64(r.srvCPUPerCheckIn)/float64(time.Millisecond))
	fmt.Fprintf(&b, "| target (issue 11) | measured | met |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| freeze <= 1 s | %s s as the move measured it; refused writes for %s s as the clients saw them | %s |\n",
		secs(freeze), secs(rf.run.to.Sub(rf.run.from)), yesNo(freeze <= time.Second))
	fmt.Fprintf(&b, "| region %s write p99 during the move, outside the freeze, <= 2x without a move | %s ms vs %s ms: %.2fx | %s |\n",
		moveRegion, duringM.ms(99), baseM.ms(99), ratio(duringM, baseM), yesNo(ratio(duringM, baseM) <= 2))
	fmt.Fprintf(&b, "| cost to region %s on the source server: its p99 during the copy vs before | %s ms vs %s ms: %.2fx | (no target) |\n",
		otherRegion, duringO.ms(99), baseO.ms(99), ratio(duringO, baseO))
	fmt.Fprintf(&b, "| copy rate vs the raw COPY floor | %.0f vs %.0f rows/s: %.2fx | (no target) |\n", copyRate, r.floor.rate(), copyRate/r.floor.rate())
	if len(r.problems) > 0 {
		fmt.Fprintf(&b, "\n**Problems found:** %s.\n", strings.Join(r.problems, "; "))
	}
	b.WriteString("\n")
	return b.String()
}

// replaceSection writes section, which begins with heading, into the
// markdown file path: in place of the section under the same heading
// (up to the next heading of its level), or at the end when there is none.
func replaceSection(path, heading, section string) error {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	text := string(old)
	start := -1
	if strings.HasPrefix(text, heading+"\n") {
		start = 0
	} else if i := strings.Index(text, "\n"+heading+"\n"); i >= 0 {
		start = i + 1
	}
	var out string
	if start < 0 {
		if text != "" && !strings.HasSuffix(text, "\n\n") {
			text = strings.TrimRight(text, "\n") + "\n\n"
		}
		out = text + section
	} else {
		rest := text[start+len(heading):]
		end := len(text)
		if i := strings.Index(rest, "\n## "); i >= 0 {
			end = start + len(heading) + i + 1
		}
		out = text[:start] + section + text[end:]
	}
	return os.WriteFile(path, []byte(out), 0o644)
}
