// Package config loads dmsrouter's configuration file: it is the only
// package that knows viper, the file's YAML layout, the defaults and the
// DMSROUTER_ environment overrides. It composes the typed settings each
// package defines (auth.Config, national.Config, shardmap.Config,
// control.Config) with the
// server's own into one Config, validates them all and hands them out.
//
// It may import auth, control, national and shardmap for their Config types. Only
// the commands, and tests that read a configuration file, import config.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"

	"github.com/dmshub/dmsrouter/auth"
	"github.com/dmshub/dmsrouter/control"
	"github.com/dmshub/dmsrouter/jobs"
	"github.com/dmshub/dmsrouter/national"
	"github.com/dmshub/dmsrouter/shardmap"
)

// EnvPrefix prefixes the environment variables that override configuration
// keys: DMSROUTER_AUTH_HS256_SECRET overrides auth.hs256_secret.
const EnvPrefix = "DMSROUTER_"

// Config is the router's whole configuration: the HTTP server, the
// authentication keys, the national fan-out and the shard map (database
// settings, shards and region assignments, which sit at the top level of
// the file) and the control database, which holds the region assignments
// instead of the file when it is set.
type Config struct {
	Server   Server          `mapstructure:"server"`
	Auth     auth.Config     `mapstructure:"auth"`
	National national.Config `mapstructure:"national"`
	ShardMap shardmap.Config `mapstructure:",squash"`
	Control  control.Config  `mapstructure:"control"`
	Jobs     jobs.Config     `mapstructure:"jobs"`
	// Telemetry names the service in its telemetry and says where its
	// traces go.
	Telemetry Telemetry `mapstructure:"telemetry"`
}

// Telemetry is the telemetry section: the service's name in its traces and
// metrics, the base URL of the OTLP/HTTP receiver its spans are exported to
// in batches ("" exports none) and the share of the traces it starts that
// are sampled; a request carrying a W3C traceparent follows its caller's
// sampling decision instead.
type Telemetry struct {
	ServiceName  string  `mapstructure:"service_name"`
	OTLPEndpoint string  `mapstructure:"otlp_endpoint"`
	SampleRatio  float64 `mapstructure:"sample_ratio"`
}

// DefaultSampleRatio is telemetry.sample_ratio's default: one trace in ten,
// which costs well under the 5% of throughput BENCHMARKS.md allows.
const DefaultSampleRatio = 0.1

// Server configures the HTTP listeners: the API on Addr, the Prometheus
// metrics on MetricsAddr ("" serves none). The metrics have a listener of
// their own, on the loopback by default, so that the API's callers cannot
// read them. On shutdown /readyz answers 503 for DrainDelay (so that a
// load balancer's readiness probe takes the router out first), then the
// listeners close and requests in flight get ShutdownTimeout to finish.
// MaxInFlight bounds the API requests (/v1) the router serves at once (0:
// no bound); one more is refused at once, before its token is verified,
// with 503 /problems/overloaded.
type Server struct {
	Addr            string        `mapstructure:"addr"`
	MetricsAddr     string        `mapstructure:"metrics_addr"`
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`
	DrainDelay      time.Duration `mapstructure:"drain_delay"`
	MaxInFlight     int           `mapstructure:"max_in_flight"`
	CORS            CORS          `mapstructure:"cors"`
}

// CORS is the server.cors block: the exact origins of the browser
// dashboards that may call the API from other origins (scheme://host[:port]
// as browsers send it, never "*": the answers allow credentials, and the
// cross-origin protection of writes trusts the same origins), and how long a
// browser may keep a preflight's answer. The router takes it as
// router.CORS, which has the same fields.
type CORS struct {
	AllowedOrigins []string      `mapstructure:"allowed_origins"`
	MaxAge         time.Duration `mapstructure:"max_age"`
}

// validate returns a problem for each origin that is not an exact origin
// and for a max_age outside 0s..24h.
func (c CORS) validate() []error {
	var errs []error
	for i, o := range c.AllowedOrigins {
		if msg := badOrigin(o); msg != "" {
			errs = append(errs, fmt.Errorf("server.cors.allowed_origins[%d]: %q %s", i, o, msg))
		}
	}
	if c.MaxAge < 0 || c.MaxAge > 24*time.Hour {
		errs = append(errs, fmt.Errorf("server.cors.max_age: %s is outside 0s..24h", c.MaxAge))
	}
	return errs
}

// badOrigin says what keeps o from being an origin as browsers send it in
// the Origin header, or "".
func badOrigin(o string) string {
	if o == "*" || o == "null" {
		return "is not allowed: name each origin exactly (the answers allow credentials)"
	}
	u, err := url.Parse(o)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "":
		return "is not an origin such as https://dashboard.example.it"
	case u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(o, "?#"):
		return "must be scheme://host[:port] alone, without user, path, query or fragment"
	case o != strings.ToLower(o):
		return "must be lower case, as browsers send it"
	case (u.Scheme == "https" && u.Port() == "443") || (u.Scheme == "http" && u.Port() == "80"):
		return "must leave out the scheme's default port, as browsers do"
	}
	return ""
}

var defaults = map[string]any{
	"server.addr":                   "127.0.0.1:8080",
	"server.metrics_addr":           "127.0.0.1:9090",
	"server.shutdown_timeout":       "10s",
	"server.drain_delay":            "0s",
	"server.max_in_flight":          0,          // no bound
	"server.cors.allowed_origins":   []string{}, // no dashboard on another origin
	"server.cors.max_age":           "10m",
	"auth.hs256_secret":             "",
	"auth.public_key_file":          "",
	"auth.jwks_url":                 "", // no identity provider's key set
	"auth.jwks_refresh":             auth.DefaultJWKSRefresh.String(),
	"auth.issuer":                   "", // any iss
	"auth.audience":                 "", // any aud
	"database.connect_timeout":      "2s",
	"database.acquire_timeout":      "1s",
	"database.statement_timeout":    "5s",
	"database.breaker_failures":     5,
	"database.breaker_open_timeout": "10s",
	"database.query_timeout":        "0s", // statement_timeout + 1s
	"database.probe_interval":       shardmap.DefaultProbeInterval.String(),
	"database.max_replica_lag":      shardmap.DefaultMaxReplicaLag.String(),
	"database.warm_conns":           1, // ready with a warm connection per pool (shardmap.Database.WarmConns)
	"database.max_waiting":          0, // no limit: a call waits up to acquire_timeout
	"national.leg_timeout":          national.DefaultLegTimeout.String(),
	"national.concurrency":          national.DefaultConcurrency,
	"national.cache_ttl":            national.DefaultCacheTTL.String(),
	"national.rate_limit":           0,  // no limit
	"national.rate_burst":           0,  // national.DefaultRateBurst when rate_limit is set
	"control.dsn":                   "", // no control database: the file's regions rule
	"control.poll_interval":         "0s",
	"control.router_id":             "",
	"telemetry.service_name":        "dmsrouter",
	"telemetry.otlp_endpoint":       "", // export no spans
	"telemetry.sample_ratio":        DefaultSampleRatio,
	"jobs.idempotency_retention":    jobs.DefaultConfig().IdempotencyRetention.String(),
	"jobs.lifecycle.extensions":     extensionDefaults(jobs.DefaultConfig().Lifecycle.Extensions),
}

// extensionDefaults returns exts as the file would spell them, the default
// of jobs.lifecycle.extensions.
func extensionDefaults(exts []jobs.Extension) []any {
	out := []any{}
	for _, e := range exts {
		out = append(out, map[string]any{"in_force_on": e.InForceOn.Format(time.DateOnly), "until": e.Until.Format(time.DateOnly)})
	}
	return out
}

// Load reads the YAML file at path, applies environment overrides from
// getenv and validates the result. Shards are overridden by name:
// DMSROUTER_SHARDS_S03_PRIMARY, _ADMIN, _MAX_CONNS and _REPLICAS (comma
// separated).
//
// The error names every offending key; when the bad value came from the
// environment it names the variable first. A DMSROUTER_SHARDS_ variable
// that names no shard of the file, or no shard field, is an error too (a
// misspelled override would otherwise be ignored). Load finds those among
// the process's variables (os.Environ) whose value getenv returns; other
// DMSROUTER_ variables that match no key are ignored, as tools have their own.
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
	cfg, err := decode(v)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	cfg, fromEnv, errs := overrideKeys(v, cfg, getenv)
	errs = append(errs, overrideShards(cfg.ShardMap.Shards, getenv, environNames(getenv), fromEnv)...)
	// The overrides that failed left the file's values, which Validate
	// checks with the rest.
	errs = append(errs, blame(cfg.Validate(), fromEnv)...)
	if len(errs) > 0 {
		return Config{}, fmt.Errorf("config %s: %w", path, errors.Join(errs...))
	}
	return cfg, nil
}

// decode unmarshals v, refusing keys Config does not have.
func decode(v *viper.Viper) (Config, error) {
	var cfg Config
	err := v.UnmarshalExact(&cfg, viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		mapstructure.StringToTimeDurationHookFunc(),
		mapstructure.StringToSliceHookFunc(","),
		mapstructure.StringToTimeHookFunc(time.DateOnly), // jobs.lifecycle.extensions
	)))
	return cfg, err
}

// overrideKeys sets each key of v whose variable getenv returns non-empty,
// one at a time, so that a value that does not decode is reported under its
// variable and left out. It returns cfg, v decoded, with the overrides that
// decoded, and the variable that set each key.
func overrideKeys(v *viper.Viper, cfg Config, getenv func(string) string) (Config, map[string]string, []error) {
	keys := v.AllKeys()
	sort.Strings(keys)
	fromEnv := map[string]string{}
	var errs []error
	for _, key := range keys {
		name := envName(key)
		val := getenv(name)
		if val == "" {
			continue
		}
		old := v.Get(key)
		v.Set(key, val)
		c, err := decode(v)
		if err != nil {
			// mapstructure's error spans lines and names the key again.
			var de *mapstructure.DecodeError
			if errors.As(err, &de) {
				err = de.Unwrap()
			}
			errs = append(errs, fmt.Errorf("%s (environment): %s: %w", name, key, err))
			v.Set(key, old)
			continue
		}
		cfg = c
		fromEnv[key] = name
	}
	return cfg, fromEnv, errs
}

func envName(key string) string {
	r := strings.NewReplacer(".", "_", "-", "_")
	return EnvPrefix + strings.ToUpper(r.Replace(key))
}

// shardFields are the suffixes of a shard's override variables.
var shardFields = []string{"PRIMARY", "ADMIN", "REPLICAS", "MAX_CONNS"}

// shardKey names shard name's field as Validate does.
func shardKey(name, field string) string {
	return "shards[" + name + "]." + strings.ToLower(field)
}

// overrideShards applies the DMSROUTER_SHARDS_<NAME>_<FIELD> variables to
// shards, recording in fromEnv the variable that set each field, and
// returns an error for each variable of names (the environment's) with that
// prefix that names no shard or no field, and for a MAX_CONNS that is not a
// number.
func overrideShards(shards []shardmap.ShardConfig, getenv func(string) string, names []string, fromEnv map[string]string) []error {
	var errs []error
	known := map[string]bool{}
	for i := range shards {
		s := &shards[i]
		for _, field := range shardFields {
			name := envName("shards." + s.Name + "." + field)
			known[name] = true
			val := getenv(name)
			if val == "" {
				continue
			}
			switch field {
			case "PRIMARY":
				s.Primary = val
			case "ADMIN":
				s.Admin = val
			case "REPLICAS":
				s.Replicas = strings.Split(val, ",")
			case "MAX_CONNS":
				n, err := strconv.ParseInt(val, 10, 32)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %q is not a number", name, val))
					continue
				}
				s.MaxConns = int32(n)
			}
			fromEnv[shardKey(s.Name, field)] = name
		}
	}
	prefix := EnvPrefix + "SHARDS_"
	for _, name := range names {
		if !strings.HasPrefix(name, prefix) || known[name] {
			continue
		}
		var shard string
		for _, field := range shardFields {
			if s, ok := strings.CutSuffix(strings.TrimPrefix(name, prefix), "_"+field); ok {
				shard = s
				break
			}
		}
		if shard == "" {
			errs = append(errs, fmt.Errorf("%s: unknown shard field (want %s<SHARD>_ and one of %s)", name, prefix, strings.Join(shardFields, ", ")))
			continue
		}
		errs = append(errs, fmt.Errorf("%s: no shard %q in the file (shards: %s)", name, strings.ToLower(shard), shardNames(shards)))
	}
	return errs
}

func shardNames(shards []shardmap.ShardConfig) string {
	names := make([]string, len(shards))
	for i, s := range shards {
		names[i] = s.Name
	}
	return strings.Join(names, ", ")
}

// environNames returns the names of the process's environment variables
// that getenv gives a value, sorted.
func environNames(getenv func(string) string) []string {
	var names []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if getenv(name) != "" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// blame splits err, the result of Validate whose lines each start with the
// key they are about, and names the variable in front of each line whose
// key (or, for a list item like shards[s03].replicas[0], its list) was set
// from the environment.
func blame(err error, fromEnv map[string]string) []error {
	if err == nil {
		return nil
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for i, e := range errs {
		key, _, _ := strings.Cut(e.Error(), ": ")
		name, ok := fromEnv[key]
		if !ok && strings.HasSuffix(key, "]") {
			name, ok = fromEnv[key[:strings.LastIndexByte(key, '[')]]
		}
		if ok {
			errs[i] = fmt.Errorf("%s (environment): %w", name, e)
		}
	}
	return errs
}

// Validate checks every block and returns every problem found, each naming
// its key, in key order.
func (c *Config) Validate() error {
	var errs []error
	if c.Server.Addr == "" {
		errs = append(errs, errors.New("server.addr: must not be empty"))
	}
	if a := c.Server.MetricsAddr; a != "" {
		if _, _, err := net.SplitHostPort(a); err != nil {
			errs = append(errs, fmt.Errorf("server.metrics_addr: %q is not host:port (or \"\" to serve no metrics)", a))
		}
	}
	if d := c.Server.DrainDelay; d < 0 || d > time.Minute {
		errs = append(errs, fmt.Errorf("server.drain_delay: %s is out of range (0s..1m)", d))
	}
	if n := c.Server.MaxInFlight; n < 0 || n > 1_000_000 {
		errs = append(errs, fmt.Errorf("server.max_in_flight: %d is out of range (0..1000000; 0: no bound)", n))
	}
	errs = append(errs, c.Server.CORS.validate()...)
	errs = append(errs, c.Telemetry.validate()...)
	for _, err := range []error{c.Auth.Validate(), c.National.Validate(), c.ShardMap.Validate(), c.Control.Validate(), c.Jobs.Validate()} {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = append(errs, j.Unwrap()...)
		} else if err != nil {
			errs = append(errs, err)
		}
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errors.Join(errs...)
}

// validate returns a problem for each telemetry key that is wrong.
func (t Telemetry) validate() []error {
	var errs []error
	if t.ServiceName == "" {
		errs = append(errs, errors.New("telemetry.service_name: must not be empty"))
	}
	if e := t.OTLPEndpoint; e != "" {
		if u, err := url.Parse(e); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("telemetry.otlp_endpoint: %q is not an http(s) base URL such as http://127.0.0.1:4318 (or \"\" to export no spans)", e))
		}
	}
	if r := t.SampleRatio; !(r >= 0 && r <= 1) {
		errs = append(errs, fmt.Errorf("telemetry.sample_ratio: %v is outside 0..1", r))
	}
	return errs
}

// LoadRegions reads the YAML file at path that holds only a regions block,
// `regions: {"01": s01, ...}`, as dmsrouter shards apply takes it, and
// returns the assignments unvalidated: validate them with the shards of a
// shardmap.Config. The error names an unknown key.
func LoadRegions(path string) (map[string]string, error) {
	v := viper.New()
	v.SetConfigFile(path)
	v.SetConfigType("yaml")
	if err := v.ReadInConfig(); err != nil {
		return nil, fmt.Errorf("read regions file %s: %w", path, err)
	}
	var f struct {
		Regions map[string]string `mapstructure:"regions"`
	}
	if err := v.UnmarshalExact(&f); err != nil {
		return nil, fmt.Errorf("regions file %s: %w", path, err)
	}
	if len(f.Regions) == 0 {
		return nil, fmt.Errorf("regions file %s: no regions block (want regions: {\"01\": s01, ...}, all 20)", path)
	}
	return f.Regions, nil
}
