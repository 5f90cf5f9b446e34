package move

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dmshub/dmsrouter/control"
	"github.com/dmshub/dmsrouter/migrations"
	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/seed"
	"github.com/dmshub/dmsrouter/shardmap"
)

// moveEnv is a deployment to move region 05 in: shard src holds it, shard
// rest every other region (both on one cluster), shard dst (on another
// cluster, or on the same one) none; a control database assigns the
// regions so. The rows of every region are seeded.
type moveEnv struct {
	cfg    shardmap.Config
	ctlDSN string
	admin  map[string]*pgx.Conn // per shard, superuser
}

// newMoveEnv builds a moveEnv; with apart, dst is a database of a cluster
// of its own.
func newMoveEnv(t *testing.T, name string, apart bool) *moveEnv {
	t.Helper()
	ctx := context.Background()
	srv := pgtest.StartOwned(t)
	cfg := pgtest.NewDeployment(t, srv, name, pgtest.Split("rest", pgtest.Layout{region: "src"}))
	if _, err := seed.Run(ctx, cfg, seed.Options{Markets: 60, Days: 3, Seed: 11}); err != nil {
		t.Fatalf("seed: %v", err)
	}
	dstSrv := srv
	if apart {
		dstSrv = pgtest.StartOwned(t)
	}
	db := pgtest.Prefix(name + "_dst")
	if err := dstSrv.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	dst := shardmap.ShardConfig{Name: "dst", Primary: dstSrv.DSN(db, "dms_app"), Admin: dstSrv.AdminDB(db), MaxConns: 4}
	for _, r := range migrations.Up(ctx, []migrations.Target{{Name: "dst", DSN: dst.Admin}}) {
		if r.Err != nil {
			t.Fatalf("migrate dst: %v", r.Err)
		}
	}
	cfg.Shards = append(cfg.Shards, dst)

	ctlDB := pgtest.Prefix(name + "_control")
	if err := srv.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{ctlDB}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	e := &moveEnv{cfg: cfg, ctlDSN: srv.AdminDB(ctlDB), admin: map[string]*pgx.Conn{}}
	if r := control.Migrate(ctx, e.ctlDSN, cfg.Regions); r.Err != nil {
		t.Fatalf("migrate control: %v", r.Err)
	}
	for _, s := range cfg.Shards {
		e.admin[s.Name] = connect(t, s.AdminDSN())
	}
	return e
}

// mover returns a Mover of e whose progress goes to t's log, with step as
// its test hook.
func (e *moveEnv) mover(t *testing.T, step func(string) error) *Mover {
	return New(e.cfg, e.ctlDSN, Options{Poll: 50 * time.Millisecond, Out: logWriter{t}, step: step})
}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// move prepares and runs a move of region 05 to dst with m.
func (e *moveEnv) move(t *testing.T, m *Mover) (Record, error) {
	t.Helper()
	ctx := context.Background()
	p, err := m.Prepare(ctx, region, "dst")
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if !p.OK() {
		var b bytes.Buffer
		PrintChecks(&b, p.Checks)
		t.Fatalf("preflight failed:\n%s", b.String())
	}
	return m.Move(ctx, p)
}

// assigned returns the shard the control database assigns region 05 and
// the current epoch.
func (e *moveEnv) assigned(t *testing.T) (string, int64) {
	t.Helper()
	conn := connect(t, e.ctlDSN)
	cur, err := control.Current(context.Background(), conn)
	if err != nil {
		t.Fatal(err)
	}
	return cur.Regions[string(region)], cur.Epoch
}

// owners returns the shards whose database serves region 05.
func (e *moveEnv) owners(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, name := range []string{"src", "dst"} {
		_, owned, err := serving(context.Background(), e.admin[name], region)
		if err != nil {
			t.Fatal(err)
		}
		if owned {
			out = append(out, name)
		}
	}
	return out
}

// checkOwner fails t unless exactly shard want serves region 05.
func (e *moveEnv) checkOwner(t *testing.T, when, want string) {
	t.Helper()
	if got := e.owners(t); len(got) != 1 || got[0] != want {
		t.Fatalf("%s: region 05 is served by %v, want exactly [%s]", when, got, want)
	}
}

// rows returns the region's rows per table on shard name.
func (e *moveEnv) rows(t *testing.T, name string) map[string]int64 {
	t.Helper()
	n, err := RegionRows(context.Background(), e.admin[name], region, nil)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// checkEmpty fails t when shard name holds a row of region 05, its fence
// row, or a replication object of a move.
func (e *moveEnv) checkEmpty(t *testing.T, name string) {
	t.Helper()
	for table, n := range e.rows(t, name) {
		if n != 0 {
			t.Errorf("shard %s holds %d rows of region 05 in %s", name, n, table)
		}
	}
	if held, _, _ := serving(context.Background(), e.admin[name], region); held {
		t.Errorf("shard %s still holds region 05 in dms.shard_regions", name)
	}
}

// checkNoObjects fails t when a shard holds a move's publication, slot or
// subscription.
func (e *moveEnv) checkNoObjects(t *testing.T) {
	t.Helper()
	for name, conn := range e.admin {
		os, err := Orphans(context.Background(), conn, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(os) > 0 {
			t.Errorf("shard %s holds %v after the move ended", name, os)
		}
	}
}

// checkRollups fails t when the presence rollups of shard name differ from
// what its presences of region 05 give.
func (e *moveEnv) checkRollups(t *testing.T, name string) {
	t.Helper()
	var diff int64
	err := e.admin[name].QueryRow(context.Background(), `
		WITH truth AS (SELECT market_id, date, kind, count(*)::int AS n FROM vendor_presences WHERE region_id = $1 GROUP BY 1, 2, 3),
		     roll AS (SELECT market_id, date, kind, n FROM presence_daily WHERE region_id = $1 AND n > 0)
		SELECT count(*) FROM ((SELECT * FROM truth EXCEPT SELECT * FROM roll) UNION ALL (SELECT * FROM roll EXCEPT SELECT * FROM truth)) x`,
		region.Num()).Scan(&diff)
	if err != nil {
		t.Fatal(err)
	}
	if diff != 0 {
		t.Errorf("shard %s: presence_daily differs from its presences of region 05 in %d (market, day, kind) rows", name, diff)
	}
}

// checkCounted fails t when the copy left an empty table or partition of
// shard name counted (pg_class.reltuples 0 rather than never counted, -1:
// VacuumAnalyze), or counted none of the presences' partitions that hold
// rows.
func (e *moveEnv) checkCounted(t *testing.T, name string) {
	t.Helper()
	ctx := context.Background()
	counted := 0
	for _, table := range Tables {
		rows, _ := e.admin[name].Query(ctx, leavesSQL, table.Name)
		leaves, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		for _, leaf := range leaves {
			var holds bool
			var tuples float64
			if err := e.admin[name].QueryRow(ctx, "SELECT EXISTS (SELECT FROM "+leaf+"), (SELECT reltuples FROM pg_class WHERE oid = $1::regclass)", leaf).Scan(&holds, &tuples); err != nil {
				t.Fatal(err)
			}
			switch {
			case !holds && tuples != -1:
				t.Errorf("shard %s: the empty %s is counted (reltuples %v), want never counted (-1)", name, leaf, tuples)
			case holds && tuples > 0 && table.Partitioned:
				counted++
			}
		}
	}
	if counted == 0 {
		t.Errorf("shard %s: no partition of the presences holding rows is counted", name)
	}
}

// settled waits until shard to has applied what shard from committed.
func (e *moveEnv) settled(t *testing.T, from, to string) {
	t.Helper()
	if err := settle(context.Background(), e.admin[from], e.admin[to], region, time.Minute); err != nil {
		t.Fatal(err)
	}
}

// writer writes presences of region 05 as dms_app through the fence, as a
// router does: to the shard the control database assigns, reloading the
// assignment when the fence says the region moved, retrying a write the
// fence refused while the region is frozen.
type writer struct {
	e       *moveEnv
	markets []writerMarket
	vendors []int64

	mu      sync.Mutex
	acked   map[int64]string // id -> the shard that answered
	refused int              // writes refused by the fence
	err     error
	stop    chan struct{}
	done    chan struct{}
}

type writerMarket struct {
	ID     int64
	Comune string
}

// writeEvery paces the writer, so that its presences fit in the months
// ahead that have partitions.
const writeEvery = 5 * time.Millisecond

func (e *moveEnv) startWriter(t *testing.T) *writer {
	t.Helper()
	w := &writer{e: e, acked: map[int64]string{}, stop: make(chan struct{}), done: make(chan struct{})}
	ctx := context.Background()
	src := e.admin["src"]
	rows, _ := src.Query(ctx, `SELECT id, comune FROM markets WHERE region_id = $1 ORDER BY id`, region.Num())
	var err error
	if w.markets, err = pgx.CollectRows(rows, pgx.RowToStructByPos[writerMarket]); err != nil || len(w.markets) == 0 {
		t.Fatalf("markets of region 05: %v (%d)", err, len(w.markets))
	}
	rows, _ = src.Query(ctx, `SELECT id FROM vendors WHERE region_id = $1 ORDER BY id`, region.Num())
	if w.vendors, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil || len(w.vendors) == 0 {
		t.Fatalf("vendors of region 05: %v (%d)", err, len(w.vendors))
	}
	go w.run()
	t.Cleanup(func() { w.halt(t) })
	return w
}

func (w *writer) run() {
	defer close(w.done)
	ctx := context.Background()
	conns := map[string]*pgx.Conn{}
	defer func() {
		for _, c := range conns {
			c.Close(ctx)
		}
	}()
	fail := func(err error) {
		w.mu.Lock()
		w.err = err
		w.mu.Unlock()
	}
	ctl, err := pgx.Connect(ctx, w.e.ctlDSN)
	if err != nil {
		fail(err)
		return
	}
	defer ctl.Close(ctx)
	shard := ""
	// The seed's today is Rome's: between midnight in Rome and midnight
	// UTC the UTC date is a day behind, and its next day already seeded.
	rome, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		fail(err)
		return
	}
	now := time.Now().In(rome)
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	for i := 0; ; {
		select {
		case <-w.stop:
			return
		default:
		}
		if shard == "" {
			cur, err := control.Current(ctx, ctl)
			if err != nil {
				fail(err)
				return
			}
			shard = cur.Regions[string(region)]
		}
		conn := conns[shard]
		if conn == nil {
			for _, s := range w.e.cfg.Shards {
				if s.Name == shard {
					if conn, err = pgx.Connect(ctx, s.Primary); err != nil {
						fail(err)
						return
					}
					conns[shard] = conn
				}
			}
		}
		// Presences of days ahead, which the seed (up to today) left free:
		// each day every vendor at every market once.
		perDay := len(w.vendors) * len(w.markets)
		day := today.AddDate(0, 0, 1+i/perDay)
		mk, vendor := w.markets[i%len(w.markets)], w.vendors[(i/len(w.markets))%len(w.vendors)]
		b := &pgx.Batch{}
		b.Queue(`SELECT set_config('dms.region', $1, true), dms.fence($1, true)`, string(region))
		var id int64
		b.Queue(`INSERT INTO vendor_presences (id, region_id, market_id, comune, vendor_id, stall_id, date, kind, checkin_at)
			VALUES (dms.next_id('vendor_presences', $1), $1, $2, $3, $4, NULL, $5, 'SPUNTA', $5::date + time '09:00')
			RETURNING id`, region.Num(), mk.ID, mk.Comune, vendor, day).QueryRow(func(row pgx.Row) error {
			return row.Scan(&id)
		})
		err := conn.SendBatch(ctx, b).Close()
		var pgErr *pgconn.PgError
		switch {
		case err == nil:
			w.mu.Lock()
			w.acked[id] = shard
			w.mu.Unlock()
			i++
			time.Sleep(writeEvery)
		case errors.As(err, &pgErr) && (pgErr.Code == "DMF01" || pgErr.Code == "DMF02"):
			w.mu.Lock()
			w.refused++
			w.mu.Unlock()
			if pgErr.Code == "DMF01" {
				shard = ""
			}
			time.Sleep(2 * time.Millisecond)
		default:
			fail(fmt.Errorf("write %d on %s: %w", i, shard, err))
			return
		}
	}
}

// halt stops the writer and fails t if it failed.
func (w *writer) halt(t *testing.T) {
	t.Helper()
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
	if w.err != nil {
		t.Errorf("writer: %v", w.err)
	}
}

// ackedOn returns how many writes shard answered so far.
func (w *writer) ackedOn(shard string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, s := range w.acked {
		if s == shard {
			n++
		}
	}
	return n
}

// waitAcked waits until shard answered n more writes than now.
func (w *writer) waitAcked(t *testing.T, shard string, n int) {
	t.Helper()
	want := w.ackedOn(shard) + n
	deadline := time.Now().Add(time.Minute)
	for w.ackedOn(shard) < want {
		if time.Now().After(deadline) {
			t.Fatalf("the writer did not get %d writes answered by %s", n, shard)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ids returns the ids of the writes answered so far.
func (w *writer) ids() []int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	ids := make([]int64, 0, len(w.acked))
	for id := range w.acked {
		ids = append(ids, id)
	}
	return ids
}

// checkAcked fails t unless every write the writer had answered is on
// shard name exactly once.
func (w *writer) checkAcked(t *testing.T, e *moveEnv, name string) {
	t.Helper()
	checkIDs(t, e, name, w.ids())
}

// checkIDs fails t unless every presence of ids is on shard name.
func checkIDs(t *testing.T, e *moveEnv, name string, ids []int64) {
	t.Helper()
	var found int
	if err := e.admin[name].QueryRow(context.Background(), `SELECT count(*) FROM vendor_presences WHERE id = ANY ($1)`, ids).Scan(&found); err != nil {
		t.Fatal(err)
	}
	if found != len(ids) {
		t.Errorf("shard %s holds %d of the %d presences written and answered", name, found, len(ids))
	}
}

// checkSame fails t unless shards a and b hold the same number of region
// 05's rows in every table.
func (e *moveEnv) checkSame(t *testing.T, a, b string) {
	t.Helper()
	ra, rb := e.rows(t, a), e.rows(t, b)
	for _, tb := range Tables {
		if ra[tb.Name] != rb[tb.Name] {
			t.Errorf("%s: %s holds %d rows of region 05, %s %d", tb.Name, a, ra[tb.Name], b, rb[tb.Name])
		}
	}
	if ra["public.vendor_presences"] == 0 || ra["public.markets"] == 0 {
		t.Errorf("%s holds no markets or presences of region 05: %v", a, ra)
	}
}

func TestMoveRollbackMoveComplete(t *testing.T) {
	e := newMoveEnv(t, "mvrb", true)
	ctx := context.Background()
	w := e.startWriter(t)
	w.waitAcked(t, "src", 20)
	_, epoch0 := e.assigned(t)

	m := e.mover(t, nil)
	rec, err := e.move(t, m)
	if err != nil {
		t.Fatalf("Move: %v", err)
	}
	if rec.Phase != Switched || rec.EpochAfter == nil || *rec.EpochAfter != epoch0+1 || rec.Freeze == nil {
		t.Fatalf("Move = %+v, want phase switched, epoch %d, a freeze measured", rec, epoch0+1)
	}
	if shard, epoch := e.assigned(t); shard != "dst" || epoch != epoch0+1 {
		t.Fatalf("after the move epoch %d assigns region 05 to %s, want epoch %d, dst", epoch, shard, epoch0+1)
	}
	e.checkOwner(t, "after the move", "dst")
	e.checkCounted(t, "dst")
	if _, err := e.admin["src"].Exec(ctx, `SELECT dms.fence($1, false)`, string(region)); !isCode(err, "DMF01") {
		t.Errorf("a read of region 05 on the source after the move: %v, want SQLSTATE DMF01", err)
	}
	w.waitAcked(t, "dst", 20) // writes through the fence land on the target now
	w.checkAcked(t, e, "dst")
	written := w.ids()
	e.settled(t, "dst", "src") // the reverse stream carries them back
	checkIDs(t, e, "src", written)
	e.checkRollups(t, "dst")
	var behind bool
	if err := e.admin["dst"].QueryRow(ctx, `
		SELECT (SELECT last_value FROM dms.vendor_presences_id_05) < (SELECT max(id) & ((1::int8 << 48) - 1) FROM vendor_presences WHERE region_id = 5)`).Scan(&behind); err != nil || behind {
		t.Errorf("the target's presence sequence is behind the ids it holds (%v)", err)
	}

	// Rollback after writes on the target: they are back on the source.
	if _, _, err := m.Rollback(ctx, region); err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	if shard, epoch := e.assigned(t); shard != "src" || epoch != epoch0+2 {
		t.Fatalf("after the rollback epoch %d assigns region 05 to %s, want epoch %d, src", epoch, shard, epoch0+2)
	}
	e.checkOwner(t, "after the rollback", "src")
	w.waitAcked(t, "src", 20)
	w.checkAcked(t, e, "src")
	e.checkEmpty(t, "dst")
	e.checkNoObjects(t)
	e.checkRollups(t, "src")

	// Move again, and complete.
	if _, err := e.move(t, m); err != nil {
		t.Fatalf("Move again: %v", err)
	}
	w.waitAcked(t, "dst", 10)
	w.halt(t)
	rec, removed, err := m.Complete(ctx, region)
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	if rec.Phase != Completed {
		t.Errorf("Complete: phase %s, want completed", rec.Phase)
	}
	var presences int64
	for _, r := range removed {
		if r.Table == "public.vendor_presences" {
			presences = r.Rows
		}
	}
	if presences == 0 {
		t.Errorf("Complete removed %+v, want the presences among them", removed)
	}
	w.checkAcked(t, e, "dst")
	e.checkEmpty(t, "src")
	e.checkNoObjects(t)
	e.checkOwner(t, "after complete", "dst")
	e.checkRollups(t, "dst")
}

func isCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}

// crashAt returns a step hook that kills the command at step name, once.
func crashAt(name string, kill bool) func(string) error {
	done := false
	return func(step string) error {
		if step != name || done {
			return nil
		}
		done = true
		if kill {
			return fmt.Errorf("test crash at %s: %w", step, errKilled)
		}
		return fmt.Errorf("test failure at %s", step)
	}
}

func TestMoveCrashesSameCluster(t *testing.T) {
	e := newMoveEnv(t, "mvcrash", false)
	ctx := context.Background()
	w := e.startWriter(t)
	w.waitAcked(t, "src", 10)
	_, epoch0 := e.assigned(t)

	for _, tc := range []struct {
		step  string
		kill  bool // the process dies: nothing is undone
		phase Phase
	}{
		{"copy", true, Copying},
		{"catch_up", true, CatchingUp},
		{"reverse_slot", true, Switching},
		{"owned", false, CatchingUp}, // a failure inside the freeze is undone at once
	} {
		_, err := e.move(t, e.mover(t, crashAt(tc.step, tc.kill)))
		if err == nil {
			t.Fatalf("Move with a crash at %s succeeded", tc.step)
		}
		e.checkOwner(t, "after a crash at "+tc.step, "src")
		if shard, epoch := e.assigned(t); shard != "src" || epoch != epoch0 {
			t.Fatalf("after a crash at %s epoch %d assigns region 05 to %s", tc.step, epoch, shard)
		}
		conn := connect(t, e.ctlDSN)
		rec, err := activeMove(ctx, conn, region)
		if err != nil || rec.Phase != tc.phase {
			t.Fatalf("after a crash at %s the move is %+v (%v), want phase %s", tc.step, rec, err, tc.phase)
		}
	}
	rec, err := e.move(t, e.mover(t, nil))
	if err != nil || rec.Phase != Switched {
		t.Fatalf("Move after the crashes = %s, %v; want switched", rec.Phase, err)
	}
	e.checkOwner(t, "after the move", "dst")
	w.waitAcked(t, "dst", 10)
	w.halt(t)
	w.checkAcked(t, e, "dst")
	e.settled(t, "dst", "src")
	e.checkSame(t, "src", "dst")
	e.checkRollups(t, "dst")

	if _, _, err := e.mover(t, crashAt("delete", true)).Complete(ctx, region); err == nil {
		t.Fatal("Complete with a crash at delete succeeded")
	}
	if _, _, err := e.mover(t, nil).Complete(ctx, region); err != nil {
		t.Fatalf("Complete after a crash: %v", err)
	}
	e.checkEmpty(t, "src")
	e.checkNoObjects(t)
	w.checkAcked(t, e, "dst")
}

func TestAbort(t *testing.T) {
	e := newMoveEnv(t, "mvabort", false)
	ctx := context.Background()
	shard0, epoch0 := e.assigned(t)
	before := e.rows(t, "src")
	if _, err := e.move(t, e.mover(t, crashAt("catch_up", true))); err == nil {
		t.Fatal("Move with a crash at catch_up succeeded")
	}
	if e.rows(t, "dst")["public.markets"] == 0 {
		t.Fatal("the move copied no market before the crash")
	}
	if _, err := e.mover(t, nil).Prepare(ctx, region, "rest"); !errors.Is(err, ErrActive) {
		t.Errorf("Prepare of a move to another shard during a move = %v, want ErrActive", err)
	}
	rec, _, err := e.mover(t, nil).Abort(ctx, region)
	if err != nil || rec.Phase != Aborted {
		t.Fatalf("Abort = %s, %v; want aborted", rec.Phase, err)
	}
	e.checkEmpty(t, "dst")
	e.checkNoObjects(t)
	e.checkOwner(t, "after abort", "src")
	if shard, epoch := e.assigned(t); shard != shard0 || epoch != epoch0 {
		t.Errorf("after abort epoch %d assigns region 05 to %s, want epoch %d, %s", epoch, shard, epoch0, shard0)
	}
	if after := e.rows(t, "src"); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("abort changed the source's rows: %v, before %v", after, before)
	}
	if _, _, err := e.mover(t, nil).Abort(ctx, region); !errors.Is(err, ErrNoMove) {
		t.Errorf("Abort with no move = %v, want ErrNoMove", err)
	}
}
