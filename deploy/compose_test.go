package deploy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/dmshub/dmsrouter/pgtest"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &pg)) }

// loadCompose loads the compose file at path with the compose-spec
// loader (schema validation, interpolation, normalization), as
// `docker compose` does, with an empty environment.
func loadCompose(ctx context.Context, path string) (*types.Project, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	return loader.LoadWithContext(ctx, types.ConfigDetails{
		WorkingDir:  filepath.Dir(abs),
		ConfigFiles: []types.ConfigFile{{Filename: abs}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) {
		o.SetProjectName("dmsrouter", true)
		o.ResolvePaths = true
	})
}

// routerServices are the services of compose.yaml that run the router's
// image: each needs the auth secret, which every command requires.
var routerServices = []string{"migrate", "router"}

// TestComposeLoads loads compose.yaml with the compose-spec loader and
// checks what the stack needs to start: its services, the auth secret of
// each service of the image, bind mounts whose sources exist; a misspelt
// key fails the loader.
func TestComposeLoads(t *testing.T) {
	ctx := context.Background()
	p, err := loadCompose(ctx, "compose.yaml")
	if err != nil {
		t.Fatalf("load compose.yaml: %v", err)
	}
	for _, name := range []string{"postgres", "migrate", "router", "prometheus"} {
		if _, err := p.GetService(name); err != nil {
			t.Errorf("compose.yaml: %v", err)
		}
	}
	for _, name := range routerServices {
		s, err := p.GetService(name)
		if err != nil {
			continue
		}
		if v := s.Environment["DMSROUTER_AUTH_HS256_SECRET"]; v == nil || len(*v) < 16 {
			t.Errorf("service %s: DMSROUTER_AUTH_HS256_SECRET is unset or shorter than 16 bytes", name)
		}
	}
	for _, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("service %s mounts %s, which does not exist: %v", s.Name, v.Source, err)
			}
		}
	}

	// A misspelt key is refused.
	bad := filepath.Join(t.TempDir(), "compose.yaml")
	text := strings.Replace(readText(t, "compose.yaml"), "    environment: *router-env", "    enviroment: *router-env", 1)
	if err := os.WriteFile(bad, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadCompose(ctx, bad); err == nil {
		t.Error("load compose.yaml with enviroment: = nil error, want the key refused")
	}
}

// composeDSN matches a DSN of compose.config.yaml: a user on the compose
// postgres service and a shard database dms_NN.
var composeDSN = regexp.MustCompile(`postgres://(\w+)@postgres:5432/dms_(\d\d)\?sslmode=disable`)

// TestComposeRouterReady runs what compose.yaml runs, without a container
// engine: the shard databases of initdb/, the migrate service's command
// and then the router service's, each with its environment from the
// compose-spec loader and compose.config.yaml as mounted (its DSNs pointed
// at the test harness's PostgreSQL), and expects 200 from /readyz. It then
// checks that every metric the alerts and the dashboard select is one the
// running router exports, and that SIGTERM stops it cleanly.
func TestComposeRouterReady(t *testing.T) {
	ctx := context.Background()
	p, err := loadCompose(ctx, "compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	prefix := pgtest.Prefix("compose")
	dbName := func(nn string) string { return prefix + "_" + nn }

	// The databases of initdb/01-databases.sql, named apart.
	created := regexp.MustCompile(`(?m)^CREATE DATABASE dms_(\d\d);$`).FindAllStringSubmatch(readText(t, "initdb/01-databases.sql"), -1)
	if len(created) == 0 {
		t.Fatal("initdb/01-databases.sql creates no database")
	}
	for _, m := range created {
		db := dbName(m[1])
		if err := pg.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", db)); err != nil {
			t.Fatal(err)
		}
		if err := pg.Exec(ctx, "CREATE DATABASE "+db); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pg.Exec(context.Background(), fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", db)) })
	}
	cfgText := composeDSN.ReplaceAllStringFunc(readText(t, "compose.config.yaml"), func(dsn string) string {
		m := composeDSN.FindStringSubmatch(dsn)
		if m[1] == "postgres" {
			return pg.AdminDB(dbName(m[2]))
		}
		return pg.DSN(dbName(m[2]), m[1])
	})
	if strings.Contains(cfgText, "@postgres:") {
		t.Fatalf("compose.config.yaml holds a DSN this test cannot point at the harness:\n%s", cfgText)
	}
	cfgFile := filepath.Join(t.TempDir(), "compose.config.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := buildRouter(t)

	// migrate runs to its end, as compose's service_completed_successfully
	// waits for.
	migrate := serviceCommand(t, p, "migrate", bin, cfgFile)
	if out, err := migrate.CombinedOutput(); err != nil {
		t.Fatalf("migrate service %q: %v\n%s", migrate.Args, err, out)
	}

	// The router listens on free loopback ports instead of compose's.
	router := serviceCommand(t, p, "router", bin, cfgFile)
	router.Env = append(router.Env, "DMSROUTER_SERVER_ADDR=127.0.0.1:0", "DMSROUTER_SERVER_METRICS_ADDR=127.0.0.1:0")
	stderr, err := router.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := router.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		router.Process.Kill()
		<-exited
	})
	logs := make(chan map[string]any, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) == nil {
				logs <- line
			} else {
				t.Logf("router: %s", sc.Text())
			}
		}
		close(logs)
		exited <- router.Wait()
	}()
	var api, metrics string
	for api == "" || metrics == "" {
		select {
		case line, ok := <-logs:
			if !ok {
				t.Fatal("the router exited before serving")
			}
			switch line["msg"] {
			case "serving":
				api = "http://" + fmt.Sprint(line["addr"])
			case "serving metrics":
				metrics = fmt.Sprint(line["url"])
			}
		case <-time.After(60 * time.Second):
			t.Fatal("the router did not log serving within 60s")
		}
	}
	go func() {
		for range logs { // keep the pipe flowing
		}
	}()

	if code, body := get(t, api+"/readyz"); code != http.StatusOK {
		t.Fatalf("GET /readyz = %d, want 200:\n%s", code, body)
	}
	if code, body := get(t, api+"/v1/markets"); code != http.StatusUnauthorized {
		t.Errorf("GET /v1/markets without a token = %d, want 401:\n%s", code, body)
	}

	// Every metric the alerts and the dashboard select is exported, but
	// for those a scrape or an event makes.
	code, scrape := get(t, metrics)
	if code != http.StatusOK {
		t.Fatalf("GET %s = %d", metrics, code)
	}
	notYet := map[string]string{
		"up":                             "Prometheus makes it for each scrape",
		"dms_shard_fence_refusals_total": "it appears with a shard's first fence refusal",
		"dms_auth_jwks_age_seconds":      "only a router with auth.jwks_url has a key set to age",
	}
	queries := alertQueries(t)
	maps.Copy(queries, dashboardQueries(t))
	for name, users := range metricNames(t, queries) {
		if _, ok := notYet[name]; ok {
			continue
		}
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\{`).MatchString(scrape) {
			slices.Sort(users)
			t.Errorf("%s, selected by %s, is not in the router's /metrics", name, strings.Join(users, ", "))
		}
	}

	if err := router.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		if err != nil {
			t.Errorf("the router after SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("the router did not stop within 30s of SIGTERM")
	}
}

// buildRouter builds cmd/dmsrouter, as deploy/Dockerfile does, into a
// temporary directory and returns the binary's path.
func buildRouter(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "dmsrouter")
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, "./cmd/dmsrouter")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/dmsrouter: %v\n%s", err, out)
	}
	return bin
}

// serviceCommand returns the command of compose service name run with
// bin, the image's entrypoint: its arguments with the configuration's
// mount target replaced by cfgFile, and its environment (and PATH) only.
func serviceCommand(t *testing.T, p *types.Project, name, bin, cfgFile string) *exec.Cmd {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatal(err)
	}
	targets := map[string]bool{}
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && filepath.Base(v.Source) == "compose.config.yaml" {
			targets[v.Target] = true
		}
	}
	args := slices.Clone([]string(s.Command))
	i := slices.Index(args, "--config")
	if i < 0 || i+1 == len(args) || !targets[args[i+1]] {
		t.Fatalf("service %s: command %q reads no mounted compose.config.yaml (mounts at %v)", name, args, slices.Collect(maps.Keys(targets)))
	}
	args[i+1] = cfgFile
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range s.Environment {
		if v != nil {
			cmd.Env = append(cmd.Env, k+"="+*v)
		}
	}
	return cmd
}

// get answers GET url's status and body, polling for up to 30s while the
// answer is 503 (shards still connecting) or the connection fails.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get(url)
		if err == nil {
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
				return res.StatusCode, string(body)
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
