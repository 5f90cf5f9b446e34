package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/dmshub/dmsrouter/bench"
	"github.com/dmshub/dmsrouter/config"
	"github.com/dmshub/dmsrouter/internal/cli"
)

// benchCmd measures a seeded deployment three ways (straight to the shards,
// through an in-process router, against a monolith) and prints, and
// appends to --out, a markdown report.
func benchCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("dmsdev", "bench", stderr)
	path := fs.String("config", "configs/dev.yaml", "sharded deployment (seeded)")
	monolith := fs.String("monolith", "", "the same data in one database: a config whose 20 regions map to one shard (seeded with the same seed flags); empty skips the monolith arm")
	duration := fs.Duration("duration", 30*time.Second, "measured time of each arm at each concurrency")
	warmup := fs.Duration("warmup", 5*time.Second, "unmeasured warm-up of each arm before its measured runs")
	rounds := fs.Int("rounds", 6, "slices each arm's measured time is cut into, interleaved with the other arms'")
	concurrency := fs.Int("concurrency", 16, "clients of the loaded runs (every arm also runs with 1 client)")
	rate := fs.Float64("rate", 0, "also run every arm open-loop: this many requests per second on a fixed schedule, latency from the intended send time (0 skips)")
	ingestRows := fs.Int("ingest-rows", 80_000, "presences written by each ingest method (0 skips ingest)")
	ingestBatch := fs.Int("ingest-batch", 1_000, "rows per INSERT of the batched ingest")
	seed := fs.Uint64("seed", 1, "seed of the clients' request streams")
	out := fs.String("out", "", "append the markdown report to this file (it is always printed)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the router arm's loaded run to this file")
	routerLog := fs.String("router-log", "", "write the router's warnings and errors (JSON lines: every 5xx with its cause) to this file")
	if err := cli.ParseArgs(fs, args); err != nil {
		return err
	}
	if *rate < 0 {
		return fmt.Errorf("dmsdev bench: --rate %v must be 0 (no open-loop runs) or positive", *rate)
	}
	cfg, err := config.Load(*path, getenv)
	if err != nil {
		return err
	}
	opts := bench.Options{
		Config:      cfg,
		Duration:    *duration,
		Warmup:      *warmup,
		Rounds:      *rounds,
		Concurrency: *concurrency,
		Rate:        *rate,
		IngestRows:  *ingestRows,
		IngestBatch: *ingestBatch,
		Seed:        *seed,
		Command:     strings.Join(append([]string{"dmsdev", "bench"}, args...), " "),
		Log:         stderr,
	}
	// The router logs every request, as in production; the lines are
	// formatted and discarded, or its warnings kept in --router-log.
	logOut, logLevel := io.Writer(io.Discard), slog.LevelInfo
	if *routerLog != "" {
		f, err := os.Create(*routerLog)
		if err != nil {
			return err
		}
		defer f.Close()
		logOut, logLevel = f, slog.LevelWarn
	}
	opts.Serve = func(ctx context.Context, cfg config.Config, ready func(net.Addr)) error {
		return cli.Serve(ctx, cfg, slog.New(slog.NewJSONHandler(logOut, &slog.HandlerOptions{Level: logLevel})), nil, ready)
	}
	if *monolith != "" {
		mc, err := config.Load(*monolith, getenv)
		if err != nil {
			return err
		}
		opts.Monolith = &mc.ShardMap
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		opts.CPUProfile = f
	}
	rep, err := bench.Run(ctx, opts)
	if err != nil {
		return err
	}
	if err := rep.WriteMarkdown(stdout); err != nil {
		return err
	}
	if *out == "" {
		return nil
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	return errors.Join(rep.WriteMarkdown(f), f.Close())
}
