package cli_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dmshub/dmsrouter/auth"
	"github.com/dmshub/dmsrouter/config"
	"github.com/dmshub/dmsrouter/internal/cli"
	"github.com/dmshub/dmsrouter/internal/pgcluster"
	"github.com/dmshub/dmsrouter/pgtest"
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

// startServe runs cli.Serve with cfg until ctx is done and returns the
// API's URL once it listens, and the channel Serve's result arrives on.
func startServe(t *testing.T, ctx context.Context, cfg config.Config, log *slog.Logger) (string, <-chan error) {
	t.Helper()
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- cli.Serve(ctx, cfg, log, nil, func(a net.Addr) { addrc <- a }) }()
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
			api, done := startServe(t, sctx, serveConfig(sm, metricsAddr), log)

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
