package main

import (
	"context"
	"io"
	"log/slog"
	"net"

	"github.com/dmshub/dmsrouter/config"
	"github.com/dmshub/dmsrouter/internal/cli"
)

// serveCmd serves the HTTP API until ctx is canceled, then drains and
// shuts down gracefully. It reloads the configuration file on SIGHUP and
// when the file's content changes.
func serveCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("dmsrouter", "serve", stderr)
	path := fs.String("config", "configs/dev.yaml", "configuration file")
	addr := fs.String("addr", "", "listen address (overrides server.addr)")
	if err := cli.ParseArgs(fs, args); err != nil {
		return err
	}
	load := func() (config.Config, error) {
		cfg, err := config.Load(*path, getenv)
		if err == nil && *addr != "" {
			cfg.Server.Addr = *addr
		}
		return cfg, err
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	return cli.Serve(ctx, cfg, log, &cli.Reload{Load: load, File: *path}, func(a net.Addr) {
		log.Info("serving", slog.String("addr", a.String()), slog.Int("shards", len(cfg.ShardMap.Shards)))
	})
}
