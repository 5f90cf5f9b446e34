package main

import (
	"context"
	"io"
	"log/slog"
	"net"

	"github.com/dmshub/dmsrouter/internal/cli"
	"github.com/dmshub/dmsrouter/shardmap"
)

// serveCmd serves the HTTP API until ctx is canceled, then shuts down
// gracefully.
func serveCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("dmsrouter", "serve", stderr)
	path := fs.String("config", "configs/dev.yaml", "configuration file")
	addr := fs.String("addr", "", "listen address (overrides server.addr)")
	if err := cli.ParseArgs(fs, args); err != nil {
		return err
	}
	cfg, err := shardmap.Load(*path, getenv)
	if err != nil {
		return err
	}
	if *addr != "" {
		cfg.Server.Addr = *addr
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	reload := func() (shardmap.Config, error) {
		next, err := shardmap.Load(*path, getenv)
		if err == nil && *addr != "" {
			next.Server.Addr = *addr
		}
		return next, err
	}
	return cli.Serve(ctx, cfg, log, reload, func(a net.Addr) {
		log.Info("serving", slog.String("addr", a.String()), slog.Int("shards", len(cfg.Shards)))
	})
}
