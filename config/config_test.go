package config_test

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dmshub/dmsrouter/auth"
	"github.com/dmshub/dmsrouter/config"
	"github.com/dmshub/dmsrouter/control"
	"github.com/dmshub/dmsrouter/jobs"
	"github.com/dmshub/dmsrouter/national"
	"github.com/dmshub/dmsrouter/regions"
)

// good is a configuration that loads: server, auth, one shard serving all
// 20 regions; everything else takes its default.
func good() string {
	var b strings.Builder
	b.WriteString("server:\n  addr: \"127.0.0.1:9\"\nauth:\n  hs256_secret: \"0123456789abcdef\"\n" +
		"shards:\n  - name: s1\n    primary: \"postgres://dms_app@127.0.0.1:5432/dms?sslmode=disable\"\n    max_conns: 4\nregions:\n")
	for _, r := range regions.All() {
		b.WriteString("  \"" + string(r.Code) + "\": s1\n")
	}
	return b.String()
}

func write(tb testing.TB, body string) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

func noenv(string) string { return "" }

func TestLoad(t *testing.T) {
	cfg, err := config.Load(write(t, good()), noenv)
	if err != nil {
		t.Fatalf("Load(good) error: %v", err)
	}
	sm := cfg.ShardMap
	if cfg.Server.Addr != "127.0.0.1:9" || cfg.Server.ShutdownTimeout != 10*time.Second || cfg.Auth.HS256Secret != "0123456789abcdef" ||
		sm.Database.StatementTimeout != 5*time.Second || sm.Database.BreakerFailures != 5 || len(sm.Regions) != 20 ||
		len(sm.Shards) != 1 || sm.Shards[0].MaxConns != 4 {
		t.Errorf("Load(good) = %+v", cfg)
	}
	if cfg.Jobs.IdempotencyRetention != 24*time.Hour {
		t.Errorf("Load(good).Jobs.IdempotencyRetention = %s, want the default 24h", cfg.Jobs.IdempotencyRetention)
	}
	if want := jobs.DefaultConfig().Lifecycle; !reflect.DeepEqual(cfg.Jobs.Lifecycle, want) {
		t.Errorf("Load(good).Jobs.Lifecycle = %+v, want the default %+v (L. 214/2023)", cfg.Jobs.Lifecycle, want)
	}
	for _, tt := range []struct {
		yaml string
		want []jobs.Extension
	}{
		{"jobs:\n  lifecycle:\n    extensions: []\n", []jobs.Extension{}},
		{"jobs:\n  lifecycle:\n    extensions:\n      - in_force_on: 2023-12-31\n        until: 2025-12-31\n      - {in_force_on: \"2026-06-30\", until: \"2027-06-30\"}\n",
			[]jobs.Extension{jobs.DefaultConfig().Lifecycle.Extensions[0],
				{InForceOn: time.Date(2026, 6, 30, 0, 0, 0, 0, time.UTC), Until: time.Date(2027, 6, 30, 0, 0, 0, 0, time.UTC)}}},
	} {
		c, err := config.Load(write(t, good()+tt.yaml), noenv)
		if err != nil || !slices.EqualFunc(c.Jobs.Lifecycle.Extensions, tt.want, func(a, b jobs.Extension) bool {
			return a.InForceOn.Equal(b.InForceOn) && a.Until.Equal(b.Until)
		}) {
			t.Errorf("Load(%q).Jobs.Lifecycle.Extensions = %+v, %v; want %+v", tt.yaml, c.Jobs.Lifecycle.Extensions, err, tt.want)
		}
	}
	if cfg.Server.MetricsAddr != "127.0.0.1:9090" {
		t.Errorf("Load(good).Server.MetricsAddr = %q, want the default 127.0.0.1:9090", cfg.Server.MetricsAddr)
	}
	noMetrics, err := config.Load(write(t, strings.Replace(good(), "server:\n", "server:\n  metrics_addr: \"\"\n", 1)), noenv)
	if err != nil || noMetrics.Server.MetricsAddr != "" {
		t.Errorf("Load(metrics_addr \"\") = %q, %v; want \"\" (no metrics listener)", noMetrics.Server.MetricsAddr, err)
	}
	if want := (config.Telemetry{ServiceName: "dmsrouter", SampleRatio: config.DefaultSampleRatio}); cfg.Telemetry != want {
		t.Errorf("Load(good).Telemetry = %+v, want the defaults %+v (no export)", cfg.Telemetry, want)
	}
	for _, tt := range []struct {
		yaml string
		env  map[string]string
		want config.Telemetry
	}{
		{"telemetry:\n  service_name: dmsrouter-nord\n  otlp_endpoint: http://127.0.0.1:4318\n  sample_ratio: 1\n", nil,
			config.Telemetry{ServiceName: "dmsrouter-nord", OTLPEndpoint: "http://127.0.0.1:4318", SampleRatio: 1}},
		{"", map[string]string{"DMSROUTER_TELEMETRY_OTLP_ENDPOINT": "https://collector.example:4318/otlp", "DMSROUTER_TELEMETRY_SAMPLE_RATIO": "0"},
			config.Telemetry{ServiceName: "dmsrouter", OTLPEndpoint: "https://collector.example:4318/otlp", SampleRatio: 0}},
	} {
		c, err := config.Load(write(t, good()+tt.yaml), func(k string) string { return tt.env[k] })
		if err != nil || c.Telemetry != tt.want {
			t.Errorf("Load(%q, %v).Telemetry = %+v, %v; want %+v", tt.yaml, tt.env, c.Telemetry, err, tt.want)
		}
	}
	if want := (auth.Config{HS256Secret: "0123456789abcdef", JWKSRefresh: auth.DefaultJWKSRefresh}); cfg.Auth != want {
		t.Errorf("Load(good).Auth = %+v, want %+v (no key set, any iss and aud)", cfg.Auth, want)
	}
	want := national.Config{LegTimeout: national.DefaultLegTimeout, Concurrency: national.DefaultConcurrency, CacheTTL: national.DefaultCacheTTL}
	if cfg.National != want {
		t.Errorf("Load(good).National = %+v, want the defaults %+v", cfg.National, want)
	}

	env := map[string]string{
		"DMSROUTER_AUTH_HS256_SECRET":        "from-the-environment",
		"DMSROUTER_SERVER_ADDR":              "127.0.0.1:10",
		"DMSROUTER_SHARDS_S1_PRIMARY":        "postgres://other@127.0.0.1:5433/x",
		"DMSROUTER_SHARDS_S1_REPLICAS":       "postgres://r1@127.0.0.1:5434/x,postgres://r2@127.0.0.1:5435/x",
		"DMSROUTER_SHARDS_S1_MAX_CONNS":      "7",
		"DMSROUTER_DATABASE_ACQUIRE_TIMEOUT": "250ms",
		"DMSROUTER_NATIONAL_CONCURRENCY":     "3",
	}
	cfg, err = config.Load(write(t, good()), func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("Load(env) error: %v", err)
	}
	sh := cfg.ShardMap.Shards[0]
	if cfg.Auth.HS256Secret != "from-the-environment" || cfg.Server.Addr != "127.0.0.1:10" ||
		sh.Primary != env["DMSROUTER_SHARDS_S1_PRIMARY"] || len(sh.Replicas) != 2 || sh.MaxConns != 7 ||
		cfg.ShardMap.Database.AcquireTimeout != 250*time.Millisecond || cfg.National.Concurrency != 3 {
		t.Errorf("Load(env) = %+v, want environment overrides", cfg)
	}
}

func TestLoadErrors(t *testing.T) {
	g := good()
	tests := []struct {
		name, body string
		env        map[string]string
		want       string
		not        string // when set, a text the error must not contain
	}{
		{"no file", "", nil, "read config", ""},
		{"region missing", strings.Replace(g, "  \"07\": s1\n", "", 1), nil, "regions.07", ""},
		{"unknown shard", strings.Replace(g, "\"07\": s1", "\"07\": s9", 1), nil, `regions.07: unknown shard "s9"`, ""},
		{"unquoted region", strings.Replace(g, "\"07\": s1", "7: s1", 1), nil, "regions.7", ""},
		{"unknown region", g + "  \"21\": s1\n", nil, "regions.21", ""},
		{"region mapped twice", g + "  \"07\": s1\n", nil, "07", ""},
		{"bad dsn", strings.Replace(g, "postgres://dms_app@127.0.0.1:5432/dms?sslmode=disable", "postgres://x@host:notaport/db", 1), nil, "shards[s1].primary: cannot parse DSN", "DMSROUTER_"},
		{"unknown key", g + "extra: 1\n", nil, "extra", ""},
		{"unknown nested key", strings.Replace(g, "max_conns: 4", "max_conns: 4\n    maxconns: 4", 1), nil, "maxconns", ""},
		{"unknown national key", g + "national:\n  legtimeout: 1s\n", nil, "legtimeout", ""},
		{"no secret", strings.Replace(g, "hs256_secret: \"0123456789abcdef\"", "hs256_secret: \"\"", 1), nil, "auth: set hs256_secret", ""},
		{"jwks url not http", strings.Replace(g, "auth:\n", "auth:\n  jwks_url: ldap://idp.example/keys\n", 1), nil, `auth.jwks_url: "ldap://idp.example/keys" is not an http(s) URL`, ""},
		{"jwks refresh too short", strings.Replace(g, "auth:\n", "auth:\n  jwks_url: https://idp.example/jwks.json\n  jwks_refresh: 10s\n", 1), nil, "auth.jwks_refresh: 10s is outside 1m..24h", ""},
		{"env jwks refresh", g, map[string]string{"DMSROUTER_AUTH_JWKS_REFRESH": "48h"},
			"DMSROUTER_AUTH_JWKS_REFRESH (environment): auth.jwks_refresh: 48h0m0s is outside 1m..24h", ""},
		{"unknown auth key", strings.Replace(g, "auth:\n", "auth:\n  jwks: https://idp.example/jwks.json\n", 1), nil, "jwks", ""},
		{"duplicate shard", strings.Replace(g, "regions:", "  - name: s1\n    primary: \"postgres://a@b/c\"\nregions:", 1), nil, "defined twice", ""},
		{"empty addr", strings.Replace(g, "addr: \"127.0.0.1:9\"", "addr: \"\"", 1), nil, "server.addr: must not be empty", ""},
		{"metrics addr", strings.Replace(g, "server:\n", "server:\n  metrics_addr: \"9090\"\n", 1), nil, `server.metrics_addr: "9090" is not host:port`, ""},
		{"drain delay negative", strings.Replace(g, "server:\n", "server:\n  drain_delay: -1s\n", 1), nil, "server.drain_delay: -1s is out of range", ""},
		{"drain delay too long", g, map[string]string{"DMSROUTER_SERVER_DRAIN_DELAY": "2m"}, "server.drain_delay: 2m0s is out of range", ""},
		{"max in flight negative", strings.Replace(g, "server:\n", "server:\n  max_in_flight: -1\n", 1), nil, "server.max_in_flight: -1 is out of range", ""},
		{"max in flight too many", g, map[string]string{"DMSROUTER_SERVER_MAX_IN_FLIGHT": "2000000"}, "server.max_in_flight: 2000000 is out of range", ""},
		{"leg timeout", g + "national:\n  leg_timeout: 2m\n", nil, "national.leg_timeout: 2m0s is outside 0..1m", ""},
		{"concurrency", g + "national:\n  concurrency: 65\n", nil, "national.concurrency: 65 is outside 0..64", ""},
		{"warm conns", g + "database:\n  warm_conns: -2\n", nil, "database.warm_conns: -2 is outside 0..1000", ""},
		{"env warm conns", g, map[string]string{"DMSROUTER_DATABASE_WARM_CONNS": "1001"},
			"DMSROUTER_DATABASE_WARM_CONNS (environment): database.warm_conns: 1001 is outside 0..1000", ""},
		{"max waiting", g + "database:\n  max_waiting: -1\n", nil, "database.max_waiting: -1 is outside 0..100000", ""},
		{"env max waiting", g, map[string]string{"DMSROUTER_DATABASE_MAX_WAITING": "100001"},
			"DMSROUTER_DATABASE_MAX_WAITING (environment): database.max_waiting: 100001 is outside 0..100000", ""},
		{"cache ttl", g + "national:\n  cache_ttl: -1s\n", nil, "national.cache_ttl: -1s is outside 0..1m", ""},
		{"rate limit negative", g + "national:\n  rate_limit: -1\n", nil, "national.rate_limit: -1 is outside 0..1000", ""},
		{"rate limit too high", g, map[string]string{"DMSROUTER_NATIONAL_RATE_LIMIT": "5000"},
			"DMSROUTER_NATIONAL_RATE_LIMIT (environment): national.rate_limit: 5000 is outside 0..1000", ""},
		{"rate limit not a number", g + "national:\n  rate_limit: fast\n", nil, "rate_limit", ""},
		{"rate burst negative", g + "national:\n  rate_limit: 1\n  rate_burst: -5\n", nil, "national.rate_burst: -5 is outside 0..1000", ""},
		{"rate burst without limit", g + "national:\n  rate_burst: 5\n", nil, "national.rate_burst: 5 is set but national.rate_limit is 0", ""},
		{"retention too short", g + "jobs:\n  idempotency_retention: 30m\n", nil, "jobs.idempotency_retention: 30m0s is outside 1h..2160h", ""},
		{"unknown jobs key", g + "jobs:\n  retention: 1h\n", nil, "retention", ""},
		{"extension ends before it starts", g + "jobs:\n  lifecycle:\n    extensions:\n      - {in_force_on: 2025-12-31, until: 2023-12-31}\n", nil,
			"jobs.lifecycle.extensions[0]: until 2023-12-31 must be after in_force_on 2025-12-31", ""},
		{"extension without until", g + "jobs:\n  lifecycle:\n    extensions:\n      - {in_force_on: 2025-12-31}\n", nil,
			"jobs.lifecycle.extensions[0]: needs in_force_on and until", ""},
		{"extension not a date", g + "jobs:\n  lifecycle:\n    extensions:\n      - {in_force_on: 31/12/2023, until: 2025-12-31}\n", nil,
			"in_force_on", ""},
		{"telemetry service name", g + "telemetry:\n  service_name: \"\"\n", nil, "telemetry.service_name: must not be empty", ""},
		{"telemetry endpoint without scheme", g + "telemetry:\n  otlp_endpoint: 127.0.0.1:4318\n", nil, `telemetry.otlp_endpoint: "127.0.0.1:4318" is not an http(s) base URL`, ""},
		{"telemetry endpoint grpc", g + "telemetry:\n  otlp_endpoint: grpc://collector:4317\n", nil, `telemetry.otlp_endpoint: "grpc://collector:4317"`, ""},
		{"telemetry ratio", g + "telemetry:\n  sample_ratio: 1.5\n", nil, "telemetry.sample_ratio: 1.5 is outside 0..1", ""},
		{"telemetry unknown key", g + "telemetry:\n  endpoint: http://127.0.0.1:4318\n", nil, "endpoint", ""},
		{"env telemetry ratio", g, map[string]string{"DMSROUTER_TELEMETRY_SAMPLE_RATIO": "-0.5"},
			"DMSROUTER_TELEMETRY_SAMPLE_RATIO (environment): telemetry.sample_ratio: -0.5 is outside 0..1", ""},
		{"env max conns", g, map[string]string{"DMSROUTER_SHARDS_S1_MAX_CONNS": "many"}, `DMSROUTER_SHARDS_S1_MAX_CONNS: "many" is not a number`, ""},
		{"env bad duration", g, map[string]string{"DMSROUTER_DATABASE_CONNECT_TIMEOUT": "soon"}, "DMSROUTER_DATABASE_CONNECT_TIMEOUT (environment): database.connect_timeout", ""},

		// A bad value from the environment is reported under its variable,
		// a bad value of the file under its key only.
		{"env bad dsn", g, map[string]string{"DMSROUTER_SHARDS_S1_PRIMARY": "postgres://x@host:notaport/db"},
			"DMSROUTER_SHARDS_S1_PRIMARY (environment): shards[s1].primary: cannot parse DSN", ""},
		{"env bad admin dsn", g, map[string]string{"DMSROUTER_SHARDS_S1_ADMIN": "postgres://x@host:notaport/db"},
			"DMSROUTER_SHARDS_S1_ADMIN (environment): shards[s1].admin: cannot parse DSN", ""},
		{"env bad replica", g, map[string]string{"DMSROUTER_SHARDS_S1_REPLICAS": "postgres://r@h/x,postgres://x@host:notaport/db"},
			"DMSROUTER_SHARDS_S1_REPLICAS (environment): shards[s1].replicas[1]: cannot parse DSN", ""},
		{"env max conns out of range", g, map[string]string{"DMSROUTER_SHARDS_S1_MAX_CONNS": "5000"},
			"DMSROUTER_SHARDS_S1_MAX_CONNS (environment): shards[s1].max_conns: 5000 is outside", ""},
		{"env concurrency", g, map[string]string{"DMSROUTER_NATIONAL_CONCURRENCY": "65"},
			"DMSROUTER_NATIONAL_CONCURRENCY (environment): national.concurrency: 65 is outside 0..64", ""},
		{"env region to unknown shard", g, map[string]string{"DMSROUTER_REGIONS_07": "s9"},
			`DMSROUTER_REGIONS_07 (environment): regions.07: unknown shard "s9"`, ""},
		{"file bad dsn with an env override", strings.Replace(g, "postgres://dms_app@127.0.0.1:5432/dms?sslmode=disable", "postgres://x@host:notaport/db", 1),
			map[string]string{"DMSROUTER_SHARDS_S1_MAX_CONNS": "3", "DMSROUTER_NATIONAL_CONCURRENCY": "3"}, "shards[s1].primary: cannot parse DSN", "DMSROUTER_"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "missing.yaml")
			if tt.body != "" {
				path = write(t, tt.body)
			}
			_, err := config.Load(path, func(k string) string { return tt.env[k] })
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Load(%s) error = %v, want it to name %q", tt.name, err, tt.want)
			}
			if tt.not != "" && err != nil && strings.Contains(err.Error(), tt.not) {
				t.Errorf("Load(%s) error = %v, want no %q in it", tt.name, err, tt.not)
			}
		})
	}
}

// TestLoadShardOverrideNames checks that a DMSROUTER_SHARDS_ variable of the
// process's environment that names no shard of the file, or no field, is
// refused under its name instead of being ignored.
func TestLoadShardOverrideNames(t *testing.T) {
	path := write(t, good())
	tests := []struct {
		name, val string
		want      string // a substring of the error; "" means Load succeeds
	}{
		{"DMSROUTER_SHARDS_S1_PRIMARY", "postgres://other@127.0.0.1:5433/x", ""},
		{"DMSROUTER_SHARDS_S1_MAX_CONNS", "3", ""},
		{"DMSROUTER_BENCH_CONFIG", "configs/monolith.dev.yaml", ""},
		{"DMSROUTER_SHARDS_S3_PRIMARY", "postgres://a@b/c", `DMSROUTER_SHARDS_S3_PRIMARY: no shard "s3" in the file (shards: s1)`},
		{"DMSROUTER_SHARDS_S01_MAX_CONNS", "3", `DMSROUTER_SHARDS_S01_MAX_CONNS: no shard "s01"`},
		{"DMSROUTER_SHARDS_S1_PRIMARI", "postgres://a@b/c", "DMSROUTER_SHARDS_S1_PRIMARI: unknown shard field"},
		{"DMSROUTER_SHARDS_S1_MAXCONNS", "3", "DMSROUTER_SHARDS_S1_MAXCONNS: unknown shard field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(tt.name, tt.val)
			_, err := config.Load(path, os.Getenv)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Load with %s=%s: %v, want nil error", tt.name, tt.val, err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Load with %s=%s: %v, want an error naming %q", tt.name, tt.val, err, tt.want)
			}
			// Only the variables getenv gives count.
			if _, err := config.Load(path, noenv); err != nil {
				t.Errorf("Load with %s set and getenv giving nothing: %v, want nil error", tt.name, err)
			}
		})
	}
}

// TestValidateOrder checks that the problems of every block come back
// together, sorted by key.
func TestValidateOrder(t *testing.T) {
	cfg := config.Config{National: national.Config{Concurrency: -1}}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate(empty) = nil, want errors")
	}
	lines := strings.Split(err.Error(), "\n")
	for _, prefix := range []string{"auth:", "database.", "national.concurrency:", "server.addr:", "shards:"} {
		if !strings.Contains(err.Error(), "\n"+prefix) && !strings.HasPrefix(err.Error(), prefix) {
			t.Errorf("Validate(empty) = %q, want a line starting %q", err, prefix)
		}
	}
	for i := 1; i < len(lines); i++ {
		if lines[i-1] > lines[i] {
			t.Errorf("Validate lines out of order: %q before %q", lines[i-1], lines[i])
		}
	}
}

// TestLoadControl checks the control block: absent it is off, present it
// is read with its defaults, the environment sets it like any key, and a
// shard that serves no region (the target of a future move) may stand in
// the file.
func TestLoadControl(t *testing.T) {
	const dsn = "postgres://postgres@127.0.0.1:54329/dms_control?sslmode=disable"
	spare := "  - name: spare\n    primary: \"postgres://dms_app@127.0.0.1:5432/spare?sslmode=disable\"\n"
	withSpare := strings.Replace(good(), "regions:\n", spare+"regions:\n", 1)
	for _, tc := range []struct {
		name, body string
		env        map[string]string
		want       control.Config
	}{
		{"no control block", good(), nil, control.Config{}},
		{"control block", good() + "control:\n  dsn: \"" + dsn + "\"\n  poll_interval: 500ms\n", nil,
			control.Config{DSN: dsn, PollInterval: 500 * time.Millisecond}},
		{"dsn from the environment", good(), map[string]string{"DMSROUTER_CONTROL_DSN": dsn, "DMSROUTER_CONTROL_ROUTER_ID": "r1"},
			control.Config{DSN: dsn, RouterID: "r1"}},
		{"a shard with no regions", withSpare + "control:\n  dsn: \"" + dsn + "\"\n", nil, control.Config{DSN: dsn}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Load(write(t, tc.body), func(k string) string { return tc.env[k] })
			if err != nil {
				t.Fatalf("Load error: %v", err)
			}
			if cfg.Control != tc.want {
				t.Errorf("Load().Control = %+v, want %+v", cfg.Control, tc.want)
			}
			if got := cfg.Control.Enabled(); got != (tc.want.DSN != "") {
				t.Errorf("Load().Control.Enabled() = %v, want %v", got, !got)
			}
		})
	}
	for _, tc := range []struct{ name, block, want string }{
		{"bad dsn", "control:\n  dsn: \"postgres://x@host:notaport/db\"\n", "control.dsn: cannot parse DSN"},
		{"poll too fast", "control:\n  dsn: \"" + dsn + "\"\n  poll_interval: 10ms\n", "control.poll_interval: 10ms is outside 100ms..10m"},
		{"poll without dsn", "control:\n  poll_interval: 1s\n", "control.dsn: must be set when the control block has other keys"},
		{"unknown control key", "control:\n  dsn: \"" + dsn + "\"\n  interval: 1s\n", "interval"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := config.Load(write(t, good()+tc.block), noenv); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load(%s) error = %v, want it to name %q", tc.name, err, tc.want)
			}
		})
	}
}

func TestLoadRegions(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"regions", "regions:\n  \"03\": s03b\n  \"05\": s05\n", ""},
		{"no regions block", "regions: {}\n", "no regions block"},
		{"other keys", "regions:\n  \"03\": s03\nextra: 1\n", "extra"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := config.LoadRegions(write(t, tc.body))
			switch {
			case tc.want == "" && (err != nil || got["03"] != "s03b" || len(got) != 2):
				t.Errorf("LoadRegions = %v, %v; want 03: s03b and 05: s05", got, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("LoadRegions error = %v, want it to name %q", err, tc.want)
			}
		})
	}
}
