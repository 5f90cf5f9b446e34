package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/internal/clitest"
	"github.com/dmshub/dmsrouter/internal/pgcluster"
)

// TestDemo runs the newcomer's demo end to end at a tiny scale on its own
// cluster: it starts PostgreSQL, creates, migrates and seeds the 20
// databases, serves, and every printed curl line answers with seeded data
// for the printed token; canceling stops the router and then the cluster.
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

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, logs := &clitest.Buffer{}, &clitest.Buffer{}
	done := make(chan error, 1)
	go func() {
		args := []string{"demo", "--config", path, "--markets", "40", "--days", "3", "--data", dir, "--addr", "127.0.0.1:0"}
		done <- run(ctx, args, clitest.NoEnv, out, logs)
	}()
	deadline := time.After(2 * time.Minute)
	for !strings.Contains(out.String(), "Ctrl-C stops") {
		select {
		case err := <-done:
			t.Fatalf("demo returned %v before serving\nstdout:\n%s\nstderr:\n%s", err, out, logs)
		case <-deadline:
			t.Fatalf("demo did not serve within 2 minutes\nstdout:\n%s\nstderr:\n%s", out, logs)
		case <-time.After(100 * time.Millisecond):
		}
	}

	tokens := map[string]string{}
	for _, m := range regexp.MustCompile(`export (DMS_\w+)='([^']+)'`).FindAllStringSubmatch(out.String(), -1) {
		tokens[m[1]] = m[2]
	}
	curls := regexp.MustCompile(`curl -s -H "Authorization: Bearer \$(DMS_\w+)" '([^']+)'`).FindAllStringSubmatch(out.String(), -1)
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

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("demo returned %v after cancel, want nil", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("demo did not stop within a minute of cancel")
	}
	if !strings.Contains(out.String(), "PostgreSQL stopped") {
		t.Errorf("demo did not say it stopped PostgreSQL:\n%s", out)
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

// TestDemoWithoutPostgres checks that without PostgreSQL's server binaries
// the demo says how to install them and fails.
func TestDemoWithoutPostgres(t *testing.T) {
	t.Setenv("PG_BINDIR", t.TempDir())
	var out, errOut clitest.Buffer
	err := run(context.Background(), []string{"demo", "--config", filepath.Join("..", "..", "configs", "dev.yaml"), "--data", t.TempDir()}, clitest.NoEnv, &out, &errOut)
	if err == nil || !strings.Contains(errOut.String(), "apt-get install postgresql") {
		t.Errorf("demo without binaries = %v, stderr:\n%s\nwant an error and the install command", err, errOut.String())
	}
	if out.String() != "" {
		t.Errorf("demo without binaries printed %q to stdout, want nothing", out.String())
	}
}
