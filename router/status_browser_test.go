package router

import (
	"context"
	"flag"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// updateScreenshot makes TestStatusPageBrowser write its screenshot to
// docs/status.png too, the README's picture of the page:
//
//	go test ./router -run TestStatusPageBrowser -update-screenshot
var updateScreenshot = flag.Bool("update-screenshot", false, "write the status page's screenshot to docs/status.png")

// chromium returns the path of Debian's chromium. Without it the test is
// skipped, saying why, except under CI (CI set) or with
// DMS_REQUIRE_CHROMIUM=1, where it fails: scripts/ensure-chromium.sh
// installs it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if path, err := osexec.LookPath(name); err == nil {
			return path
		}
	}
	const why = "chromium is not installed (scripts/ensure-chromium.sh installs Debian's chromium package)"
	if os.Getenv("CI") != "" || os.Getenv("DMS_REQUIRE_CHROMIUM") == "1" {
		t.Fatal(why + "; CI and DMS_REQUIRE_CHROMIUM=1 need it")
	}
	t.Skip(why)
	return ""
}

// TestStatusPageBrowser loads /status in headless chromium with the
// dms_token cookie while Lazio's shard is stopped: the page renders with
// its style (the CSP lets the inline style in by its hash), Lazio's row
// shows the shard unavailable and its breaker open, the other shards
// available. The screenshot is saved under $DMS_ARTIFACTS (else the
// test's temporary directory), and with -update-screenshot to
// docs/status.png.
func TestStatusPageBrowser(t *testing.T) {
	browser := chromium(t)
	e := newStatusEnv(t, "statusweb", true)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.NoSandbox, // chromium refuses to run as root (as in a container) with its sandbox
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true), // a container's /dev/shm is small
		chromedp.WindowSize(1500, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	// The first Run starts the browser under ctx, which must carry no
	// timeout; the steps after it run under one.
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, network.SetCookie, network.SetCookieParams{
			Name: "dms_token", Value: e.tokens["dba"], URL: e.srv.URL,
		})
		return err
	})); err != nil {
		t.Fatalf("start chromium and set the cookie: %v", err)
	}
	sctx, cancelSteps := context.WithTimeout(ctx, time.Minute)
	defer cancelSteps()

	if err := chromedp.Do(sctx, chromedp.Navigate(e.srv.URL+"/status"), chromedp.WaitVisible("#shard-lazio")); err != nil {
		t.Fatalf("load /status: %v", err)
	}
	for _, tc := range []struct {
		sel, want string
	}{
		{"h1", "dmsrouter status"},
		{"#shard-lazio .state", "unavailable"},
		{"#shard-lazio .breaker", "open"},
		{"#shard-nw .state", "available"},
		{"#shard-nw .breaker", "closed"},
		{"#shard-rest .state", "available"},
	} {
		got, err := chromedp.Run(sctx, chromedp.Text(tc.sel))
		if err != nil {
			t.Fatalf("text of %s: %v", tc.sel, err)
		}
		if first, _, _ := strings.Cut(strings.TrimSpace(got), "\n"); first != tc.want {
			t.Errorf("%s reads %q, want %q first", tc.sel, got, tc.want)
		}
	}
	// The page's inline style applied: the CSP admits it by its hash.
	bg, err := chromedp.Run(sctx, chromedp.Evaluate[string](`getComputedStyle(document.querySelector("th")).backgroundColor`))
	if err != nil {
		t.Fatal(err)
	}
	if bg != "rgb(236, 239, 243)" {
		t.Errorf("a header cell's background is %q, want rgb(236, 239, 243): the CSP refused the page's style", bg)
	}

	png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dir := os.Getenv("DMS_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "status.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of /status with lazio stopped: %s", path)
	if *updateScreenshot {
		if err := os.WriteFile(filepath.Join("..", "docs", "status.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Log("wrote ../docs/status.png")
	}
}
