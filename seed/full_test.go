package seed_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/seed"
)

// TestFullScale seeds the national target (8,000 markets, 300 market days,
// about 24 million presences) into 20 shards and reports rows/s per table.
// It takes minutes, so it runs only with SEED_FULL=1:
//
//	SEED_FULL=1 go test ./seed -run FullScale -v -timeout 30m
//
// SEED_MARKETS, SEED_DAYS and SEED_PARALLEL override the scale and the
// number of concurrent COPY streams.
func TestFullScale(t *testing.T) {
	if os.Getenv("SEED_FULL") != "1" {
		t.Skip("set SEED_FULL=1 to seed 8,000 markets and 300 days")
	}
	env := func(name string, def int) int {
		if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
			return v
		}
		return def
	}
	cfg := pgtest.NewDeployment(t, pg, "seedfull", pgtest.OnePerRegion())
	opts := seed.Options{
		Markets:  env("SEED_MARKETS", 8000),
		Days:     env("SEED_DAYS", 300),
		Seed:     1,
		Progress: os.Stdout,
		Parallel: env("SEED_PARALLEL", 0),
	}
	begin := time.Now()
	stats, err := seed.Run(context.Background(), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(begin)
	var rows, presences int64
	for _, s := range stats {
		if s.Table == "vendor_presences" {
			presences = s.Rows
		}
		t.Logf("%-18s %10d rows %8.1f s %10.0f rows/s", s.Table, s.Rows, s.Elapsed.Seconds(), float64(s.Rows)/s.Elapsed.Seconds())
		rows += s.Rows
	}
	t.Logf("%-18s %10d rows %8.1f s %10.0f rows/s (presences: %.0f rows/s overall)", "total", rows, elapsed.Seconds(),
		float64(rows)/elapsed.Seconds(), float64(presences)/elapsed.Seconds())
}
