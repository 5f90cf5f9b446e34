package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/internal/clitest"
	"github.com/dmshub/dmsrouter/migrations"
	"github.com/dmshub/dmsrouter/move"
	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/seed"
	"github.com/dmshub/dmsrouter/shardmap"
)

// The region the move tests move, and its shards.
const (
	movedRegion = regions.Code("05") // Veneto
	moveSource  = "s05"
	moveTarget  = "s05b"
	maxFreeze   = 5 * time.Second
)

// TestRegionMove moves region 05 from one cluster to another with
// `region move` while two routers serve a load that writes to it
// (check-ins and batches, retried on 503) and reads it, and checks what
// issue 11 promises: every write answered 2xx is on the target once and
// nothing else is, every table matches between the two sides, the
// target's rollups equal what its rows give, its sequences are past every
// id the source gave, keys replayed across the switch give their first
// answer, writes were refused for less than --max-freeze, and both
// routers applied the new epoch. A third router started with the old
// assignment and no control database is refused by the source's fence and
// ends up on the target; with the source's cluster stopped the region
// still answers, from the target.
func TestRegionMove(t *testing.T) {
	begin := time.Now()
	env := newMoveEnv(t, "mv")
	// Each router warms a connection per pool before it is ready
	// (database.warm_conns 1, the default), and the load waits for that:
	// routers without it opened and warmed the connections inside the
	// load's first requests' acquire, which on a machine loaded by the
	// rest of the suite outlasted acquire_timeout (a 504 before the move
	// began, in one full run of four).
	r1 := startRouter(t, env.path, map[string]string{"DMSROUTER_CONTROL_ROUTER_ID": "r1"})
	r2 := startRouter(t, env.path, map[string]string{"DMSROUTER_CONTROL_ROUTER_ID": "r2"})
	for _, r := range []*router{r1, r2} {
		r.waitEpoch(t, env.national, 1, string(movedRegion), moveSource)
		waitFor(t, "router "+r.addr+" is ready", func() bool { return r.readyz(t).status == http.StatusOK })
	}
	seededMax := queryInt(t, env.src, `SELECT max(id) FROM vendor_presences`)

	own := watchOwnership(t, env.src, env.dst)
	seen := watchRegion([]*router{r1, r2}, env.national, moveTarget)
	work, markets := loadWork(t, env.src, movedRegion.Num())
	l := startLoad([]string{r1.addr, r2.addr}, env.writer, work, markets)
	waitFor(t, "the load's first writes are accepted", func() bool { return l.count() >= 30 })

	start, at := time.Now(), l.since()
	out := runOK(t, "region", "move", "--config", env.path, "--region", string(movedRegion), "--to", moveTarget, "--yes", "--max-freeze", maxFreeze.String())
	t.Logf("region move, started at %s of the load, took %s and printed:\n%s", at, time.Since(start).Round(time.Millisecond), out)
	// A few writes on the target after the switch, then the load stops.
	after := l.count()
	waitFor(t, "writes are accepted after the switch", func() bool { return l.count() >= after+20 })
	st := l.stop()
	ownership := own.stop()
	applied := seen.stop()

	t.Run("load", func(t *testing.T) { checkLoad(t, st) })
	t.Run("every write answered 2xx is on the target once, and nothing else", func(t *testing.T) {
		checkPresences(t, env.dst, seededMax, st.accepted)
	})
	t.Run("ownership", func(t *testing.T) { ownership.check(t) })
	t.Run("routers applied the new epoch", func(t *testing.T) {
		switched := switchedAt(t, env.ctlDSN)
		for i, at := range applied {
			if at.IsZero() {
				t.Errorf("router r%d never showed region %s on %s", i+1, movedRegion, moveTarget)
				continue
			}
			d := at.Sub(switched)
			t.Logf("router r%d showed region %s on %s %s after the epoch was written", i+1, movedRegion, moveTarget, d.Round(time.Millisecond))
			if d > 10*time.Second {
				t.Errorf("router r%d applied the new epoch %s after it was written, want within seconds", i+1, d)
			}
		}
		for _, r := range []*router{r1, r2} {
			r.waitEpoch(t, env.national, 2, string(movedRegion), moveTarget)
		}
	})
	t.Run("routers warmed the target's pools ahead of the switch", func(t *testing.T) {
		for i, r := range []*router{r1, r2} {
			line := logLine(r.logs, "pools warmed ahead of the switch", `"shard":"`+moveTarget+`"`)
			if line == "" {
				t.Errorf("router r%d did not warm the pools of %s ahead of the switch:\n%s", i+1, moveTarget, r.logs.String())
				continue
			}
			var rec struct{ Time time.Time }
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("log line %s: %v", line, err)
			}
			t.Logf("router r%d, %s before the epoch was written: %s", i+1, switchedAt(t, env.ctlDSN).Sub(rec.Time).Round(time.Millisecond), line)
		}
	})
	t.Run("tables match on both sides", func(t *testing.T) {
		checkTablesMatch(t, env.src, env.dst)
		t.Logf("region status:\n%s", runOK(t, "region", "status", "--config", env.path, "--region", string(movedRegion)))
	})
	t.Run("rollups equal what the target's rows give", func(t *testing.T) { checkRollups(t, env.dst) })
	t.Run("sequences on the target are past every id of the source", func(t *testing.T) { checkSequences(t, env.src, env.dst) })
	t.Run("keys replayed across the switch give the first answer", func(t *testing.T) {
		checkReplays(t, r2.addr, env.writer, st.accepted, switchedAt(t, env.ctlDSN))
	})

	t.Run("a stale router is refused by the fence and ends up on the target", func(t *testing.T) {
		// r3 starts while the control database refuses connections, so it
		// serves the file's regions (05 on s05); it learns of the move
		// only when the fence refuses it, the control database answering
		// again by then (r3 would retry it on its own only after a minute).
		ctlDB := quotedDB(t, env.ctlDSN)
		execSQL(t, env.a.AdminDSN, "ALTER DATABASE "+ctlDB+" ALLOW_CONNECTIONS false")
		pgtest.Exec(t, env.a.AdminDSN, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", strings.Trim(ctlDB, `"`))
		// r3 warms a connection of each pool before it is used, as every
		// router does by default (database.warm_conns 1): its first check-in
		// below meets the source's fence and then the target, and with
		// cold pools it opened and warmed a connection of each inside the
		// request, which on a machine loaded by the rest of the suite
		// outlasted the acquire timeout three times in a row.
		r3 := startRouter(t, env.path, map[string]string{"DMSROUTER_CONTROL_ROUTER_ID": "r3", "DMSROUTER_CONTROL_POLL_INTERVAL": "1m"})
		waitForLog(t, r3.logs, "CONTROL DATABASE UNREACHABLE AT START")
		waitForLog(t, r3.logs, `"conns_per_pool":1`) // "pools warmed"
		execSQL(t, env.a.AdminDSN, "ALTER DATABASE "+ctlDB+" ALLOW_CONNECTIONS true")
		if got := regionShard(t, r3.addr, env.national, string(movedRegion)); got != moveSource {
			t.Fatalf("r3 serves region %s from %q, want the file's %s", movedRegion, got, moveSource)
		}
		k := work[len(work)-1] // the load stopped long before its last item
		// A 504 (nothing written) is retried with the same
		// Idempotency-Key, as a client does, after a pause.
		var status int
		var body []byte
		for range 3 {
			status, body = post(t, r3.addr, env.writer, fmt.Sprintf("/v1/markets/%d/presences", k.Market), "stale-r3",
				fmt.Sprintf(`{"vendor_id": %d, "kind": "SPUNTA", "checkin_at": "%sT10:00:00Z"}`, k.Vendor, k.Date))
			if status != http.StatusGatewayTimeout {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		var p struct{ ID int64 }
		json.Unmarshal(body, &p)
		if status != http.StatusCreated || p.ID == 0 {
			t.Fatalf("check-in through r3 = %d %s, want 201", status, body)
		}
		where := fmt.Sprintf(`SELECT count(*) FROM vendor_presences WHERE id = %d`, p.ID)
		if src, dst := queryInt(t, env.src, where), queryInt(t, env.dst, where); dst != 1 {
			t.Errorf("r3's check-in %d is %d times on the target (and %d on the source), want once", p.ID, dst, src)
		}
		if got := regionShard(t, r3.addr, env.national, string(movedRegion)); got != moveTarget {
			t.Errorf("after the fence r3 serves region %s from %q, want %s", movedRegion, got, moveTarget)
		}
		// The refusal is counted, and the reload it caused is logged.
		const refusals = `dms_shard_fence_refusals_total{`
		var counted bool
		for _, line := range strings.Split(scrape(t, r3.logs), "\n") {
			if strings.HasPrefix(line, refusals) && strings.Contains(line, `reason="not_owned"`) &&
				strings.Contains(line, `region="05"`) && strings.Contains(line, `shard="s05"`) {
				t.Logf("r3's metrics: %s", line)
				counted = true
			}
		}
		if !counted {
			t.Errorf("r3's metrics count no fence refusal (not_owned) of region 05 on s05")
		}
		waitForLog(t, r3.logs, `"change":"region moved","name":"05","detail":"s05 -> s05b"`)
		r3.stop(t)
	})

	t.Run("with the source's cluster stopped the region answers from the target", func(t *testing.T) {
		if err := env.a.Halt(); err != nil {
			t.Fatal(err)
		}
		m := markets[0]
		if status, body := get(t, r1.addr, env.writer, fmt.Sprintf("/v1/markets/%d", m)); status != http.StatusOK {
			t.Errorf("GET market %d with the source stopped = %d %s, want 200", m, status, body)
		}
		k := work[len(work)-2]
		status, body := post(t, r1.addr, env.writer, fmt.Sprintf("/v1/markets/%d/presences", k.Market), "after-halt",
			fmt.Sprintf(`{"vendor_id": %d, "kind": "SPUNTA", "checkin_at": "%sT10:00:00Z"}`, k.Vendor, k.Date))
		if status != http.StatusCreated {
			t.Errorf("check-in with the source stopped = %d %s, want 201", status, body)
		}
	})
	t.Logf("TestRegionMove took %s", time.Since(begin).Round(time.Second))
}

// TestRegionMoveCrash kills the `region move` process (the built binary)
// while control.moves says it is copying, runs it again, and checks that
// the second run finishes the move, that the writes of a load running all
// along are on the target once, and that region 05 was owned by exactly
// one shard the whole time.
func TestRegionMoveCrash(t *testing.T) {
	begin := time.Now()
	env := newMoveEnv(t, "mvcrash")
	bin := filepath.Join(t.TempDir(), "dmsrouter")
	if out, err := exec.Command(goCommand(t), "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	r1 := startRouter(t, env.path, map[string]string{"DMSROUTER_CONTROL_ROUTER_ID": "r1"})
	r1.waitEpoch(t, env.national, 1, string(movedRegion), moveSource)
	seededMax := queryInt(t, env.src, `SELECT max(id) FROM vendor_presences`)
	own := watchOwnership(t, env.src, env.dst)
	work, markets := loadWork(t, env.src, movedRegion.Num())
	l := startLoad([]string{r1.addr}, env.writer, work, markets)

	// The copy of markets waits on the target for a transaction that
	// inserted one of the region's markets and stays open (with the
	// foreign keys of a replica off), so the process is certainly copying
	// when it is killed. The preflight's count does not see that row.
	ctx := context.Background()
	market := queryRows(t, env.src, `SELECT row_to_json(m)::text FROM markets m WHERE region_id = 5 ORDER BY id LIMIT 1`)[0][0]
	hold := pgtest.Connect(t, env.dst)
	tx, err := hold.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO markets SELECT * FROM json_populate_record(NULL::markets, $1::json)`, market); err != nil {
		t.Fatal(err)
	}
	args := []string{"region", "move", "--config", env.path, "--region", string(movedRegion), "--to", moveTarget, "--yes", "--max-freeze", maxFreeze.String()}
	var out1 clitest.Buffer
	first := exec.Command(bin, args...)
	first.Stdout, first.Stderr = &out1, &out1
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	phase := `SELECT count(*) FROM control.moves WHERE region_id = '05' AND phase = 'copying'`
	if !eventually(func() bool {
		return queryInt(t, env.ctlDSN, phase) == 1 &&
			queryInt(t, env.dst, `SELECT count(*) FROM pg_subscription WHERE subname LIKE '`+move.NamePrefix+`%'`) == 1
	}) {
		first.Process.Kill()
		t.Fatalf("control.moves does not say the move is copying with its subscription made; region move printed:\n%s", out1.String())
	}
	if state := queryRows(t, env.dst, `SELECT srsubstate::text FROM pg_subscription_rel WHERE srrelid = 'public.markets'::regclass`); len(state) != 1 || state[0][0] == "r" {
		t.Errorf("the copy of markets is in state %v, want one not yet ready", state)
	}
	first.Process.Kill() // SIGKILL: nothing of the process runs after it
	err = first.Wait()
	t.Logf("the first region move was killed (%v) after printing:\n%s", err, out1.String())
	if n := queryInt(t, env.ctlDSN, phase); n != 1 {
		t.Errorf("after the kill control.moves holds %d moves of region 05 copying, want 1", n)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	again := exec.Command(bin, args...)
	var out2 bytes.Buffer
	again.Stdout, again.Stderr = &out2, &out2
	err = runFor(again, 2*time.Minute)
	t.Logf("the second region move (%v) printed:\n%s", err, out2.String())
	if err != nil {
		t.Fatalf("region move run again after the crash: %v", err)
	}
	if !strings.Contains(out2.String(), "continuing from phase copying") {
		t.Errorf("the second region move did not say it continues the move from phase copying")
	}
	r1.waitEpoch(t, env.national, 2, string(movedRegion), moveTarget)
	after := l.count()
	waitFor(t, "writes are accepted after the switch", func() bool { return l.count() >= after+10 })
	st := l.stop()
	ownership := own.stop()

	if n := queryInt(t, env.ctlDSN, `SELECT count(*) FROM control.moves WHERE region_id = '05' AND phase = 'switched'`); n != 1 {
		t.Errorf("control.moves holds %d switched moves of region 05, want 1", n)
	}
	checkLoad(t, st)
	checkPresences(t, env.dst, seededMax, st.accepted)
	checkTablesMatch(t, env.src, env.dst)
	ownership.check(t)
	t.Logf("TestRegionMoveCrash took %s", time.Since(begin).Round(time.Second))
}

// moveEnv is a deployment to move region 05 in: cluster a holds its
// shard s05, the shard rest of every other region and the control
// database; cluster b holds the spare shard s05b, migrated, holding no
// region. Both clusters belong to the test, which may stop them.
type moveEnv struct {
	a, b     *pgtest.Server
	path     string // the configuration file, with control: (poll 1s)
	ctlDSN   string
	src, dst string // admin DSNs of s05 and s05b
	writer   string // token of a principal who writes region 05
	national string // token of a national auditor
}

func newMoveEnv(t *testing.T, name string) *moveEnv {
	t.Helper()
	ctx := context.Background()
	env := &moveEnv{a: pgtest.StartOwned(t), b: pgtest.StartOwned(t)}
	cfg, err := env.a.Deployment(ctx, name, pgtest.Split("rest", pgtest.Layout{movedRegion: moveSource}))
	if err != nil {
		t.Fatal(err)
	}
	// About 25 markets in region 05, with their stalls, vendors,
	// concessions and 10 days of presences.
	if _, err := seed.Run(ctx, cfg, seed.Options{Markets: 300, Days: 10, Seed: 11}); err != nil {
		t.Fatal(err)
	}
	spare := name + "_" + moveTarget
	if err := env.b.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{spare}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	cfg.Shards = append(cfg.Shards, shardmap.ShardConfig{Name: moveTarget, Primary: env.b.DSN(spare, "dms_app"), Admin: env.b.AdminDB(spare), MaxConns: 4})
	ctlDB := name + "_control"
	if err := env.a.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{ctlDB}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	env.ctlDSN = env.a.AdminDB(ctlDB)
	env.path = clitest.WriteConfig(t, cfg)
	appendFile(t, env.path, fmt.Sprintf("control:\n  dsn: %q\n  poll_interval: 1s\n", env.ctlDSN))
	// migrate up migrates the spare shard and the control database, and
	// seeds epoch 1 from the file.
	runOK(t, "migrate", "up", "--config", env.path)
	for _, sh := range cfg.Shards {
		switch sh.Name {
		case moveSource:
			env.src = sh.AdminDSN()
		case moveTarget:
			env.dst = sh.AdminDSN()
		}
	}
	env.writer = strings.TrimSpace(runOK(t, "token", "--config", env.path, "--sub", "load", "--role", "admin_pa", "--territory", "region:05", "--ttl", "1h"))
	env.national = strings.TrimSpace(runOK(t, "token", "--config", env.path, "--sub", "ops", "--role", "auditor", "--territory", "national", "--ttl", "1h"))
	return env
}

// checkLoad checks what a load saw: every write answered 2xx in the end,
// writes refused for less than --max-freeze in a row, and reads answered
// 200, or 503 in the instant of the switch.
func checkLoad(t *testing.T, st loadStats) {
	t.Helper()
	t.Logf("load: %d writes sent, %d accepted, refused %v, longest run of refused writes %s, reads %v",
		st.writes, len(st.accepted), st.refused, st.longestRefused.Round(time.Millisecond), st.reads)
	for _, f := range firstN(st.failed, 10) {
		t.Errorf("load: %s", f)
	}
	if st.longestRefused >= maxFreeze {
		t.Errorf("writes were refused for %s in a row, want less than --max-freeze %s", st.longestRefused, maxFreeze)
	}
	for status, n := range st.reads {
		if status != http.StatusOK && status != http.StatusServiceUnavailable {
			t.Errorf("%d reads answered %d, want 200 (or 503 while the region switches)", n, status)
		}
	}
}

// checkPresences checks that the presences of region 05 on the database at
// dsn with ids past seededMax are exactly the accepted writes: each
// check-in under its id, each batch row once.
func checkPresences(t *testing.T, dsn string, seededMax int64, acc []accepted) {
	t.Helper()
	lo, hi := move.Table{Key: "id"}.KeyRange(movedRegion)
	rows := queryRows(t, dsn, `SELECT id, market_id, vendor_id, date::text FROM vendor_presences WHERE id > $1 AND id >= $2 AND id < $3`, seededMax, lo, hi)
	ids := map[presenceKey][]int64{}
	for _, r := range rows {
		k := presenceKey{Market: r[1].(int64), Vendor: r[2].(int64), Date: r[3].(string)}
		ids[k] = append(ids[k], r[0].(int64))
	}
	var errs []string
	want := map[presenceKey]bool{}
	for _, a := range acc {
		want[a.key] = true
		got := ids[a.key]
		switch {
		case len(got) != 1:
			errs = append(errs, fmt.Sprintf("write %+v answered %d is on the target %d times", a.key, a.status, len(got)))
		case a.id != 0 && got[0] != a.id:
			errs = append(errs, fmt.Sprintf("check-in %+v answered %d with id %d is on the target with id %d", a.key, a.status, a.id, got[0]))
		}
	}
	for k, got := range ids {
		if !want[k] {
			errs = append(errs, fmt.Sprintf("presence %v %+v is on the target, but no write of it was answered 2xx", got, k))
		}
	}
	for _, e := range firstN(errs, 10) {
		t.Error(e)
	}
	if len(errs) > 10 {
		t.Errorf("... and %d more", len(errs)-10)
	}
	t.Logf("%d accepted writes, %d new presences on the target", len(acc), len(rows))
}

// tableSums returns, per table of the move's catalog (but the move's
// own marks), the count and an order-independent hash of region 05's rows.
func tableSums(t *testing.T, dsn string) map[string]string {
	t.Helper()
	sums := map[string]string{}
	for _, tb := range move.Tables {
		if tb.Name == "dms.move_marks" {
			continue
		}
		r := queryRows(t, dsn, fmt.Sprintf(`SELECT count(*)::text || '/' || coalesce(sum(hashtextextended(t::text, 0)), 0)::text FROM %s t WHERE %s`, tb.Name, tb.Filter(movedRegion)))
		sums[tb.Name] = r[0][0].(string)
	}
	return sums
}

// checkTablesMatch checks that every table of the move's catalog holds
// the same rows of region 05 on the source (at src) and the target (at
// dst), waiting for the reverse stream to carry the target's last writes
// back.
func checkTablesMatch(t *testing.T, src, dst string) {
	t.Helper()
	var differ []string
	eventually(func() bool {
		s, d := tableSums(t, src), tableSums(t, dst)
		differ = nil
		for _, tb := range move.Tables {
			if s[tb.Name] != d[tb.Name] {
				differ = append(differ, fmt.Sprintf("%s: source %s, target %s (rows/hash)", tb.Name, s[tb.Name], d[tb.Name]))
			}
		}
		return len(differ) == 0
	})
	for _, d := range differ {
		t.Error(d)
	}
}

// checkRollups checks that the presence rollups of region 05 at dsn equal
// what its presences give.
func checkRollups(t *testing.T, dsn string) {
	t.Helper()
	for _, q := range []struct{ name, sql string }{
		{"presence_daily", `
			SELECT count(*) FROM (SELECT market_id, date, kind, count(*) AS n FROM vendor_presences WHERE region_id = 5 GROUP BY 1, 2, 3) p
			FULL JOIN (SELECT market_id, date, kind, n FROM presence_daily WHERE region_id = 5 AND n > 0) d USING (market_id, date, kind)
			WHERE p.n IS DISTINCT FROM d.n`},
		{"presence_monthly", `
			SELECT count(*) FROM (SELECT date_trunc('month', date)::date AS month, kind, count(*) AS n FROM vendor_presences WHERE region_id = 5 GROUP BY 1, 2) p
			FULL JOIN (SELECT month, kind, sum(n) AS n FROM presence_monthly WHERE region_id = 5 GROUP BY 1, 2 HAVING sum(n) > 0) m USING (month, kind)
			WHERE p.n IS DISTINCT FROM m.n`},
	} {
		if n := queryInt(t, dsn, q.sql); n != 0 {
			t.Errorf("%s: %d rows differ from what vendor_presences give", q.name, n)
		}
	}
}

// checkSequences checks that every per-region sequence of region 05 on the
// target has given (or is past) every id the source holds.
func checkSequences(t *testing.T, src, dst string) {
	t.Helper()
	for _, table := range []string{"markets", "stalls", "vendors", "concessions", "vendor_presences", "audit_log"} {
		lo, hi := move.Table{Key: "id"}.KeyRange(movedRegion)
		used := queryInt(t, src, fmt.Sprintf(`SELECT coalesce(max(id), %[2]d) - %[2]d FROM public.%[1]s WHERE id >= %[2]d AND id < %[3]d`, table, lo, hi))
		seq := migrations.IDSequence(table, movedRegion)
		given := queryInt(t, dst, `SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM `+seq)
		if given < used {
			t.Errorf("%s on the target has given %d, want at least %d (the source's highest %s id)", seq, given, used, table)
		}
	}
}

// checkReplays sends again, through the router at addr, up to ten
// check-ins answered before the switch at switched, with their keys, and
// checks that each answer is the first one, replayed.
func checkReplays(t *testing.T, addr, token string, acc []accepted, switched time.Time) {
	t.Helper()
	n := 0
	for _, a := range acc {
		if a.id == 0 || !a.at.Before(switched) || n == 10 {
			continue
		}
		n++
		status, body := post(t, addr, token, a.path, a.idem, string(a.body))
		var p struct{ ID int64 }
		json.Unmarshal(body, &p)
		if status != a.status || p.ID != a.id {
			t.Errorf("replay of %s with key %s = %d %s, want %d with id %d", a.path, a.idem, status, body, a.status, a.id)
		}
	}
	if n == 0 {
		t.Error("no check-in was answered before the switch")
	}
}

// logLine returns the first line of logs that holds every one of want,
// or "".
func logLine(logs *clitest.Buffer, want ...string) string {
	for line := range strings.Lines(logs.String()) {
		if !slices.ContainsFunc(want, func(w string) bool { return !strings.Contains(line, w) }) {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// switchedAt returns when the newest epoch was written.
func switchedAt(t *testing.T, ctlDSN string) time.Time {
	return queryTime(t, ctlDSN, `SELECT created_at FROM control.epochs ORDER BY epoch DESC LIMIT 1`)
}

// ownershipWatch samples which shard owns region 05 while a test runs.
type ownershipWatch struct {
	cancel context.CancelFunc
	done   chan ownership
}

// ownership is what an ownershipWatch saw.
type ownership struct {
	samples, bothWritable, noneOwned int
	errs                             []string
}

// watchOwnership samples dms.shard_regions of region 05 on the source (at
// src) and the target (at dst) every 50ms until stop. The two servers are
// read one after the other, never at one instant, so each sample reads
// the target, the source and the target again: the move makes the target
// owner before the source gives the region up, and freezes the source
// before either, so two writable owners show only when the target is read
// writable before the source is, and no owner only when the source is
// read unowned before the target is read owned.
func watchOwnership(t *testing.T, src, dst string) *ownershipWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &ownershipWatch{cancel: cancel, done: make(chan ownership, 1)}
	srcConn, dstConn := pgtest.Connect(t, src), pgtest.Connect(t, dst)
	go func() {
		var o ownership
		defer func() { w.done <- o }()
		for ctx.Err() == nil {
			t1, err1 := fenceOf(dstConn)
			s, err2 := fenceOf(srcConn)
			t2, err3 := fenceOf(dstConn)
			if err := errors.Join(err1, err2, err3); err != nil {
				if ctx.Err() == nil {
					o.errs = append(o.errs, err.Error())
				}
				return
			}
			o.samples++
			if t1.writable && s.writable {
				o.bothWritable++
			}
			if !s.owned && !t2.owned {
				o.noneOwned++
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return w
}

func (w *ownershipWatch) stop() ownership {
	w.cancel()
	return <-w.done
}

func (o ownership) check(t *testing.T) {
	t.Helper()
	t.Logf("ownership of region %s sampled %d times", movedRegion, o.samples)
	for _, e := range o.errs {
		t.Errorf("sampling the ownership: %s", e)
	}
	if o.samples < 10 {
		t.Errorf("ownership sampled %d times, want at least 10", o.samples)
	}
	if o.bothWritable != 0 {
		t.Errorf("%d samples saw region %s owned and not frozen on both shards", o.bothWritable, movedRegion)
	}
	if o.noneOwned != 0 {
		t.Errorf("%d samples saw region %s owned by no shard", o.noneOwned, movedRegion)
	}
}

// fence is one shard's fence of region 05.
type fence struct{ owned, writable bool }

func fenceOf(conn *pgx.Conn) (fence, error) {
	var f fence
	err := conn.QueryRow(context.Background(), `
		SELECT coalesce(bool_or(owned), false), coalesce(bool_or(owned AND NOT frozen), false)
		FROM dms.shard_regions WHERE region_id = $1`, movedRegion.Num()).Scan(&f.owned, &f.writable)
	return f, err
}

// watch records, per router, when its /v1/regions first shows region 05
// on a shard.
type watch struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	seen   []time.Time
}

// watchRegion polls the routers' /v1/regions every 25ms until each shows
// region 05 on shard, or until stop.
func watchRegion(routers []*router, token, shard string) *watch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &watch{cancel: cancel, seen: make([]time.Time, len(routers))}
	for i, r := range routers {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for ctx.Err() == nil {
				if regionOn(r.addr, token) == shard {
					w.seen[i] = time.Now()
					return
				}
				select {
				case <-ctx.Done():
				case <-time.After(25 * time.Millisecond):
				}
			}
		}()
	}
	return w
}

// stop returns when each router first showed the shard; zero if never.
func (w *watch) stop() []time.Time {
	w.cancel()
	w.wg.Wait()
	return w.seen
}

// regionOn returns the shard the router at addr names for region 05, or
// "" when it does not answer.
func regionOn(addr, token string) string {
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/regions", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	defer res.Body.Close()
	var body regionsPage
	if json.NewDecoder(res.Body).Decode(&body) != nil {
		return ""
	}
	for _, it := range body.Items {
		if it.Code == string(movedRegion) {
			return it.Shard
		}
	}
	return ""
}

// scrape returns the metrics of the router whose log is logs.
func scrape(t *testing.T, logs *clitest.Buffer) string {
	t.Helper()
	var url string
	for _, line := range strings.Split(logs.String(), "\n") {
		var rec struct{ Msg, URL string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "serving metrics" {
			url = rec.URL
		}
	}
	if url == "" {
		t.Fatalf("the router did not log where it serves metrics:\n%s", logs.String())
	}
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var b strings.Builder
	if _, err := io.Copy(&b, res.Body); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// post sends a JSON write with an Idempotency-Key and returns the answer.
func post(t *testing.T, addr, token, path, idem, body string) (int, []byte) {
	t.Helper()
	status, _, b, err := send(http.DefaultClient, addr, token, http.MethodPost, path, idem, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return status, b
}

// get sends a read and returns the answer.
func get(t *testing.T, addr, token, path string) (int, []byte) {
	t.Helper()
	status, _, b, err := send(http.DefaultClient, addr, token, http.MethodGet, path, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	return status, b
}

// queryRows returns the rows of sql at dsn, each as its values.
func queryRows(t *testing.T, dsn, sql string, args ...any) [][]any {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, _ := conn.Query(context.Background(), sql, args...)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]any, error) { return r.Values() })
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

func queryTime(t *testing.T, dsn, sql string) time.Time {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var at time.Time
	if err := conn.QueryRow(context.Background(), sql).Scan(&at); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return at
}

// quotedDB returns the quoted name of the database dsn connects to.
func quotedDB(t *testing.T, dsn string) string {
	t.Helper()
	c, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return pgx.Identifier{c.Database}.Sanitize()
}

// goCommand returns the go command that runs this test.
func goCommand(t *testing.T) string {
	t.Helper()
	// go test puts its own GOROOT/bin first on the PATH of the test binary.
	path, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("find the go command: %v", err)
	}
	return path
}

// runFor runs cmd and kills it if it has not ended within d.
func runFor(cmd *exec.Cmd, d time.Duration) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	timer := time.AfterFunc(d, func() { cmd.Process.Kill() })
	defer timer.Stop()
	return cmd.Wait()
}

// firstN returns the first n items of s at most.
func firstN(s []string, n int) []string { return s[:min(n, len(s))] }
