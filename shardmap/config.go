package shardmap

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/viper"

	"github.com/dmshub/dmsrouter/regions"
)

// EnvPrefix prefixes the environment variables that override configuration
// keys: DMSROUTER_AUTH_HS256_SECRET overrides auth.hs256_secret.
const EnvPrefix = "DMSROUTER_"

// Config is the router's whole configuration: the HTTP server, the
// authentication keys, database timeouts and the shard map.
type Config struct {
	Server   ServerConfig      `mapstructure:"server"`
	Auth     AuthConfig        `mapstructure:"auth"`
	Database DatabaseConfig    `mapstructure:"database"`
	National NationalConfig    `mapstructure:"national"`
	Shards   []ShardConfig     `mapstructure:"shards"`
	Regions  map[string]string `mapstructure:"regions"`
}

// ServerConfig configures the HTTP listener.
type ServerConfig struct {
	Addr            string        `mapstructure:"addr"`
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`
}

// AuthConfig holds the keys that verify bearer tokens. HS256Secret is for
// development; production sets PublicKeyFile (a PEM RSA or Ed25519 public key).
type AuthConfig struct {
	HS256Secret   string `mapstructure:"hs256_secret"`
	PublicKeyFile string `mapstructure:"public_key_file"`
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

// NationalConfig tunes the national fan-out, which asks every region in
// parallel and merges the answers.
type NationalConfig struct {
	// LegTimeout is the deadline of each region's leg; a region that has not
	// answered by then is reported as timed out. 0 means DefaultLegTimeout.
	LegTimeout time.Duration `mapstructure:"leg_timeout"`
	// Concurrency bounds the legs of one fan-out running at once. 0 means
	// DefaultNationalConcurrency.
	Concurrency int `mapstructure:"concurrency"`
	// CacheTTL is how long a complete national answer is served from memory
	// (per request and principal scope); 0 disables the cache.
	CacheTTL time.Duration `mapstructure:"cache_ttl"`
}

// Defaults of the national fan-out.
const (
	DefaultLegTimeout          = 2 * time.Second
	DefaultNationalConcurrency = 8
	DefaultNationalCacheTTL    = 3 * time.Second
)

// WithDefaults returns n with its zero LegTimeout and Concurrency replaced by
// their defaults. A zero CacheTTL stays zero: it disables the cache.
func (n NationalConfig) WithDefaults() NationalConfig {
	if n.LegTimeout == 0 {
		n.LegTimeout = DefaultLegTimeout
	}
	if n.Concurrency == 0 {
		n.Concurrency = DefaultNationalConcurrency
	}
	return n
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

var defaults = map[string]any{
	"server.addr":                   "127.0.0.1:8080",
	"server.shutdown_timeout":       "10s",
	"auth.hs256_secret":             "",
	"auth.public_key_file":          "",
	"database.connect_timeout":      "2s",
	"database.acquire_timeout":      "1s",
	"database.statement_timeout":    "5s",
	"database.breaker_failures":     5,
	"database.breaker_open_timeout": "10s",
	"database.query_timeout":        "0s", // statement_timeout + 1s
	"database.probe_interval":       DefaultProbeInterval.String(),
	"national.leg_timeout":          DefaultLegTimeout.String(),
	"national.concurrency":          DefaultNationalConcurrency,
	"national.cache_ttl":            DefaultNationalCacheTTL.String(),
}

// Load reads the YAML file at path, applies environment overrides from
// getenv and validates the result. Shards are overridden by name:
// DMSROUTER_SHARDS_S03_PRIMARY, _ADMIN, _MAX_CONNS and _REPLICAS (comma
// separated). The error names every offending key.
func Load(path string, getenv func(string) string) (Config, error) {
	v := viper.New()
	v.SetConfigFile(path)
	v.SetConfigType("yaml")
	for k, d := range defaults {
		v.SetDefault(k, d)
	}
	if err := v.ReadInConfig(); err != nil {
		return Config{}, fmt.Errorf("read config %s: %w", path, err)
	}
	for _, key := range v.AllKeys() {
		if val := getenv(envName(key)); val != "" {
			v.Set(key, val)
		}
	}
	var cfg Config
	err := v.UnmarshalExact(&cfg, viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		mapstructure.StringToTimeDurationHookFunc(),
		mapstructure.StringToSliceHookFunc(","),
	)))
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	if err := overrideShards(cfg.Shards, getenv); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

func envName(key string) string {
	r := strings.NewReplacer(".", "_", "-", "_")
	return EnvPrefix + strings.ToUpper(r.Replace(key))
}

func overrideShards(shards []ShardConfig, getenv func(string) string) error {
	for i := range shards {
		s := &shards[i]
		prefix := envName("shards." + s.Name + ".")
		if v := getenv(prefix + "PRIMARY"); v != "" {
			s.Primary = v
		}
		if v := getenv(prefix + "ADMIN"); v != "" {
			s.Admin = v
		}
		if v := getenv(prefix + "REPLICAS"); v != "" {
			s.Replicas = strings.Split(v, ",")
		}
		if v := getenv(prefix + "MAX_CONNS"); v != "" {
			n, err := strconv.ParseInt(v, 10, 32)
			if err != nil {
				return fmt.Errorf("%sMAX_CONNS: %q is not a number", prefix, v)
			}
			s.MaxConns = int32(n)
		}
	}
	return nil
}

var shardName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,39}$`)

// Validate checks the configuration and returns every problem found, each
// naming its key: a region missing or unknown, an unknown shard, a duplicate
// shard name, a DSN that does not parse, a bad limit or timeout.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.Server.Addr == "" {
		bad("server.addr", "must not be empty")
	}
	if c.Auth.HS256Secret == "" && c.Auth.PublicKeyFile == "" {
		bad("auth", "set hs256_secret (development) or public_key_file (production)")
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
		"database.query_timeout":  d.QueryTimeout,
		"database.probe_interval": d.ProbeInterval,
	} {
		if val < 0 || val > time.Hour {
			bad(key, "%s is outside 0..1h (0 means the default)", val)
		}
	}
	if d.BreakerFailures == 0 {
		bad("database.breaker_failures", "must be at least 1")
	}
	n := c.National
	if n.LegTimeout < 0 || n.LegTimeout > time.Minute {
		bad("national.leg_timeout", "%s is outside 0..1m (0 means the default, %s)", n.LegTimeout, DefaultLegTimeout)
	}
	if n.Concurrency < 0 || n.Concurrency > 64 {
		bad("national.concurrency", "%d is outside 0..64 (0 means the default, %d)", n.Concurrency, DefaultNationalConcurrency)
	}
	if n.CacheTTL < 0 || n.CacheTTL > time.Minute {
		bad("national.cache_ttl", "%s is outside 0..1m (0 disables the cache)", n.CacheTTL)
	}
	if len(c.Shards) == 0 {
		bad("shards", "at least one shard is required")
	}
	names := map[string]bool{}
	for i, s := range c.Shards {
		key := fmt.Sprintf("shards[%d]", i)
		if !shardName.MatchString(s.Name) {
			bad(key+".name", "%q must be lower case letters, digits, '-' or '_', starting with a letter", s.Name)
		} else if names[s.Name] {
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
