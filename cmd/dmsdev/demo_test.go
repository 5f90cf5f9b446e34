package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/internal/clitest"
	"github.com/dmshub/dmsrouter/internal/pgcluster"
)

// TestDemo runs the newcomer's demo end to end at a tiny scale on its own
// cluster, three times on the same data directory:
//
//   - first use: it starts PostgreSQL, creates, migrates and seeds the 20
//     databases, creates and migrates the spare (s03b, which holds no
//     region), serves, and every printed curl line answers with seeded
//     data for the printed token; it prints the command that moves region
//     03 to the spare; closing the terminal (SIGHUP) stops the router and
//     then the cluster;
//   - with a cluster an earlier demo left running on the data directory:
//     it says so, serves the data it holds (printing the reseed command
//     that works, make demo-reset) and stops that cluster on exit;
//   - with --reset: it seeds the shards again before serving.
func TestDemo(t *testing.T) {
	// The data directory's parent must be open to the postgres OS user
	// when the test runs as root, which t.TempDir's is not.
	dir, err := os.MkdirTemp("", "dmsrouter-demo-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	port, err := pgcluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dev := clitest.ReadFile(t, filepath.Join("..", "..", "configs", "dev.yaml"))
	path := filepath.Join(t.TempDir(), "demo.yaml")
	dev = strings.Replace(dev, `metrics_addr: "127.0.0.1:9090"`, `metrics_addr: "127.0.0.1:0"`, 1)
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(dev, ":54329/", ":"+strconv.Itoa(port)+"/")), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"demo", "--config", path, "--markets", "40", "--days", "3", "--data", dir, "--addr", "127.0.0.1:0"}

	t.Run("first use, stopped by SIGHUP", func(t *testing.T) {
		d := startDemo(t, args)
		if !strings.Contains(d.out.String(), "starting PostgreSQL") || !strings.Contains(d.out.String(), "seed: ") {
			t.Errorf("demo did not start PostgreSQL and seed:\n%s", d.out)
		}
		checkCurls(t, d.out.String())
		checkSpare(t, port)
		if want := "go run ./cmd/dmsrouter region move --config " + path + " --region 03 --to s03b"; !strings.Contains(d.out.String(), want) {
			t.Errorf("demo did not print the move to the spare shard, %q:\n%s", want, d.out)
		}
		// The terminal is closed: the process gets SIGHUP (which, unheard,
		// would end this test binary at once).
		syscall.Kill(os.Getpid(), syscall.SIGHUP)
		d.waitStopped(t, dir, port)
	})

	t.Run("a cluster left running", func(t *testing.T) {
		leftover, err := pgcluster.StartAt(context.Background(), dir, port)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { leftover.Stop() })
		d := startDemo(t, args)
		for _, want := range []string{
			"PostgreSQL was left running on 127.0.0.1:" + strconv.Itoa(port) + " by an earlier demo",
			"the shards hold data already: not seeding (to seed them again: make demo-reset, or add --reset",
		} {
			if !strings.Contains(d.out.String(), want) {
				t.Errorf("demo did not say %q:\n%s", want, d.out)
			}
		}
		checkCurls(t, d.out.String())
		d.cancel()
		d.waitStopped(t, dir, port)
	})

	t.Run("--reset", func(t *testing.T) {
		d := startDemo(t, append(args, "--reset"))
		if strings.Contains(d.out.String(), "hold data already") || !strings.Contains(d.out.String(), "seed: ") {
			t.Errorf("demo --reset did not seed again:\n%s", d.out)
		}
		checkCurls(t, d.out.String())
		d.cancel()
		d.waitStopped(t, dir, port)
	})
}

// demoRun is a demo running in the background.
type demoRun struct {
	out    *clitest.Buffer
	cancel context.CancelFunc // Ctrl-C
	done   chan struct{}      // closed when run returned err
	err    error
}

// startDemo runs dmsdev with args until it serves. The test's cleanup
// stops it if the test did not.
func startDemo(t *testing.T, args []string) *demoRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &demoRun{out: &clitest.Buffer{}, cancel: cancel, done: make(chan struct{})}
	logs := &clitest.Buffer{}
	go func() {
		d.err = run(ctx, args, clitest.NoEnv, d.out, logs)
		close(d.done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-d.done:
		case <-time.After(time.Minute):
		}
	})
	deadline := time.After(2 * time.Minute)
	for !strings.Contains(d.out.String(), "Ctrl-C") {
		select {
		case <-d.done:
			t.Fatalf("demo returned %v before serving\nstdout:\n%s\nstderr:\n%s", d.err, d.out, logs)
		case <-deadline:
			t.Fatalf("demo did not serve within 2 minutes\nstdout:\n%s\nstderr:\n%s", d.out, logs)
		case <-time.After(100 * time.Millisecond):
		}
	}
	return d
}

// checkCurls runs the demo's printed curl lines with its printed tokens:
// each answers 200 with items.
func checkCurls(t *testing.T, out string) {
	t.Helper()
	tokens := map[string]string{}
	for _, m := range regexp.MustCompile(`export (DMS_\w+)='([^']+)'`).FindAllStringSubmatch(out, -1) {
		tokens[m[1]] = m[2]
	}
	curls := regexp.MustCompile(`curl -s -H "Authorization: Bearer \$(DMS_\w+)" '([^']+)'`).FindAllStringSubmatch(out, -1)
	if len(tokens) != 3 || len(curls) != 5 {
		t.Fatalf("demo printed %d tokens and %d curl lines, want 3 and 5:\n%s", len(tokens), len(curls), out)
	}
	for _, c := range curls {
		req, _ := http.NewRequest(http.MethodGet, c[2], nil)
		req.Header.Set("Authorization", "Bearer "+tokens[c[1]])
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		var list struct {
			Items []json.RawMessage `json:"items"`
		}
		if err := json.Unmarshal(body, &list); res.StatusCode != http.StatusOK || err != nil || len(list.Items) == 0 {
			t.Errorf("GET %s with $%s = %d, %d items, want 200 with items:\n%s", c[2], c[1], res.StatusCode, len(list.Items), body)
		}
	}
	status := regexp.MustCompile(`curl -s -b "dms_token=\$(DMS_\w+)" '([^']+/status)'`).FindStringSubmatch(out)
	if status == nil {
		t.Fatalf("demo printed no status page line:\n%s", out)
	}
	req, _ := http.NewRequest(http.MethodGet, status[2], nil)
	req.AddCookie(&http.Cookie{Name: "dms_token", Value: tokens[status[1]]})
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), "dmsrouter status") {
		t.Errorf("GET %s with the cookie $%s = %d, want 200 with the status page:\n%.500s", status[2], status[1], res.StatusCode, body)
	}
}

// checkSpare checks that the demo created and migrated configs/dev.yaml's
// spare database, dms_03b, the target of `dmsrouter region move --region
// 03 --to s03b`, and that it holds no region and no rows.
func checkSpare(t *testing.T, port int) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, "postgres://postgres@127.0.0.1:"+strconv.Itoa(port)+"/dms_03b?sslmode=disable")
	if err != nil {
		t.Fatalf("the spare database dms_03b: %v", err)
	}
	defer conn.Close(ctx)
	var held, markets int64
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM dms.shard_regions), (SELECT count(*) FROM markets)`).Scan(&held, &markets); err != nil {
		t.Fatalf("the spare database dms_03b is not migrated: %v", err)
	}
	if held != 0 || markets != 0 {
		t.Errorf("the spare database dms_03b holds %d regions and %d markets, want none", held, markets)
	}
}

// waitStopped waits for the demo to return nil, and checks that it stopped
// PostgreSQL and kept the data.
func (d *demoRun) waitStopped(t *testing.T, dir string, port int) {
	t.Helper()
	select {
	case <-d.done:
		if d.err != nil {
			t.Errorf("demo returned %v after the signal, want nil", d.err)
		}
	case <-time.After(time.Minute):
		t.Fatal("demo did not stop within a minute of the signal")
	}
	if !strings.Contains(d.out.String(), "PostgreSQL stopped") {
		t.Errorf("demo did not say it stopped PostgreSQL:\n%s", d.out)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "postmaster.pid")); !os.IsNotExist(err) {
		t.Errorf("postmaster.pid still exists after the demo stopped (stat: %v)", err)
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer ccancel()
	if conn, err := pgx.Connect(cctx, "postgres://postgres@127.0.0.1:"+strconv.Itoa(port)+"/postgres?sslmode=disable"); err == nil {
		conn.Close(context.Background())
		t.Error("PostgreSQL still answers after the demo stopped")
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "PG_VERSION")); err != nil {
		t.Errorf("the data directory is gone after the demo stopped: %v", err)
	}
}

// TestDemoPortTaken checks that the demo checks its listen address before
// it starts anything, and says which one and how to pick another.
func TestDemoPortTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := l.Addr().(*net.TCPAddr)
	next := "127.0.0.1:" + strconv.Itoa(addr.Port+1)
	var out, errOut clitest.Buffer
	err = run(context.Background(), []string{"demo", "--config", filepath.Join("..", "..", "configs", "dev.yaml"), "--data", t.TempDir(), "--addr", addr.String()},
		clitest.NoEnv, &out, &errOut)
	for _, want := range []string{"cannot listen on " + addr.String(), "nothing was started", "DMSROUTER_SERVER_ADDR=" + next + " make demo", "--addr " + next} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("demo with %s taken = %v, want an error containing %q", addr, err, want)
		}
	}
	if out.String() != "" {
		t.Errorf("demo with its port taken printed %q, want nothing (nothing started)", out.String())
	}
}

// TestDemoWithoutPostgres checks that without PostgreSQL's server binaries
// the demo says how to install them and fails.
func TestDemoWithoutPostgres(t *testing.T) {
	t.Setenv("PG_BINDIR", t.TempDir())
	var out, errOut clitest.Buffer
	err := run(context.Background(), []string{"demo", "--config", filepath.Join("..", "..", "configs", "dev.yaml"), "--data", t.TempDir(), "--addr", "127.0.0.1:0"},
		clitest.NoEnv, &out, &errOut)
	if err == nil || !strings.Contains(errOut.String(), "apt-get install postgresql") {
		t.Errorf("demo without binaries = %v, stderr:\n%s\nwant an error and the install command", err, errOut.String())
	}
	if out.String() != "" {
		t.Errorf("demo without binaries printed %q to stdout, want nothing", out.String())
	}
}
