package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dmshub/dmsrouter/auth"
	"github.com/dmshub/dmsrouter/internal/clitest"
	"github.com/dmshub/dmsrouter/migrations"
	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/shardmap"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &pg)) }

func TestMigrateServeAndToken(t *testing.T) {
	ctx := context.Background()
	cfg, err := pg.Deployment(ctx, pgtest.Prefix("cmd"), pgtest.OnePerRegion())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.DropDeployment(context.Background(), cfg) })
	path := clitest.WriteConfig(t, cfg)

	// The deployment is migrated already: up again is a no-op on every shard.
	var out, errOut bytes.Buffer
	if err := run(ctx, []string{"migrate", "up", "--config", path}, clitest.NoEnv, &out, &errOut); err != nil {
		t.Fatalf("migrate up: %v\n%s", err, errOut.String())
	}
	if n := strings.Count(out.String(), "up to date"); n != 20 {
		t.Errorf("migrate up printed %d shards up to date, want 20:\n%s", n, out.String())
	}
	if strings.Contains(out.String(), "applied") {
		t.Errorf("migrate up applied something the second time:\n%s", out.String())
	}
	out.Reset()
	if err := run(ctx, []string{"migrate", "status", "--config", path}, clitest.NoEnv, &out, &errOut); err != nil {
		t.Fatalf("migrate status: %v", err)
	}
	// One line per shard: name, its regions, its version, the embedded
	// latest version (the same: the deployment is migrated), the state.
	latest, err := migrations.Latest()
	if err != nil || latest < 7 {
		t.Fatalf("migrations.Latest() = %d, %v; want at least the 7 migrations of issue 15's time", latest, err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 21 || strings.Join(strings.Fields(lines[0]), " ") != "SHARD REGIONS VERSION LATEST STATE" {
		t.Fatalf("migrate status printed %d lines, want a header and 20 shards:\n%s", len(lines), out.String())
	}
	ver := strconv.FormatInt(latest, 10)
	if got, want := strings.Join(strings.Fields(lines[3]), " "), "s03 03 "+ver+" "+ver+" up to date"; got != want {
		t.Errorf("migrate status line of s03 = %q, want %q", got, want)
	}

	out.Reset()
	args := []string{"token", "--config", path, "--sub", "u1", "--role", "admin_pa", "--territory", "comune:015146", "--ttl", "10m"}
	if err := run(ctx, args, clitest.NoEnv, &out, &errOut); err != nil {
		t.Fatalf("token: %v", err)
	}
	token := strings.TrimSpace(out.String())
	v, _ := auth.NewVerifier(auth.Config{HS256Secret: pgtest.TestSecret})
	p, err := v.Verify(token, time.Now())
	if err != nil || p.Subject != "u1" || p.Territory.String() != "comune:015146" {
		t.Fatalf("token verifies as %+v, %v", p, err)
	}
	for _, bad := range [][]string{
		{"token", "--config", path, "--sub", "u1", "--role", "king", "--territory", "national"},
		{"token", "--config", path, "--sub", "u1", "--role", "admin_pa", "--territory", "region:21"},
		{"token", "--config", path, "--role", "admin_pa", "--territory", "national"},
		{"nosuchcommand"},
		{"migrate", "up", "--config", path, "extra"},
	} {
		if err := run(ctx, bad, clitest.NoEnv, &out, &errOut); err == nil {
			t.Errorf("run(%v) = nil, want an error", bad)
		}
	}
	// The dev tools are not in the shipped binary, which says where they are.
	for _, dev := range []string{"seed", "demo", "bench", "ingest"} {
		err := run(ctx, []string{dev, "--config", path}, clitest.NoEnv, &out, &errOut)
		if want := "go run ./cmd/dmsdev " + dev; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("run(%s) = %v, want an error naming %q", dev, err, want)
		}
	}

	// serve on a free port until the context is canceled, with the
	// defaults: /readyz answers 200 once every pool holds a warmed
	// connection (database.warm_conns 1). With none, the first request to
	// a shard opened and warmed one inside its acquire, which on a machine
	// loaded by the rest of the suite outlasted acquire_timeout (504) in
	// one full run of three.
	sctx, cancel := context.WithCancel(ctx)
	logs := &clitest.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(sctx, []string{"serve", "--config", path, "--addr", "127.0.0.1:0"}, clitest.NoEnv, &out, logs)
	}()
	addr := waitForAddr(t, logs)
	// Ready as a load balancer sees it: /readyz polled until it answers
	// 200. It pings every shard, which on a machine loaded by the rest of
	// the suite took longer than the first poll once (503).
	var last string
	if !eventually(func() bool {
		res, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			last = err.Error()
			return false
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		last = fmt.Sprintf("%d %s", res.StatusCode, bytes.TrimSpace(b))
		return res.StatusCode == http.StatusOK
	}) {
		t.Fatalf("GET /readyz did not answer 200 within 20s; last: %s", last)
	}
	for _, tc := range []struct {
		path   string
		token  string
		status int
	}{
		{"/healthz", "", 200},
		{"/v1/markets", token, 200},
		{"/v1/markets", "", 401},
	} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+tc.path, nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != tc.status {
			t.Errorf("GET %s = %d, want %d", tc.path, res.StatusCode, tc.status)
		}
	}

	// Move Lombardia to a new shard name in the file and send SIGHUP: the
	// router follows; a broken file afterwards is refused and changes nothing.
	moved := cfg
	moved.Regions = map[string]string{}
	for k, v := range cfg.Regions {
		moved.Regions[k] = v
	}
	moved.Regions["03"] = "lombardia"
	for _, s := range cfg.Shards {
		if s.Name == "s03" {
			s.Name = "lombardia"
			moved.Shards = append(append([]shardmap.ShardConfig(nil), cfg.Shards...), s)
		}
	}
	os.WriteFile(path, []byte(clitest.ReadFile(t, clitest.WriteConfig(t, moved))), 0o600)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitForLog(t, logs, `"change":"region moved","name":"03","detail":"s03 -> lombardia"`)
	if got := regionShard(t, addr, token, "03"); got != "lombardia" {
		t.Errorf("after reload region 03 is on %q, want lombardia", got)
	}
	os.WriteFile(path, []byte("shards: [\n"), 0o600)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitForLog(t, logs, "reload refused")
	if got := regionShard(t, addr, token, "03"); got != "lombardia" {
		t.Errorf("after a refused reload region 03 is on %q, want lombardia", got)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve returned %v after cancel, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop after cancel")
	}
}

// waitForAddr reads the listen address from serve's "serving" log line.
func waitForAddr(t *testing.T, logs *clitest.Buffer) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(logs.String(), "\n") {
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "serving" {
				return rec.Addr
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("serve did not log its address:\n%s", logs.String())
	return ""
}

func waitForLog(t *testing.T, logs *clitest.Buffer, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no log line contains %s:\n%s", want, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// regionShard returns the shard /v1/regions names for region code.
func regionShard(t *testing.T, addr, token, code string) string {
	t.Helper()
	for _, it := range getRegions(t, addr, token).Items {
		if it.Code == code {
			return it.Shard
		}
	}
	return ""
}

// regionsPage is the answer of GET /v1/regions.
type regionsPage struct {
	Epoch int64
	Items []struct {
		Code, Shard string
		Epoch       int64
	}
}

func getRegions(t *testing.T, addr, token string) regionsPage {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/regions", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body regionsPage
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return body
}
