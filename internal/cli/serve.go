package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dmshub/dmsrouter/auth"
	"github.com/dmshub/dmsrouter/config"
	"github.com/dmshub/dmsrouter/control"
	"github.com/dmshub/dmsrouter/jobs"
	"github.com/dmshub/dmsrouter/national"
	"github.com/dmshub/dmsrouter/registry"
	"github.com/dmshub/dmsrouter/router"
	"github.com/dmshub/dmsrouter/shardmap"
)

// DefaultReloadEvery is how often Serve reads the configuration file to
// see whether it changed, when Reload.Every is zero.
const DefaultReloadEvery = 5 * time.Second

// coldJobsDelay is how long after its start a router without
// database.warm_conns waits before it starts the background jobs, so that
// they do not take the connections its first requests open and warm.
const coldJobsDelay = time.Minute

// Reload says how Serve reads its configuration again while it serves.
// Load reads and validates it. Serve calls it on SIGHUP and, when File is
// not "", each time File's content changes (read every Every): a
// Kubernetes ConfigMap mounted as a directory is updated in place, and a
// distroless container cannot be sent a signal.
type Reload struct {
	Load  func() (config.Config, error)
	File  string
	Every time.Duration
}

// Serve runs the router for cfg until ctx is done. ready is called with
// the bound address once the API's listener is open. The Prometheus metrics
// are served at /metrics on a listener of their own, cfg.Server.MetricsAddr
// (none when it is ""), whose URL is logged as "serving metrics". When
// reload is not nil, the configuration its Load returns, if it is valid,
// replaces the shard map, the national settings (the rate limit too) and
// the verifier of the auth section, on SIGHUP and when its File changes:
// requests in flight finish with the verifier they started with, and a
// new auth section whose keys cannot be read or fetched is refused with
// the rest. The server section (the listener, max_in_flight) and the
// telemetry section stay as they are. With cfg.Auth.JWKSURL set, the
// identity provider's keys are fetched before
// Serve listens (it fails without them) and refreshed while it serves. With cfg.Telemetry.OTLPEndpoint set, sampled spans are
// exported in batches over OTLP/HTTP, and the ones still queued when ctx is
// done are sent before Serve returns. With a control database
// (cfg.Control), the regions come from its current epoch, followed while
// serving (and read again at once when a shard's fence says a region
// moved); the file's serve only until it answers.
//
// With database.warm_conns, /readyz answers 503 {"status":"warming"} until
// the pools are filled and warmed. When ctx is done Serve drains: /readyz
// answers 503 {"status":"draining"}
// for cfg.Server.DrainDelay while the API still serves, then the listeners
// close and the requests in flight get cfg.Server.ShutdownTimeout to
// finish.
func Serve(ctx context.Context, cfg config.Config, log *slog.Logger, reload *Reload, ready func(net.Addr)) error {
	paceGC(os.Getenv)
	tel, err := router.NewTelemetry(router.TraceConfig{
		ServiceName:  cfg.Telemetry.ServiceName,
		OTLPEndpoint: cfg.Telemetry.OTLPEndpoint,
		SampleRatio:  cfg.Telemetry.SampleRatio,
	})
	if err != nil {
		return err
	}
	defer func() {
		// The spans still queued go out; a receiver that does not answer
		// delays the exit by telemetryFlush at most.
		flush, cancel := context.WithTimeout(context.Background(), telemetryFlush)
		defer cancel()
		if err := tel.Shutdown(flush); err != nil {
			log.Warn("telemetry not flushed", slog.String("error", err.Error()))
		}
	}()
	// Every new pooled connection prepares the hot reads before it serves.
	m, err := shardmap.NewHolder(cfg.ShardMap, shardmap.Options{TracerProvider: tel.TracerProvider, MeterProvider: tel.MeterProvider,
		Warm: registry.Warm, Logger: log})
	if err != nil {
		return err
	}
	defer m.Close()
	apply := m.Reload
	var follow *control.Follower
	if cfg.Control.Enabled() {
		if follow, err = control.Follow(ctx, cfg.Control, cfg.ShardMap, m, log); err != nil {
			return err
		}
		defer follow.Stop()
		apply = follow.Reload // shards from the file, regions from the control database
		// A shard's fence refusing a region (it moved) reloads the
		// assignments at once (unset before the follower stops).
		m.SetRefresher(follow.Refresh)
		defer m.SetRefresher(nil)
	}
	fan, err := national.New(cfg.National, national.Options{Logger: log, TracerProvider: tel.TracerProvider, MeterProvider: tel.MeterProvider})
	if err != nil {
		return err
	}
	v, err := auth.Open(ctx, cfg.Auth, auth.Options{Logger: log})
	if err != nil {
		return err
	}
	srv, err := router.New(m, v, fan, router.Options{Logger: log, Telemetry: tel, Control: follow,
		CORS: router.CORS(cfg.Server.CORS), MaxInFlight: cfg.Server.MaxInFlight})
	if err != nil {
		return err
	}
	jobCtx, stopJobs := context.WithCancel(ctx)
	defer stopJobs()
	verifiers := make(chan *auth.Verifier) // a reload's new verifier
	go refreshKeys(jobCtx, v, verifiers)
	if reload != nil {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		var changed <-chan struct{}
		if reload.File != "" {
			every := reload.Every
			if every <= 0 {
				every = DefaultReloadEvery
			}
			changed = watchFile(ctx, reload.File, every, log)
		}
		go reloadOnSignal(jobCtx, hup, changed, apply, fan, srv, verifiers, reload.Load, log)
	}
	startJobs := func() {
		go (&jobs.Partitions{Shards: m.Shards, Ahead: 3, Every: 6 * time.Hour, Log: log}).Run(jobCtx)
		go (&jobs.ExpireKeys{Shards: m.Shards, Retention: cfg.Jobs.IdempotencyRetention, Every: time.Hour, Log: log}).Run(jobCtx)
		go (&jobs.Lifecycle{Shards: m.Shards, Extensions: cfg.Jobs.Lifecycle.Extensions, Every: time.Hour, Log: log}).Run(jobCtx)
	}
	// warming holds /readyz at 503 until the pools are warm, so that a
	// load balancer sends a new router no request its cold connections
	// would make wait (database.warm_conns). The jobs start after the
	// warm-up: their first runs, made while every connection of a pool
	// was being opened and warmed, timed out acquiring one and waited a
	// whole period (up to 6 h) to run again.
	var warming atomic.Bool
	if n := cfg.ShardMap.Database.WarmConns; n > 0 {
		warming.Store(true)
		go func() {
			warmPools(jobCtx, m.Map(), int(n), log)
			warming.Store(false)
			startJobs()
		}()
	} else {
		// Without the warm-up the first requests open and warm the pools'
		// connections themselves. Jobs started at once took the idle ones
		// (a job per shard each) and a request then timed out acquiring a
		// connection still being warmed; they start coldJobsDelay later.
		go func() {
			select {
			case <-jobCtx.Done():
			case <-time.After(coldJobsDelay):
				startJobs()
			}
		}()
	}
	ln, err := net.Listen("tcp", cfg.Server.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Server.Addr, err)
	}
	var draining atomic.Bool
	servers := []*http.Server{httpServer(gateReadiness(srv, &warming, &draining), log)}
	listeners := []net.Listener{ln}
	if a := cfg.Server.MetricsAddr; a != "" {
		mln, err := net.Listen("tcp", a)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen for metrics on %s (server.metrics_addr; \"\" serves none): %w", a, err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", tel.MetricsHandler())
		servers = append(servers, httpServer(mux, log))
		listeners = append(listeners, mln)
	}
	errc := make(chan error, len(servers))
	for i, hs := range servers {
		go func() { errc <- hs.Serve(listeners[i]) }()
	}
	if len(listeners) > 1 {
		log.Info("serving metrics", slog.String("url", "http://"+listeners[1].Addr().String()+"/metrics"))
	}
	if ready != nil {
		ready(ln.Addr())
	}
	running := len(servers)
	var errs []error
	select {
	case err := <-errc:
		// A server stopped by itself: stop the other too.
		errs = append(errs, err)
		running--
	case <-ctx.Done():
		draining.Store(true)
		servers[0].SetKeepAlivesEnabled(false)
		if d := cfg.Server.DrainDelay; d > 0 {
			log.Info("draining: /readyz answers 503", slog.Duration("drain_delay", d))
			select {
			case <-time.After(d):
			case err := <-errc:
				errs = append(errs, err)
				running--
			}
		}
	}
	shutdown, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout)
	defer cancel()
	for _, hs := range servers {
		if err := hs.Shutdown(shutdown); err != nil {
			errs = append(errs, fmt.Errorf("shutdown: %w", err))
		}
	}
	for range running {
		if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// telemetryFlush bounds how long Serve waits, as it stops, for the OTLP
// receiver to take the spans still queued.
const telemetryFlush = 5 * time.Second

// httpServer returns a server of h with the router's timeouts and limits.
func httpServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// gateReadiness serves h, except that /readyz answers 503 while warming
// (the pools are being filled at start) or once draining is set (so that
// load balancers stop sending requests before the listener closes).
// Draining wins: a router shutting down while it warms is not coming back.
func gateReadiness(h http.Handler, warming, draining *atomic.Bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status := ""
		switch {
		case r.URL.Path != "/readyz":
		case draining.Load():
			status = "draining"
		case warming.Load():
			status = "warming"
		}
		if status == "" {
			h.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"status":"`+status+`"}`+"\n")
	})
}

// watchFile reads the file at path every interval and sends on the
// channel it returns when its content differs from the last read (the
// first read is the reference). A file that cannot be read is logged and
// compared again at the next read. The channel holds one pending change.
func watchFile(ctx context.Context, path string, every time.Duration, log *slog.Logger) <-chan struct{} {
	changed := make(chan struct{}, 1)
	last, err := os.ReadFile(path)
	if err != nil {
		log.Warn("config file unreadable; watching it for changes", slog.String("file", path), slog.String("error", err.Error()))
	}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			b, err := os.ReadFile(path)
			if err != nil || bytes.Equal(b, last) {
				continue
			}
			last = b
			select {
			case changed <- struct{}{}:
			default: // a reload is already pending: it reads the newest file
			}
		}
	}()
	return changed
}

// reloadOnSignal loads the configuration each time hup fires or changed
// says the file changed, builds the verifier of its auth section, and
// hands its shard map to apply, its national settings to fan and the
// verifier to srv and to verifiers (whose keys refreshKeys then keeps
// fresh), logging what changed or why the new configuration was refused:
// all of it applies, or none.
func reloadOnSignal(ctx context.Context, hup <-chan os.Signal, changed <-chan struct{}, apply func(shardmap.Config) ([]shardmap.Change, error),
	fan *national.Fanout, srv *router.Server, verifiers chan<- *auth.Verifier, reload func() (config.Config, error), log *slog.Logger) {
	for {
		cause := "SIGHUP"
		select {
		case <-ctx.Done():
			return
		case <-hup:
		case <-changed:
			cause = "config file changed"
		}
		log.Info("reloading the configuration", slog.String("cause", cause))
		cfg, err := reload()
		if err == nil {
			v, verr := auth.Open(ctx, cfg.Auth, auth.Options{Logger: log})
			if verr != nil {
				log.Error("auth reload refused; the previous keys and configuration stay", slog.String("error", verr.Error()))
				continue
			}
			var changes []shardmap.Change
			if changes, err = apply(cfg.ShardMap); err == nil {
				fan.SetConfig(cfg.National)
				srv.SetVerifier(v)
				select {
				case verifiers <- v:
				case <-ctx.Done():
					return
				}
				log.Info("auth keys reloaded", slog.Bool("jwks", cfg.Auth.JWKSURL != ""))
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

// refreshKeys keeps the keys of v fresh (auth.Verifier.RefreshKeys), and
// then those of each verifier received from next instead, until ctx is
// done.
func refreshKeys(ctx context.Context, v *auth.Verifier, next <-chan *auth.Verifier) {
	for {
		vctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			v.RefreshKeys(vctx)
		}()
		select {
		case <-ctx.Done():
		case v = <-next:
		}
		stop()
		<-done
		if ctx.Err() != nil {
			return
		}
	}
}

// warmPools opens and warms conns connections of every pool of m in the
// background (database.warm_conns), logging when it is done; /readyz
// answers 503 {"status":"warming"} until it returns (done or failed), and
// requests that come anyway warm the connections they open themselves.
func warmPools(ctx context.Context, m *shardmap.Map, conns int, log *slog.Logger) {
	start := time.Now()
	if err := m.WarmPools(ctx, conns); err != nil {
		log.Warn("pools not warmed", slog.Duration("elapsed", time.Since(start)), slog.String("error", err.Error()))
		return
	}
	log.Info("pools warmed", slog.Int("conns_per_pool", conns), slog.Duration("elapsed", time.Since(start)))
}
