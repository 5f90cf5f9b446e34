package cli_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dmshub/dmsrouter/config"
	"github.com/dmshub/dmsrouter/pgtest"
)

// TestServeCORS checks that server.cors reaches the router Serve runs: a
// preflight from the configured origin is answered, and a cross-site write
// from another is refused.
func TestServeCORS(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sm, err := pg.Deployment(ctx, pgtest.Prefix("clicors"), pgtest.SingleShard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.DropDeployment(context.Background(), sm) })
	cfg := serveConfig(sm, "")
	cfg.Server.CORS = config.CORS{AllowedOrigins: []string{"https://cruscotto.example.it"}, MaxAge: time.Hour}
	api, done := startServe(t, ctx, cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)), nil)

	ask := func(method, origin string, header ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, api+"/v1/markets", strings.NewReader(`{}`))
		req.Header.Set("Origin", origin)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	res := ask(http.MethodOptions, "https://cruscotto.example.it", "Access-Control-Request-Method", "POST")
	if res.StatusCode != http.StatusNoContent || res.Header.Get("Access-Control-Allow-Origin") != "https://cruscotto.example.it" ||
		res.Header.Get("Access-Control-Max-Age") != "3600" {
		t.Errorf("preflight from the configured origin = %d, Allow-Origin %q, Max-Age %q; want 204, the origin, 3600",
			res.StatusCode, res.Header.Get("Access-Control-Allow-Origin"), res.Header.Get("Access-Control-Max-Age"))
	}
	res = ask(http.MethodPost, "https://evil.example", "Sec-Fetch-Site", "cross-site", "Content-Type", "application/json")
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site POST from another origin = %d, want 403", res.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve = %v after cancel, want nil", err)
	}
}
