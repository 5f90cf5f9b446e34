package shardmap

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dmshub/dmsrouter/regions"
)

// Config is the shard map's configuration: the settings every shard's
// database connections use, the shards, and which shard serves each region
// (the "database", "shards" and "regions" blocks of the configuration file).
// A shard may serve no region: the target of a future move.
type Config struct {
	Database DatabaseConfig    `mapstructure:"database"`
	Shards   []ShardConfig     `mapstructure:"shards"`
	Regions  map[string]string `mapstructure:"regions"`
	// Epoch is the control database's version of Regions, when they come
	// from there (package control); 0 when they are the file's.
	Epoch int64 `mapstructure:"-"`
}

// DatabaseConfig holds the timeouts and breaker settings every shard uses.
type DatabaseConfig struct {
	ConnectTimeout   time.Duration `mapstructure:"connect_timeout"`
	AcquireTimeout   time.Duration `mapstructure:"acquire_timeout"`
	StatementTimeout time.Duration `mapstructure:"statement_timeout"`
	// BreakerFailures consecutive infrastructure failures open a shard's breaker.
	BreakerFailures uint32 `mapstructure:"breaker_failures"`
	// BreakerOpenTimeout is how long an open breaker refuses before it lets a probe through.
	BreakerOpenTimeout time.Duration `mapstructure:"breaker_open_timeout"`
	// QueryTimeout is the router's own deadline for every shard call (the
	// wait for a connection and the whole transaction or batch): a frozen
	// server cannot enforce its statement_timeout, so without it a request
	// waits as long as the server hangs. 0 means StatementTimeout plus a
	// second.
	QueryTimeout time.Duration `mapstructure:"query_timeout"`
	// ProbeInterval is how often each server whose breaker is not closed is
	// probed in the background (connect and SELECT 1, answering within the
	// interval and ConnectTimeout); the first answer closes the breaker, so
	// a region is served again soon after its server is, not only after
	// BreakerOpenTimeout. 0 means DefaultProbeInterval.
	ProbeInterval time.Duration `mapstructure:"probe_interval"`
	// MaxReplicaLag is how far behind its primary a replica may be and
	// still get reads: the router measures each replica's lag once a
	// second in the background, and a replica at or over the limit (or
	// not measured recently) gets none until it catches up. 0 means
	// DefaultMaxReplicaLag.
	MaxReplicaLag time.Duration `mapstructure:"max_replica_lag"`
	// WarmConns is how many connections of each pool the router opens and
	// warms (Options.Warm) in the background when it starts, at most the
	// pool's max_conns, so that the first requests after a deploy do not
	// pay for building plans; connections opened later warm as they open.
	// 0 opens none ahead: the first request to each pool then opens and
	// warms a connection inside its acquire, which on a loaded machine
	// outlasted acquire_timeout (a 504 right after /readyz answered 200),
	// so the configuration's default is 1.
	WarmConns int32 `mapstructure:"warm_conns"`
	// MaxWaiting bounds the calls that may wait for a connection of one
	// pool: a call made while the pool's max_conns calls run and
	// MaxWaiting more wait is refused at once (ErrOverloaded) instead of
	// waiting out AcquireTimeout behind a backlog it cannot get through,
	// so that under overload the answered requests stay near what the
	// pool serves and the rest are told early to retry. 0 means no limit.
	MaxWaiting int32 `mapstructure:"max_waiting"`
}

// DefaultProbeInterval is the probe interval when probe_interval is 0.
const DefaultProbeInterval = time.Second

// queryTimeout returns QueryTimeout, or StatementTimeout plus a second when it is 0.
func (d DatabaseConfig) queryTimeout() time.Duration {
	if d.QueryTimeout > 0 {
		return d.QueryTimeout
	}
	return d.StatementTimeout + time.Second
}

// probeInterval returns ProbeInterval, or DefaultProbeInterval when it is 0.
func (d DatabaseConfig) probeInterval() time.Duration {
	if d.ProbeInterval > 0 {
		return d.ProbeInterval
	}
	return DefaultProbeInterval
}

// maxReplicaLag returns MaxReplicaLag, or DefaultMaxReplicaLag when it is 0.
func (d DatabaseConfig) maxReplicaLag() time.Duration {
	if d.MaxReplicaLag > 0 {
		return d.MaxReplicaLag
	}
	return DefaultMaxReplicaLag
}

// Shard returns the shard named name, and whether there is one.
func (c Config) Shard(name string) (ShardConfig, bool) {
	for _, s := range c.Shards {
		if s.Name == name {
			return s, true
		}
	}
	return ShardConfig{}, false
}

// ShardRegions returns the regions the shard map assigns to the shard
// named name, sorted.
func (c Config) ShardRegions(name string) []regions.Code {
	var held []regions.Code
	for code, shard := range c.Regions {
		if shard == name {
			held = append(held, regions.Code(code))
		}
	}
	slices.Sort(held)
	return held
}

// ShardConfig is one shard: a primary database, its replicas, and the
// owner's DSN used to migrate and seed it.
type ShardConfig struct {
	Name     string   `mapstructure:"name"`
	Primary  string   `mapstructure:"primary"`
	Admin    string   `mapstructure:"admin"`
	Replicas []string `mapstructure:"replicas"`
	MaxConns int32    `mapstructure:"max_conns"`
}

// AdminDSN returns the DSN that owns the shard's schema: Admin, or Primary when unset.
func (s ShardConfig) AdminDSN() string {
	if s.Admin != "" {
		return s.Admin
	}
	return s.Primary
}

var shardName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,39}$`)

// Validate checks the configuration and returns every problem found, each
// naming its key as the configuration file does: a region missing or
// unknown, an unknown shard, a duplicate shard name, a DSN that does not
// parse, a bad limit or timeout.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	d := c.Database
	for key, val := range map[string]time.Duration{
		"database.connect_timeout":      d.ConnectTimeout,
		"database.acquire_timeout":      d.AcquireTimeout,
		"database.statement_timeout":    d.StatementTimeout,
		"database.breaker_open_timeout": d.BreakerOpenTimeout,
	} {
		if val <= 0 {
			bad(key, "must be a positive duration such as 2s")
		}
	}
	for key, val := range map[string]time.Duration{
		"database.query_timeout":   d.QueryTimeout,
		"database.probe_interval":  d.ProbeInterval,
		"database.max_replica_lag": d.MaxReplicaLag,
	} {
		if val < 0 || val > time.Hour {
			bad(key, "%s is outside 0..1h (0 means the default)", val)
		}
	}
	if d.WarmConns < 0 || d.WarmConns > 1000 {
		bad("database.warm_conns", "%d is outside 0..1000 (0 opens none ahead)", d.WarmConns)
	}
	if d.MaxWaiting < 0 || d.MaxWaiting > 100_000 {
		bad("database.max_waiting", "%d is outside 0..100000 (0 means no limit)", d.MaxWaiting)
	}
	if d.BreakerFailures == 0 {
		bad("database.breaker_failures", "must be at least 1")
	}
	if len(c.Shards) == 0 {
		bad("shards", "at least one shard is required")
	}
	names := map[string]bool{}
	for i, s := range c.Shards {
		// A shard is named by its name, as its environment overrides are,
		// or by its index when the name is unusable or taken.
		key := fmt.Sprintf("shards[%s]", s.Name)
		if !shardName.MatchString(s.Name) {
			key = fmt.Sprintf("shards[%d]", i)
			bad(key+".name", "%q must be lower case letters, digits, '-' or '_', starting with a letter", s.Name)
		} else if names[s.Name] {
			key = fmt.Sprintf("shards[%d]", i)
			bad(key+".name", "shard %q is defined twice", s.Name)
		}
		names[s.Name] = true
		checkDSN := func(k, dsn string) {
			if dsn == "" {
				bad(k, "must not be empty")
				return
			}
			if _, err := pgxpool.ParseConfig(dsn); err != nil {
				bad(k, "cannot parse DSN: %v", err)
			}
		}
		checkDSN(key+".primary", s.Primary)
		if s.Admin != "" {
			checkDSN(key+".admin", s.Admin)
		}
		for j, r := range s.Replicas {
			checkDSN(fmt.Sprintf("%s.replicas[%d]", key, j), r)
		}
		if s.MaxConns < 0 || s.MaxConns > 1000 {
			bad(key+".max_conns", "%d is outside 1..1000", s.MaxConns)
		}
	}
	for code, shard := range c.Regions {
		key := "regions." + code
		if _, err := regions.ParseCode(code); err != nil {
			bad(key, "unknown region code (want a quoted two-digit ISTAT code \"01\"..\"20\")")
			continue
		}
		if !names[shard] {
			bad(key, "unknown shard %q", shard)
		}
	}
	for _, r := range regions.All() {
		if _, ok := c.Regions[string(r.Code)]; !ok {
			bad("regions."+string(r.Code), "region %s (%s) is not mapped to a shard", r.Code, r.Name)
		}
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errors.Join(errs...)
}
