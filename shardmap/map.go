// Package shardmap turns its Config (the database settings, the shards and
// the region assignments, which package config fills) into shards: it
// validates the shard map (every region on exactly one shard), opens a
// bounded pool and a circuit breaker per shard, runs scoped transactions on
// them, and holds the current map, which Holder.Reload replaces.
//
// It may import regions, pgx, gobreaker and OpenTelemetry; it reads no
// files and knows no other package's settings.
package shardmap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"sync"

	"github.com/jackc/pgx/v5"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/dmshub/dmsrouter/regions"
)

// ErrNoShard reports a region the map does not serve; a validated map serves all 20.
var ErrNoShard = errors.New("no shard serves this region")

// Options carries the telemetry providers shards report to (nil providers
// report nothing) and what every new pooled connection runs before it
// serves.
type Options struct {
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	// Warm, when set, runs on every new connection of every pool before the
	// pool hands it out, after the map has prepared its reads' scope
	// statements and called the read fence there (warmScope): the commands
	// pass registry.Warm, which prepares the hot statements and builds their
	// plans there, so that no request pays for them. Both run under the
	// router's deadline (DatabaseConfig.QueryTimeout); a failure is logged and
	// the connection serves cold (see warmConn).
	Warm func(ctx context.Context, conn *pgx.Conn) error
	// Logger receives what a failed warm-up says; nil discards it.
	Logger *slog.Logger
}

// Map is an immutable snapshot of the shard map: which shard serves each
// region. It is safe for concurrent use.
type Map struct {
	cfg      Config
	shards   []*Shard
	byName   map[string]*Shard
	byRegion map[regions.Code]*Shard
	obs      *observer
	// owned are the shards this map opened and must close; a map made by
	// a reload shares its unchanged shards with the map before it.
	owned []*Shard
}

// Open validates cfg and opens one Shard per configured shard. Pools connect
// lazily, so a database that is down at start does not stop the router: its
// regions answer 503 until it comes back.
func Open(cfg Config, opts Options) (*Map, error) {
	return open(cfg, opts, nil)
}

// open builds a map for cfg, taking over the shards of prev whose
// configuration is unchanged instead of opening new pools for them.
func open(cfg Config, opts Options, prev *Map) (*Map, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	obs, err := newObserver(opts)
	if err != nil {
		return nil, err
	}
	m := &Map{cfg: cfg, byName: map[string]*Shard{}, byRegion: map[regions.Code]*Shard{}, obs: obs}
	for _, sc := range cfg.Shards {
		s := prev.reusable(sc, cfg.Database)
		if s == nil {
			if s, err = newShard(sc, cfg.Database, obs); err != nil {
				for _, o := range m.owned {
					o.Close()
				}
				return nil, err
			}
			m.owned = append(m.owned, s)
		}
		m.shards = append(m.shards, s)
		m.byName[s.name] = s
	}
	for code, name := range cfg.Regions {
		m.byRegion[regions.Code(code)] = m.byName[name]
	}
	if err := obs.watch(m); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// reusable returns prev's shard for sc when its configuration and the
// database settings are unchanged, or nil.
func (m *Map) reusable(sc ShardConfig, db DatabaseConfig) *Shard {
	if m == nil {
		return nil
	}
	s := m.byName[sc.Name]
	if s == nil || s.db != db || !reflect.DeepEqual(s.cfg, sc) {
		return nil
	}
	return s
}

// RegionsOf returns the regions shard name serves in this map, in code order.
func (m *Map) RegionsOf(name string) []regions.Code {
	var out []regions.Code
	for r, s := range m.byRegion {
		if s.name == name {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Config returns the configuration the map was built from.
func (m *Map) Config() Config { return m.cfg }

// For returns the shard that serves region r.
func (m *Map) For(r regions.Code) (*Shard, error) {
	s, ok := m.byRegion[r]
	if !ok {
		return nil, fmt.Errorf("region %q: %w", r, ErrNoShard)
	}
	return s, nil
}

// Shards returns every shard in configuration order.
func (m *Map) Shards() []*Shard { return append([]*Shard(nil), m.shards...) }

// WarmPools opens up to conns connections in every pool of the map (the
// primaries' and the replicas', each at most its max_conns), so that each
// new one runs Options.Warm now rather than on a request's acquire, and
// returns them to their pools. It fills one pool at a time, so that a
// server holding many shards' databases is not asked for all their
// connections at once. It returns when all are open or ctx is done; a
// connection still connecting or warming then joins its pool when it is
// ready. The error joins every pool's first failure.
func (m *Map) WarmPools(ctx context.Context, conns int) error {
	var errs []error
	for _, s := range m.shards {
		errs = append(errs, s.WarmPools(ctx, conns))
	}
	return errors.Join(errs...)
}

// Shard returns the shard named name, or nil when the map has none.
func (m *Map) Shard(name string) *Shard { return m.byName[name] }

// Close closes every shard's pools and stops reporting their metrics.
// Close a map only when no later map made by a Holder's reload shares its
// shards; the Holder closes replaced shards itself.
func (m *Map) Close() {
	m.obs.unwatch()
	for _, s := range m.shards {
		s.Close()
	}
}

// observer holds the instruments shards report to, and Options.Warm and
// Options.Logger, which their pools' new connections report to.
type observer struct {
	warm          func(context.Context, *pgx.Conn) error
	log           *slog.Logger
	tracer        trace.Tracer
	meter         metric.Meter
	queryDuration metric.Float64Histogram
	fenced        metric.Int64Counter
	registration  metric.Registration
	labels        sync.Map // queryKey -> metric.RecordOption, see queryLabels
}

func newObserver(opts Options) (*observer, error) {
	tp, mp := opts.TracerProvider, opts.MeterProvider
	if tp == nil {
		tp = tracenoop.NewTracerProvider()
	}
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	o := &observer{
		warm:   opts.Warm,
		log:    log,
		tracer: tp.Tracer("github.com/dmshub/dmsrouter/shardmap"),
		meter:  mp.Meter("github.com/dmshub/dmsrouter/shardmap"),
	}
	var err error
	o.queryDuration, err = o.meter.Float64Histogram("dms.shard.query.duration",
		metric.WithUnit("s"),
		metric.WithDescription("Duration of shard operations by shard, region, operation and outcome."),
		metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
	if err != nil {
		return nil, err
	}
	o.fenced, err = o.meter.Int64Counter("dms.shard.fence.refusals",
		metric.WithDescription("Calls a shard's fence refused, by shard, region and reason (not_owned: the region moved away; frozen: a write during a move's switch)."))
	return o, err
}

// watch registers the gauges that read the map's breakers, pools and
// replica lags at collection time.
func (o *observer) watch(m *Map) error {
	state, err := o.meter.Int64ObservableGauge("dms.shard.breaker.state",
		metric.WithDescription("Circuit breaker state per shard: 0 closed, 1 half-open, 2 open."))
	if err != nil {
		return err
	}
	total, err := o.meter.Int64ObservableGauge("dms.shard.pool.connections",
		metric.WithDescription("Pool connections per shard by state (acquired, idle, constructing) and the maximum."))
	if err != nil {
		return err
	}
	waits, err := o.meter.Int64ObservableCounter("dms.shard.pool.empty_acquires",
		metric.WithDescription("Acquires that waited because the pool had no idle connection."))
	if err != nil {
		return err
	}
	lag, err := o.meter.Float64ObservableGauge("dms.shard.replica.lag",
		metric.WithUnit("s"),
		metric.WithDescription("Replica lag per shard and replica as the router last measured it (once a second); a replica at or over database.max_replica_lag gets no reads."))
	if err != nil {
		return err
	}
	o.registration, err = o.meter.RegisterCallback(func(_ context.Context, obs metric.Observer) error {
		for _, s := range m.shards {
			for i, b := range s.backends() {
				at := []attribute.KeyValue{attribute.String("shard", s.name), attribute.String("db.role", b.role)}
				if b.role == "replica" {
					at = append(at, attribute.Int("replica", i-1))
				}
				obs.ObserveInt64(state, int64(b.breaker().State()), metric.WithAttributes(at...))
				st := b.pool.Stat()
				for _, c := range []struct {
					state string
					n     int32
				}{{"acquired", st.AcquiredConns()}, {"idle", st.IdleConns()}, {"constructing", st.ConstructingConns()}, {"max", st.MaxConns()}} {
					obs.ObserveInt64(total, int64(c.n), metric.WithAttributes(append(at, attribute.String("state", c.state))...))
				}
				obs.ObserveInt64(waits, st.EmptyAcquireCount(), metric.WithAttributes(at...))
			}
			for _, r := range s.ReplicaLags() {
				if !r.MeasuredAt.IsZero() {
					obs.ObserveFloat64(lag, r.Lag.Seconds(), metric.WithAttributes(
						attribute.String("shard", s.name), attribute.Int("replica", r.Index)))
				}
			}
		}
		return nil
	}, state, total, waits, lag)
	return err
}

func (o *observer) unwatch() {
	if o != nil && o.registration != nil {
		o.registration.Unregister()
	}
}
