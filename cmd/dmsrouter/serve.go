package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
	_ "time/tzdata" // Europe/Rome on machines without a zoneinfo database

	"github.com/dmshub/dmsrouter/jobs"
	"github.com/dmshub/dmsrouter/router"
	"github.com/dmshub/dmsrouter/shardmap"
)

// serveCmd serves the HTTP API until ctx is canceled, then shuts down
// gracefully.
func serveCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	path := fs.String("config", "configs/dev.yaml", "configuration file")
	addr := fs.String("addr", "", "listen address (overrides server.addr)")
	if err := parseArgs(fs, args); err != nil {
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
	return serve(ctx, cfg, log, reload, func(a net.Addr) {
		log.Info("serving", slog.String("addr", a.String()), slog.Int("shards", len(cfg.Shards)))
	})
}

// serve runs the router for cfg until ctx is done. ready is called with
// the bound address once the listener is open. On SIGHUP the shard map is
// replaced by what reload returns, when reload is not nil and its
// configuration is valid; the listener and the auth keys stay as they are.
func serve(ctx context.Context, cfg shardmap.Config, log *slog.Logger, reload func() (shardmap.Config, error), ready func(net.Addr)) error {
	tel, err := router.NewTelemetry()
	if err != nil {
		return err
	}
	defer tel.Shutdown(context.Background())
	m, err := shardmap.NewHolder(cfg, shardmap.Options{TracerProvider: tel.TracerProvider, MeterProvider: tel.MeterProvider})
	if err != nil {
		return err
	}
	defer m.Close()
	if reload != nil {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		go reloadOnSignal(ctx, hup, m, reload, log)
	}
	jobCtx, stopJobs := context.WithCancel(ctx)
	defer stopJobs()
	go (&jobs.Partitions{Shards: m.Shards, Ahead: 3, Every: 6 * time.Hour, Log: log}).Run(jobCtx)
	go (&jobs.ExpireKeys{Shards: m.Shards, Retention: jobs.DefaultConfig().IdempotencyRetention, Every: time.Hour, Log: log}).Run(jobCtx)
	v, err := router.NewVerifier(cfg.Auth)
	if err != nil {
		return err
	}
	srv, err := router.New(m, v, router.Options{Logger: log, Telemetry: tel})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Server.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Server.Addr, err)
	}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	if ready != nil {
		ready(ln.Addr())
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(shutdown); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// reloadOnSignal reloads the shard map each time hup fires, logging what
// changed or why the new configuration was refused.
func reloadOnSignal(ctx context.Context, hup <-chan os.Signal, m *shardmap.Holder, reload func() (shardmap.Config, error), log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		cfg, err := reload()
		if err == nil {
			var changes []shardmap.Change
			if changes, err = m.Reload(cfg); err == nil {
				for _, c := range changes {
					log.Info("shard map reloaded", slog.String("change", c.Kind), slog.String("name", c.Name), slog.String("detail", c.Detail))
				}
				log.Info("shard map reloaded", slog.Int("changes", len(changes)))
				continue
			}
		}
		log.Error("shard map reload refused; the previous map stays", slog.String("error", err.Error()))
	}
}
