package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/dmshub/dmsrouter/config"
	"github.com/dmshub/dmsrouter/internal/cli"
	"github.com/dmshub/dmsrouter/seed"
)

// seedCmd fills every shard of the configuration with deterministic
// synthetic data and prints rows and rows/s per table.
func seedCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("dmsdev", "seed", stderr)
	configPath := fs.String("config", "", "shard map `file` (YAML)")
	markets := fs.Int("markets", 0, "markets nationally, spread over the regions by population (1.."+fmt.Sprint(seed.MaxMarkets)+")")
	days := fs.Int("days", 0, "market days with presences per market, ending today (0.."+fmt.Sprint(seed.MaxDays)+")")
	seedValue := fs.Int64("seed", 1, "random seed: the same flags give the same rows")
	reset := fs.Bool("reset", false, "delete the data the shards hold before seeding")
	today := fs.String("today", "", "last day of presences, `YYYY-MM-DD` (default: today in Europe/Rome)")
	parallel := fs.Int("parallel", 0, "concurrent COPY streams over all shards (default "+fmt.Sprint(seed.DefaultParallel)+")")
	if err := cli.ParseArgs(fs, args); err != nil {
		return err
	}
	if *configPath == "" || *markets <= 0 {
		fs.Usage()
		return errors.New("seed: --config and --markets are required")
	}
	opts := seed.Options{
		Markets:  *markets,
		Days:     *days,
		Seed:     *seedValue,
		Reset:    *reset,
		Progress: stdout,
		Parallel: *parallel,
	}
	if *today != "" {
		t, err := time.Parse(time.DateOnly, *today)
		if err != nil {
			return fmt.Errorf("seed: --today %q is not a YYYY-MM-DD date", *today)
		}
		opts.Today = t
	}
	if f, ok := stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		opts.Terminal = true
	}
	cfg, err := config.Load(*configPath, getenv)
	if err != nil {
		return err
	}

	begin := time.Now()
	stats, err := seed.Run(ctx, cfg.ShardMap, opts)
	if err != nil {
		return err
	}
	elapsed := time.Since(begin)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "table\trows\tseconds\trows/s\t")
	var rows int64
	for _, s := range stats {
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.0f\t\n", s.Table, s.Rows, s.Elapsed.Seconds(), float64(s.Rows)/max(s.Elapsed.Seconds(), 1e-9))
		rows += s.Rows
	}
	fmt.Fprintf(tw, "total\t%d\t%.1f\t%.0f\t\n", rows, elapsed.Seconds(), float64(rows)/elapsed.Seconds())
	return tw.Flush()
}
