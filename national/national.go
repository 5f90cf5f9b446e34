// Package national answers the national dashboards by asking every region
// (docs/architecture.md#6): one leg per region, each setting its own
// region's scope (several regions may share a shard), merged into one
// answer that says which regions did not answer.
//
//   - at most Config.Concurrency legs run at once, and every leg's deadline
//     is Config.LegTimeout after the fan-out started, so an answer never
//     waits longer than that, however many legs queue;
//   - a shard whose breaker is open fails its legs at once (Shard.Read
//     returns *shardmap.UnavailableError without touching the network);
//   - every leg of a request reads the one shard map snapshot the request
//     took (Request.Map), so a reload never splits a request across maps;
//     only a leg whose shard's fence says its region moved away reads it
//     once more from the shard a reloaded map names (Request.Holder);
//   - identical concurrent requests of the same scope share one fan-out
//     (singleflight), and a complete answer is served from memory for
//     Config.CacheTTL, keyed by the request and the principal's territory,
//     so principals of different scope never share an answer;
//   - each leg has a span, national.leg, under the request's span, with
//     the attributes region, shard, dms.leg.status and dms.leg.rows (the
//     rows the leg read, when it answered), and the dms.national.partial
//     counter counts, by region, the regions missing from partial answers.
//
// Every answer embeds one Report: "regions", the status of each region's
// leg, and "partial".
//
// It may import auth, registry, shardmap and regions, singleflight and
// OpenTelemetry; it knows nothing of HTTP frameworks or how its Config is
// loaded.
package national

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"golang.org/x/sync/singleflight"

	"github.com/dmshub/dmsrouter/auth"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// Fanout answers national requests. It holds what they share: the
// settings, the singleflight group, the answer cache, the regions' vendor
// sets and the telemetry. It is safe for concurrent use.
type Fanout struct {
	cfg      atomic.Pointer[Config] // defaults applied
	group    singleflight.Group
	cache    answerCache
	vendors  vendorMemory
	log      *slog.Logger
	tracer   trace.Tracer
	partials metric.Int64Counter
	onLeg    func(regions.Code)
}

// Options carries what a Fanout reports to. Nil fields report nothing.
type Options struct {
	Logger         *slog.Logger
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	// OnLeg, when set, is called with the region as each leg starts, before
	// it reads: tests count legs and hold them with it.
	OnLeg func(regions.Code)
}

const instrumentation = "github.com/dmshub/dmsrouter/national"

// New returns a Fanout with the settings cfg (zero fields take their
// defaults). It fails only when the meter refuses its counter.
func New(cfg Config, opts Options) (*Fanout, error) {
	f := &Fanout{log: opts.Logger, onLeg: opts.OnLeg}
	if f.log == nil {
		f.log = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	tp, mp := opts.TracerProvider, opts.MeterProvider
	if tp == nil {
		tp = tracenoop.NewTracerProvider()
	}
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	f.tracer = tp.Tracer(instrumentation)
	var err error
	f.partials, err = mp.Meter(instrumentation).Int64Counter("dms.national.partial",
		metric.WithDescription("Regions missing from partial national answers, by route, region and leg status."))
	if err != nil {
		return nil, fmt.Errorf("national: create counter: %w", err)
	}
	f.SetConfig(cfg)
	return f, nil
}

// SetConfig replaces the settings; requests that start afterwards use them.
// Answers already cached expire by the new CacheTTL (0: at once).
func (f *Fanout) SetConfig(cfg Config) {
	cfg = cfg.WithDefaults()
	f.cfg.Store(&cfg)
}

func (f *Fanout) config() Config { return *f.cfg.Load() }

// CacheTTL returns how long a complete answer is cached now (0: not at
// all), so that the router can tell browsers to keep it as long.
func (f *Fanout) CacheTTL() time.Duration { return f.config().CacheTTL }

// Config returns the settings in force, defaults applied: the router reads
// the national rate limit from them, so that a reload changes it too.
func (f *Fanout) Config() Config { return f.config() }

// Request is what every national question carries besides its parameters.
type Request struct {
	// Map is the shard map snapshot the request took: every leg reads it.
	Map *shardmap.Map
	// Holder, when set, is what Map was taken from: a leg whose shard's
	// fence says the region moved away reloads the assignments through it
	// and reads once more from the shard that serves the region now
	// (shardmap.Holder.Run). Without it such a leg is unavailable.
	Holder *shardmap.Holder
	// Principal is the caller; each leg reads its region in the principal's
	// scope, and answers are cached per territory.
	Principal auth.Principal
	// Route names the endpoint in logs and metrics ("/v1/national/summary").
	Route string
}

// Answer is a merged national response, encoded once and shared by every
// request that the fan-out or the cache serves. It must not be modified.
type Answer struct {
	Body       []byte        // the JSON response, ending in a newline
	Missing    []string      // regions that did not answer, in code order
	RetryAfter time.Duration // when a missing region may be back
}

// Where an answer came from, as Fanout's methods report it.
const (
	SourceCache  = "cache"  // the answer cache
	SourceFanout = "fanout" // a fan-out this request ran
	SourceShared = "shared" // a fan-out an identical request had started
)

// answer returns the answer of the request key (endpoint and parameters;
// the principal's territory is added to it): from the cache, from a fan-out
// that an identical request already started, or from a new one that compute
// runs. It reports which. An answer that misses regions is not cached.
func (f *Fanout) answer(ctx context.Context, req Request, key string, compute func(ctx context.Context) (*Answer, error)) (*Answer, string, error) {
	key = req.Principal.Territory.String() + "\x00" + key
	span := trace.SpanFromContext(ctx)
	a, hit := f.cache.get(key, time.Now(), f.config().CacheTTL)
	source := SourceCache
	if !hit {
		// The fan-out must outlive a leader that goes away: followers wait on it.
		ctx := context.WithoutCancel(ctx)
		v, err, shared := f.group.Do(key, func() (any, error) {
			a, err := compute(ctx)
			if err == nil && len(a.Missing) == 0 {
				if ttl := f.config().CacheTTL; ttl > 0 {
					f.cache.put(key, a, time.Now(), ttl)
				}
			}
			return a, err
		})
		if err != nil {
			return nil, "", err
		}
		a, source = v.(*Answer), SourceFanout
		if shared {
			source = SourceShared
		}
	}
	span.SetAttributes(attribute.String("dms.national.source", source), attribute.Int("dms.national.missing", len(a.Missing)))
	return a, source, nil
}

// finish encodes the merged response v of a fan-out whose legs were l,
// logs the legs that failed with an unexpected error and counts the missing
// regions.
func finish[T any](ctx context.Context, f *Fanout, req Request, l legs[T], v any) (*Answer, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	a := &Answer{Body: buf.Bytes()}
	for _, o := range l.missing {
		a.Missing = append(a.Missing, string(o.region))
		var unavailable *shardmap.UnavailableError
		if errors.As(o.err, &unavailable) {
			a.RetryAfter = max(a.RetryAfter, unavailable.RetryAfter)
		}
		if o.status.Status == StatusError {
			f.log.LogAttrs(ctx, slog.LevelError, "national leg failed", slog.String("route", req.Route),
				slog.String("region", string(o.region)), slog.String("error", o.err.Error()))
		}
		f.partials.Add(ctx, 1, metric.WithAttributes(attribute.String("http.route", req.Route),
			attribute.String("region", string(o.region)), attribute.String("status", o.status.Status)))
	}
	if a.RetryAfter == 0 {
		a.RetryAfter = time.Second
	}
	return a, nil
}
