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
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"

	"github.com/dmshub/dmsrouter/auth"
	"github.com/dmshub/dmsrouter/control"
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
}

// Server configures the HTTP listener.
type Server struct {
	Addr            string        `mapstructure:"addr"`
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`
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
	"database.probe_interval":       shardmap.DefaultProbeInterval.String(),
	"national.leg_timeout":          national.DefaultLegTimeout.String(),
	"national.concurrency":          national.DefaultConcurrency,
	"national.cache_ttl":            national.DefaultCacheTTL.String(),
	"control.dsn":                   "", // no control database: the file's regions rule
	"control.poll_interval":         "0s",
	"control.router_id":             "",
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
	if err := overrideShards(cfg.ShardMap.Shards, getenv); err != nil {
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

func overrideShards(shards []shardmap.ShardConfig, getenv func(string) string) error {
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

// Validate checks every block and returns every problem found, each naming
// its key, in key order.
func (c *Config) Validate() error {
	var errs []error
	if c.Server.Addr == "" {
		errs = append(errs, errors.New("server.addr: must not be empty"))
	}
	for _, err := range []error{c.Auth.Validate(), c.National.Validate(), c.ShardMap.Validate(), c.Control.Validate()} {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = append(errs, j.Unwrap()...)
		} else if err != nil {
			errs = append(errs, err)
		}
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errors.Join(errs...)
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
