package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/term"

	"github.com/dmshub/dmsrouter/internal/clitest"
	"github.com/dmshub/dmsrouter/migrations"
	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// TestControl runs the region assignments through the control database
// end to end: migrate up seeds epoch 1 from the file; routers follow the
// epochs that shards apply writes (by NOTIFY, and by polling when the
// NOTIFY is missed); shards apply refuses a bad file and writes nothing; a
// router keeps serving its last epoch while the control database is gone,
// and one started meanwhile serves the file's regions until it is back.
func TestControl(t *testing.T) {
	ctx := context.Background()
	cfg, ctlDB, path := controlDeployment(t, "ctl", "  poll_interval: 300ms\n")
	ctlDSN := pg.AdminDB(ctlDB)

	// migrate up seeds epoch 1 from the file's regions, once.
	for i, want := range []string{"seeded epoch 1 from the file's regions", "up to date"} {
		out := runOK(t, "migrate", "up", "--config", path)
		line := lastLine(out)
		if f := strings.Fields(line); len(f) < 6 || f[0] != "control" || f[1]+" "+f[2] != "epoch 1" || !strings.Contains(line, want) {
			t.Errorf("migrate up #%d: control line = %q, want control epoch 1 ... %s", i+1, line, want)
		}
		if i == 1 && strings.Contains(line, "seeded") {
			t.Errorf("migrate up seeded again: %q", line)
		}
	}
	if got := queryInt(t, ctlDSN, `SELECT count(*) FROM control.assignments a JOIN control.epochs USING (epoch) WHERE epoch = 1 AND shard = CASE WHEN region_id = '20' THEN 'b' ELSE 'a' END`); got != 20 {
		t.Errorf("epoch 1 holds %d of the file's 20 assignments", got)
	}
	latest, err := migrations.ControlLatest()
	if err != nil {
		t.Fatal(err)
	}
	wantStatus := fmt.Sprintf("control epoch 1 %d %d up to date", latest, latest)
	if line := strings.Join(strings.Fields(lastLine(runOK(t, "migrate", "status", "--config", path))), " "); line != wantStatus {
		t.Errorf("migrate status: control line = %q, want %q", line, wantStatus)
	}
	token := strings.TrimSpace(runOK(t, "token", "--config", path, "--sub", "ops", "--role", "auditor", "--territory", "national", "--ttl", "10m"))

	// Two routers: r1 polls every 300ms; r2 every minute, so within this
	// test it learns of a new epoch only by NOTIFY.
	r1 := startRouter(t, path, map[string]string{"DMSROUTER_CONTROL_ROUTER_ID": "r1"})
	r2 := startRouter(t, path, map[string]string{"DMSROUTER_CONTROL_ROUTER_ID": "r2", "DMSROUTER_CONTROL_POLL_INTERVAL": "1m"})
	for _, r := range []*router{r1, r2} {
		r.waitEpoch(t, token, 1, "03", "a")
	}
	waitFor(t, "both routers recorded epoch 1", func() bool {
		return queryInt(t, ctlDSN, `SELECT count(*) FROM control.routers WHERE router_id IN ('r1', 'r2') AND epoch_applied = 1`) == 2
	})

	// A bad regions file is refused, naming the problem, and writes nothing.
	moved := maps(cfg.Regions, "03", "b")
	missing := maps(cfg.Regions, "03", "b")
	delete(missing, "07")
	bad := []struct {
		name    string
		regions map[string]string
		flags   []string
		want    string
	}{
		{"unknown shard", maps(cfg.Regions, "03", "zz"), []string{"--yes"}, `regions.03: unknown shard "zz"`},
		{"region missing", missing, []string{"--yes"}, "regions.07: region 07 (Liguria) is not mapped to a shard"},
		{"unknown region", maps(moved, "21", "a"), []string{"--yes"}, "regions.21: unknown region code"},
	}
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		bad = append(bad, struct {
			name    string
			regions map[string]string
			flags   []string
			want    string
		}{"no terminal, no --yes", moved, nil, "stdin is not a terminal: pass --yes"})
	}
	for _, tc := range bad {
		t.Run("apply refuses "+tc.name, func(t *testing.T) {
			args := append([]string{"shards", "apply", "--config", path, "--regions", regionsFile(t, tc.regions)}, tc.flags...)
			var out, errOut clitest.Buffer
			err := run(ctx, args, clitest.NoEnv, &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "nothing was written") {
				t.Errorf("shards apply (%s) = %v, want an error naming %q and saying nothing was written", tc.name, err, tc.want)
			}
			if n := queryInt(t, ctlDSN, `SELECT max(epoch) FROM control.epochs`); n != 1 {
				t.Errorf("after a refused apply the epoch is %d, want 1", n)
			}
		})
	}

	// shards apply writes epoch 2; both routers apply it, r2 by NOTIFY.
	out := runOK(t, "shards", "apply", "--config", path, "--regions", regionsFile(t, moved), "--yes", "--wait", "30s")
	for _, want := range []string{"epoch 1 -> 2:\n  03 Lombardia: a -> b\n", "epoch 2 written", "r1 (", "r2 (", "every live router applied epoch 2 (2)"} {
		if !strings.Contains(out, want) {
			t.Errorf("shards apply printed:\n%s\nwant it to contain %q", out, want)
		}
	}
	for _, r := range []*router{r1, r2} {
		r.waitEpoch(t, token, 2, "03", "b")
	}
	if out := runOK(t, "shards", "apply", "--config", path, "--regions", regionsFile(t, moved), "--yes"); !strings.Contains(out, "nothing to apply") {
		t.Errorf("shards apply of the current assignments printed %q, want nothing to apply", out)
	}

	// r1's LISTEN connection is killed and epoch 3 is written with no
	// NOTIFY at all: r1 catches up by polling.
	if n := queryInt(t, ctlDSN, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'dmsrouter listen r1'`); n != 1 {
		t.Fatalf("terminated %d LISTEN connections of r1, want 1", n)
	}
	waitForLog(t, r1.logs, "LISTEN connection lost")
	execSQL(t, ctlDSN, `
		INSERT INTO control.epochs (epoch, note) VALUES (3, 'written without NOTIFY');
		INSERT INTO control.assignments SELECT 3, region_id, CASE WHEN region_id = '05' THEN 'b' ELSE shard END FROM control.assignments WHERE epoch = 2`)
	r1.waitEpoch(t, token, 3, "05", "b")
	waitFor(t, "r1 recorded epoch 3", func() bool {
		return queryInt(t, ctlDSN, `SELECT epoch_applied FROM control.routers WHERE router_id = 'r1'`) == 3
	})

	// SIGHUP reloads the file's shards; the regions stay the control
	// database's (the file still says 03: a).
	appendFile(t, path, "") // unchanged regions
	withSpare := strings.Replace(clitest.ReadFile(t, path), "regions:\n", fmt.Sprintf("  - name: spare\n    primary: %q\nregions:\n", cfg.Shards[1].Primary), 1)
	os.WriteFile(path, []byte(withSpare), 0o600)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitForLog(t, r1.logs, `"change":"shard added","name":"spare"`)
	r1.waitEpoch(t, token, 3, "03", "b")

	// The control database goes away: r1 keeps serving epoch 3 and says
	// so; r3, started meanwhile, serves the file's regions until it is back.
	execSQL(t, pg.AdminDSN, "ALTER DATABASE "+pgx.Identifier{ctlDB}.Sanitize()+" ALLOW_CONNECTIONS false")
	execSQL(t, pg.AdminDSN, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '"+ctlDB+"'")
	waitForLog(t, r1.logs, "control database: unreachable: serving epoch 3 until it answers")
	if st := r1.readyz(t); st.status != http.StatusOK || st.Control.Status != "unreachable" || st.Control.Epoch != 3 || st.Control.RouterID != "r1" {
		t.Errorf("r1 /readyz with the control database gone = %d %s %v %+v, want 200 and control unreachable at epoch 3", st.status, st.Status, st.Shards, st.Control)
	}
	r1.waitEpoch(t, token, 3, "03", "b")
	r3 := startRouter(t, path, map[string]string{"DMSROUTER_CONTROL_ROUTER_ID": "r3"})
	waitForLog(t, r3.logs, "CONTROL DATABASE UNREACHABLE AT START: serving the file's regions")
	r3.waitEpoch(t, token, 0, "03", "a")
	// Until its pools are warm (database.warm_conns) r3's /readyz answers
	// 503 {"status":"warming"} alone; then 200, saying where it stands.
	waitFor(t, "r3 is ready", func() bool { return r3.readyz(t).status == http.StatusOK })
	if st := r3.readyz(t); st.Control.Status != "unreachable" || st.Control.Epoch != 0 {
		t.Errorf("r3 /readyz = %+v, want control unreachable at epoch 0", st.Control)
	}
	execSQL(t, pg.AdminDSN, "ALTER DATABASE "+pgx.Identifier{ctlDB}.Sanitize()+" ALLOW_CONNECTIONS true")
	waitForLog(t, r1.logs, "control database: reachable again")
	r3.waitEpoch(t, token, 3, "03", "b")
	if st := r1.readyz(t); st.Control.Status != "ok" || st.Control.Epoch != 3 {
		t.Errorf("r1 /readyz with the control database back = %+v, want ok at epoch 3", st.Control)
	}
	if n := strings.Count(r1.logs.String(), "control database: unreachable"); n != 1 {
		t.Errorf("r1 logged the outage %d times, want once", n)
	}

	// Stopped routers remove their rows: nobody waits for them.
	for _, r := range []*router{r1, r2, r3} {
		r.stop(t)
	}
	if n := queryInt(t, ctlDSN, `SELECT count(*) FROM control.routers`); n != 0 {
		t.Errorf("control.routers holds %d rows after every router stopped, want 0; r2's log:\n%s", n, r2.logs.String())
	}
}

// controlDeployment deploys shards a (every region but 20) and b (20)
// and an empty control database, all dropped when t ends, and writes
// their configuration file with a control block (its dsn, then the lines
// of extra). It returns the shard map, the control database's name and
// the file's path.
func controlDeployment(t *testing.T, name, extra string) (cfg shardmap.Config, ctlDB, path string) {
	t.Helper()
	ctx := context.Background()
	prefix := pgtest.Prefix(name)
	layout := pgtest.Layout{}
	for _, r := range regions.All() {
		layout[r.Code] = "a"
	}
	layout["20"] = "b"
	cfg, err := pg.Deployment(ctx, prefix, layout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.DropDeployment(context.Background(), cfg) })
	ctlDB = prefix + "_control"
	dropControl := func() {
		pg.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{ctlDB}.Sanitize()+" WITH (FORCE)")
	}
	dropControl()
	if err := pg.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{ctlDB}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dropControl)
	path = clitest.WriteConfig(t, cfg)
	appendFile(t, path, fmt.Sprintf("control:\n  dsn: %q\n%s", pg.AdminDB(ctlDB), extra))
	return cfg, ctlDB, path
}

// router is a serve run by the test.
type router struct {
	addr   string
	logs   *clitest.Buffer
	cancel context.CancelFunc
	done   chan error
}

func startRouter(t *testing.T, path string, env map[string]string) *router {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &router{logs: &clitest.Buffer{}, cancel: cancel, done: make(chan error, 1)}
	go func() {
		r.done <- run(ctx, []string{"serve", "--config", path, "--addr", "127.0.0.1:0"}, func(k string) string { return env[k] }, &clitest.Buffer{}, r.logs)
	}()
	t.Cleanup(cancel)
	r.addr = waitForAddr(t, r.logs)
	return r
}

func (r *router) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("serve returned %v after cancel, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop after cancel")
	}
}

// waitEpoch waits until the router's /v1/regions shows epoch, with
// region code on shard, at the top and on every item.
func (r *router) waitEpoch(t *testing.T, token string, epoch int64, code, shard string) {
	t.Helper()
	var last string
	ok := eventually(func() bool {
		body := getRegions(t, r.addr, token)
		last = fmt.Sprintf("%+v", body)
		if body.Epoch != epoch || len(body.Items) != 20 {
			return false
		}
		for _, it := range body.Items {
			if it.Epoch != epoch || it.Code == code && it.Shard != shard {
				return false
			}
		}
		return true
	})
	if !ok {
		t.Fatalf("router %s does not serve epoch %d with %s on %s; /v1/regions: %s", r.addr, epoch, code, shard, last)
	}
}

type readyz struct {
	status  int
	Status  string            // "ready" when a shard answered
	Shards  map[string]string // each shard's answer to the readiness ping
	Control struct {
		Status   string
		Epoch    int64
		RouterID string `json:"router_id"`
	}
}

func (r *router) readyz(t *testing.T) readyz {
	t.Helper()
	res, err := http.Get("http://" + r.addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	st := readyz{status: res.StatusCode}
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// runOK runs the command args and returns its stdout, failing t on an error.
func runOK(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut clitest.Buffer
	if err := run(context.Background(), args, clitest.NoEnv, &out, &errOut); err != nil {
		t.Fatalf("%s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.String()
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// maps returns a copy of m with key set to val.
func maps(m map[string]string, key, val string) map[string]string {
	out := map[string]string{key: val}
	for k, v := range m {
		if k != key {
			out[k] = v
		}
	}
	return out
}

// regionsFile writes regions as the YAML file shards apply reads.
func regionsFile(t *testing.T, regions map[string]string) string {
	t.Helper()
	var codes []string
	for c := range regions {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	var b strings.Builder
	b.WriteString("regions:\n")
	for _, c := range codes {
		fmt.Fprintf(&b, "  %q: %s\n", c, regions[c])
	}
	path := filepath.Join(t.TempDir(), "regions.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(clitest.ReadFile(t, path)+s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !eventually(cond) {
		t.Fatalf("timed out waiting until %s", what)
	}
}

// eventually reports whether cond holds within 20 seconds.
func eventually(cond func() bool) bool {
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

func execSQL(t *testing.T, dsn, sql string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func queryInt(t *testing.T, dsn, sql string) int64 {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int64
	if err := conn.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}
