package cli_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dmshub/dmsrouter/auth"
	"github.com/dmshub/dmsrouter/config"
	"github.com/dmshub/dmsrouter/internal/cli"
	"github.com/dmshub/dmsrouter/internal/clitest"
	"github.com/dmshub/dmsrouter/internal/pgcluster"
	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &pg)) }

// serveConfig returns a configuration of the shard map sm served on a free
// loopback port, with metrics on metricsAddr.
func serveConfig(sm shardmap.Config, metricsAddr string) config.Config {
	return config.Config{
		Server:   config.Server{Addr: "127.0.0.1:0", MetricsAddr: metricsAddr, ShutdownTimeout: 5 * time.Second},
		Auth:     auth.Config{HS256Secret: pgtest.TestSecret},
		ShardMap: sm,
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

// TestServeMetricsListener checks that the metrics are served on their own
// listener, server.metrics_addr, and never on the API's.
func TestServeMetricsListener(t *testing.T) {
	ctx := context.Background()
	sm, err := pg.Deployment(ctx, pgtest.Prefix("climetrics"), pgtest.SingleShard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.DropDeployment(context.Background(), sm) })
	port, err := pgcluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))

	for _, metricsAddr := range []string{"127.0.0.1:" + strconv.Itoa(port), ""} {
		t.Run("metrics_addr="+metricsAddr, func(t *testing.T) {
			sctx, cancel := context.WithCancel(ctx)
			defer cancel()
			api, done := startServe(t, sctx, serveConfig(sm, metricsAddr), log, nil)

			if code, _ := httpGet(t, api+"/healthz"); code != http.StatusOK {
				t.Errorf("GET /healthz on the API = %d, want 200", code)
			}
			if code, _ := httpGet(t, api+"/metrics"); code != http.StatusNotFound {
				t.Errorf("GET /metrics on the API = %d, want 404", code)
			}
			if metricsAddr != "" {
				code, body := httpGet(t, "http://"+metricsAddr+"/metrics")
				if code != http.StatusOK || !strings.Contains(body, `http_server_request_duration_seconds_count{`) {
					t.Errorf("GET /metrics on %s = %d, want 200 with the request histogram:\n%.500s", metricsAddr, code, body)
				}
				if code, _ := httpGet(t, "http://"+metricsAddr+"/healthz"); code != http.StatusNotFound {
					t.Errorf("GET /healthz on the metrics listener = %d, want 404", code)
				}
			}

			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve = %v after cancel, want nil", err)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("Serve did not stop after cancel")
			}
		})
	}

	// A metrics address that is taken stops Serve before it serves,
	// naming the key.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	err = cli.Serve(ctx, serveConfig(sm, taken.Addr().String()), log, nil, func(net.Addr) {
		t.Error("Serve called ready although the metrics address is taken")
	})
	if err == nil || !strings.Contains(err.Error(), "server.metrics_addr") {
		t.Errorf("Serve with metrics_addr taken = %v, want an error naming server.metrics_addr", err)
	}
}

// startServe runs Serve for cfg until the test ends and returns the API's
// URL and Serve's result, once it returns.
func startServe(t *testing.T, ctx context.Context, cfg config.Config, log *slog.Logger, reload *cli.Reload) (string, <-chan error) {
	t.Helper()
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- cli.Serve(ctx, cfg, log, reload, func(a net.Addr) { addrc <- a }) }()
	select {
	case a := <-addrc:
		return "http://" + a.String(), done
	case err := <-done:
		t.Fatalf("Serve = %v before listening", err)
	case <-time.After(20 * time.Second):
		t.Fatal("Serve did not listen within 20s")
	}
	return "", nil
}

// serveReloading runs Serve on a new deployment named name until ctx is
// done, with its configuration file read again every 20ms, and returns the
// API's URL, Serve's result once it returns, the file's path and the log.
func serveReloading(t *testing.T, ctx context.Context, name string) (string, <-chan error, string, *clitest.Buffer) {
	t.Helper()
	sm := pgtest.NewDeployment(t, pg, name, pgtest.SingleShard())
	path := clitest.WriteConfig(t, sm)
	cfg, err := config.Load(path, clitest.NoEnv)
	if err != nil {
		t.Fatal(err)
	}
	logs := &clitest.Buffer{}
	reload := &cli.Reload{Load: func() (config.Config, error) { return config.Load(path, clitest.NoEnv) }, File: path, Every: 20 * time.Millisecond}
	api, done := startServe(t, ctx, cfg, slog.New(slog.NewJSONHandler(logs, nil)), reload)
	return api, done, path, logs
}

// waitFor polls cond every 20ms until it holds, failing the test with what
// after 30s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
	}
}

// TestServeReloadsChangedFile checks that Serve notices its configuration
// file changing, as a Kubernetes ConfigMap mounted as a directory does,
// applies a valid file and refuses an invalid one, keeping the previous
// map.
func TestServeReloadsChangedFile(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	api, done, path, logs := serveReloading(t, ctx, "clireload")

	steps := []struct {
		name, from, to string
		want           string // in the log once the file is read again
	}{
		{"a valid change applies", "max_conns: 4", "max_conns: 6", `"msg":"shard map reloaded","changes":1`},
		{"an invalid file is refused", "max_conns: 6", "max_conns: -1", `"msg":"shard map reload refused; the previous map stays"`},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			old := clitest.ReadFile(t, path)
			if !strings.Contains(old, st.from) {
				t.Fatalf("config file lacks %q:\n%s", st.from, old)
			}
			if err := os.WriteFile(path, []byte(strings.ReplaceAll(old, st.from, st.to)), 0o600); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the log line "+st.want, func() bool { return strings.Contains(logs.String(), st.want) })
			if !strings.Contains(logs.String(), `"cause":"config file changed"`) {
				t.Errorf("log lacks the reload's cause:\n%s", logs.String())
			}
			if code, body := httpGet(t, api+"/readyz"); code != http.StatusOK {
				t.Errorf("GET /readyz after the reload = %d %s, want 200", code, body)
			}
		})
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve = %v after cancel, want nil", err)
	}
}

// TestServeDrains checks the graceful shutdown: once ctx is done /readyz
// answers 503 while a request is still in flight, and that request then
// finishes with its answer before Serve returns nil.
func TestServeDrains(t *testing.T) {
	ctx := context.Background()
	sm := pgtest.NewDeployment(t, pg, "clidrain", pgtest.SingleShard())
	cfg := serveConfig(sm, "")
	cfg.Server.DrainDelay = 5 * time.Second
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	api, done := startServe(t, sctx, cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)), nil)

	// The in-flight request: a market list that waits for a lock the test
	// holds on the markets table.
	unlock := pgtest.Lock(t, sm.Shards[0].AdminDSN(), "markets")
	token, err := auth.SignHS256(pgtest.TestSecret, auth.Principal{Subject: "drain", Role: "admin_pa", Territory: regions.Territory{Level: regions.National}}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	type answer struct {
		code int
		err  error
	}
	inflight := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, api+"/v1/markets?region=03", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			inflight <- answer{err: err}
			return
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		inflight <- answer{code: res.StatusCode}
	}()
	probe := pgtest.Connect(t, sm.Shards[0].AdminDSN())
	waitFor(t, "the request to wait for the lock", func() bool {
		var n int
		err := probe.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%markets%'").Scan(&n)
		return err == nil && n > 0
	})

	if code, body := httpGet(t, api+"/readyz"); code != http.StatusOK {
		t.Fatalf("GET /readyz before shutdown = %d %s, want 200", code, body)
	}
	cancel()
	waitFor(t, "/readyz to answer 503 while draining", func() bool {
		code, body := httpGet(t, api+"/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, `"draining"`)
	})
	unlock() // the in-flight request goes on
	if a := <-inflight; a.err != nil || a.code != http.StatusOK {
		t.Errorf("in-flight GET /v1/markets = %d, %v; want 200", a.code, a.err)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve = %v after draining, want nil", err)
	}
}

// TestServeReloadsAuth checks that a reload replaces the verifier: a file
// that swaps the HS256 secret for an identity provider's JWKS makes the
// provider's tokens verify and the old ones 401, a national rate limit
// added to the file applies, and a new auth section whose key set cannot
// be fetched is refused, the keys in force staying.
func TestServeReloadsAuth(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks := `{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","alg":"EdDSA","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}]}`
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, jwks) }))
	defer idp.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()

	api, done, path, logs := serveReloading(t, ctx, "cliauth")

	national := regions.Territory{Level: regions.National}
	hs, err := auth.SignHS256(pgtest.TestSecret, auth.Principal{Subject: "dev", Role: "auditor", Territory: national}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ed := signEdDSA(t, priv, "k1", `{"iss":"https://idp.example","sub":"idp-user","role":"auditor","territory":"national","exp":`+
		strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)+`}`)
	get := func(token, path string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, api+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res
	}
	status := func(token string) int { return get(token, "/v1/regions").StatusCode }
	edit := func(from, to string) {
		t.Helper()
		old := clitest.ReadFile(t, path)
		if !strings.Contains(old, from) {
			t.Fatalf("config file lacks %q:\n%s", from, old)
		}
		if err := os.WriteFile(path, []byte(strings.Replace(old, from, to, 1)), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	if got := status(hs); got != http.StatusOK {
		t.Fatalf("HS256 token before the reload = %d, want 200", got)
	}
	if got := status(ed); got != http.StatusUnauthorized {
		t.Fatalf("identity provider's token before the reload = %d, want 401", got)
	}
	edit(fmt.Sprintf("hs256_secret: %q", pgtest.TestSecret), fmt.Sprintf("jwks_url: %q\n  issuer: https://idp.example", idp.URL))
	waitFor(t, "the identity provider's token to verify", func() bool { return status(ed) == http.StatusOK })
	if got := status(hs); got != http.StatusUnauthorized {
		t.Errorf("HS256 token after the secret was removed = %d, want 401", got)
	}

	// The national rate limit comes with the national section.
	edit("regions:\n", "national:\n  rate_limit: 0.001\n  rate_burst: 1\nregions:\n")
	var limited *http.Response
	waitFor(t, "a national request answered 429", func() bool {
		limited = get(ed, "/v1/national/summary")
		return limited.StatusCode == http.StatusTooManyRequests
	})
	if got := limited.Header.Get("Retry-After"); got == "" || got == "0" {
		t.Errorf("429 Retry-After = %q, want whole seconds >= 1", got)
	}

	edit(idp.URL, gone.URL)
	waitFor(t, "the refused reload", func() bool {
		return strings.Contains(logs.String(), `"msg":"auth reload refused; the previous keys and configuration stay"`)
	})
	if got := status(ed); got != http.StatusOK {
		t.Errorf("identity provider's token after a refused reload = %d, want 200 (the keys in force stay)", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve = %v after cancel, want nil", err)
	}

	// A key set that cannot be fetched at start stops Serve before it
	// listens, naming the key.
	cfg, err := config.Load(path, clitest.NoEnv)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Auth = auth.Config{JWKSURL: gone.URL}
	err = cli.Serve(context.Background(), cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)), nil, func(net.Addr) {
		t.Error("Serve listened without the identity provider's keys")
	})
	if err == nil || !strings.Contains(err.Error(), "auth.jwks_url") {
		t.Errorf("Serve with the key set unreachable = %v, want an error naming auth.jwks_url", err)
	}
}

// signEdDSA returns the JWT of claims (JSON) signed with key under kid.
func signEdDSA(tb testing.TB, key ed25519.PrivateKey, kid, claims string) string {
	tb.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	signing := enc([]byte(`{"alg":"EdDSA","typ":"JWT","kid":"`+kid+`"}`)) + "." + enc([]byte(claims))
	return signing + "." + enc(ed25519.Sign(key, []byte(signing)))
}

// TestServeWarmsPools checks that database.warm_conns makes Serve open
// and warm that many connections of each pool in the background, with no
// request asking, and log when it is done.
func TestServeWarmsPools(t *testing.T) {
	ctx := context.Background()
	sm, err := pg.Deployment(ctx, pgtest.Prefix("cliwarm"), pgtest.SingleShard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.DropDeployment(context.Background(), sm) })
	cfg := serveConfig(sm, "")
	cfg.ShardMap.Database.WarmConns = 3
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var logged clitest.Buffer
	api, _ := startServe(t, sctx, cfg, slog.New(slog.NewJSONHandler(&logged, nil)), nil)

	waitFor(t, "the pools warmed", func() bool {
		return strings.Contains(logged.String(), `"msg":"pools warmed","conns_per_pool":3`)
	})
	admin := pgtest.Connect(t, sm.Shards[0].AdminDSN())
	var n int
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`,
		"dmsrouter/"+sm.Shards[0].Name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n < 3 {
		t.Errorf("the shard's pool holds %d connections after the warm-up, want at least 3", n)
	}
	if strings.Contains(logged.String(), "not warmed") {
		t.Errorf("a warm-up failed:\n%s", logged.String())
	}
	// The jobs start once the pools are warm, not racing the warm-up
	// for connections.
	if strings.Contains(logged.String(), "job failed") {
		t.Errorf("a job failed:\n%s", logged.String())
	}
	if code, body := httpGet(t, api+"/readyz"); code != http.StatusOK {
		t.Errorf("GET /readyz once the pools are warm = %d %s, want 200", code, body)
	}
}
