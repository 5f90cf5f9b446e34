package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/dmshub/dmsrouter/bench"
	"github.com/dmshub/dmsrouter/internal/clitest"
	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/seed"
)

// TestBench runs the benchmark briefly on a tiny sharded deployment and the
// same data in one database, and checks the report: every class on every
// arm at both concurrencies, no failed request, both ingest methods, the
// targets. It asserts nothing about timings.
func TestBench(t *testing.T) {
	ctx := context.Background()
	sharded := pgtest.NewDeployment(t, pg, "bench", pgtest.OnePerRegion())
	mono := pgtest.NewDeployment(t, pg, "benchmono", pgtest.SingleShard())
	opts := seed.Options{Markets: 60, Days: 3, Seed: 5}
	if _, err := seed.Run(ctx, sharded, opts); err != nil {
		t.Fatal(err)
	}
	if _, err := seed.Run(ctx, mono, opts); err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	if err := os.WriteFile(out, []byte("# Benchmarks\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"bench", "--config", clitest.WriteConfig(t, sharded), "--monolith", clitest.WriteConfig(t, mono),
		"--duration", "500ms", "--warmup", "100ms", "--concurrency", "3", "--rate", "100",
		"--ingest-rows", "2500", "--ingest-batch", "1000", "--out", out}
	var stdout, stderr clitest.Buffer
	if err := run(ctx, args, clitest.NoEnv, &stdout, &stderr); err != nil {
		t.Fatalf("bench: %v\n%s", err, stderr.String())
	}
	report := clitest.ReadFile(t, out)
	if !strings.HasPrefix(report, "# Benchmarks\n") || !strings.Contains(report, stdout.String()) {
		t.Errorf("--out does not hold the old content followed by the printed report:\n%s", report)
	}
	for _, c := range append(bench.Classes(), bench.Class{Name: "all"}) {
		for _, arm := range []string{bench.ArmDirect, bench.ArmRouter, bench.ArmMonolith} {
			// | class | arm | requests | p50 | p95 | p99 | max | req/s | errors |
			row := regexp.MustCompile(`(?m)^\| ` + c.Name + ` \| ` + arm + ` \| [1-9][0-9]* \|.* \| 0 \|$`)
			if n := len(row.FindAllString(report, -1)); n != 2 {
				t.Errorf("report has %d rows of %s on %s with requests and no errors, want 2 (3 clients and 1)", n, c.Name, arm)
			}
		}
	}
	for _, arm := range []string{bench.ArmDirect, bench.ArmRouter, bench.ArmMonolith} {
		// | arm | sent | answered/s | late | max send lag | dropped | errors | p50 ... |
		row := regexp.MustCompile(`(?m)^\| ` + arm + ` \| [1-9][0-9]* \| [0-9]+ \| [0-9]+ \| [0-9.]+ \| 0 \| 0 \| `)
		if !row.MatchString(report) {
			t.Errorf("report has no open-loop row of %s with requests sent, none dropped and no errors:\n%s", arm, report)
		}
	}
	for _, want := range []string{
		"### Open loop, 100 requests/s",
		"### Cold connections",
		"| first read after the warm-up |",
		"Before measuring, the direct and monolith arms' pools were filled and warmed",
		"| shard s03 (region 03) | INSERT, 1000-row batches | 2,500 |",
		"| shard s03 (region 03) | COPY via staging table | 2,500 |",
		"| monolith (region 03) | COPY via staging table | 2,500 |",
		"The monolith was asked exactly the same requests.",
		"router p50 - direct p50 <= 0.3 ms with 1 client",
		"router resident memory <= 200 MB",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	if strings.Contains(report, "Note:") {
		t.Errorf("the preflight found something:\n%s", report)
	}
	if err := run(ctx, []string{"bench", "--rate", "-1"}, clitest.NoEnv, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "--rate") {
		t.Errorf("bench --rate -1 = %v, want an error naming --rate", err)
	}
}
