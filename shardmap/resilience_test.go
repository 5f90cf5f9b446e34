package shardmap_test

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sony/gobreaker/v2"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// shardIndex returns the index of the shard called name in cfg.
func shardIndex(tb testing.TB, cfg shardmap.Config, name string) int {
	tb.Helper()
	for i, s := range cfg.Shards {
		if s.Name == name {
			return i
		}
	}
	tb.Fatalf("no shard %q", name)
	return -1
}

// withURL returns dsn with edit applied to its parsed URL.
func withURL(tb testing.TB, dsn string, edit func(*url.URL)) string {
	tb.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	edit(u)
	return u.String()
}

func readOne(ctx context.Context, sh *shardmap.Shard, r regions.Code) error {
	return sh.Read(ctx, regions.Scope{Region: r}, func(b *pgx.Batch) { b.Queue(`SELECT 1`) })
}

// TestConnectFailuresAreInfrastructure checks that a connection the server
// refuses, whatever SQLSTATE it gives, is an infrastructure failure: an
// *UnavailableError (503 with Retry-After) that the breaker counts, so that
// once it is open requests fail without a new connection attempt.
func TestConnectFailuresAreInfrastructure(t *testing.T) {
	cfg := deploy(t, "connfail", twoShards())
	rest := shardIndex(t, cfg, "rest")
	dsn, admin := cfg.Shards[rest].Primary, cfg.Shards[rest].AdminDSN()
	c, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	db := pgx.Identifier{c.Database}.Sanitize()
	tests := []struct {
		name  string
		dsn   string
		setup string // run as the owner before the map opens
		code  string // the SQLSTATE of the refusal
	}{
		{"connect revoked", dsn, "REVOKE CONNECT ON DATABASE " + db + " FROM PUBLIC", "42501"},
		{"database does not exist", withURL(t, dsn, func(u *url.URL) { u.Path = "/" + c.Database + "_missing" }), "", "3D000"},
		{"role does not exist", withURL(t, dsn, func(u *url.URL) { u.User = url.User("dms_nobody") }), "", "28000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != "" {
				adminExec(t, admin, tt.setup)
				t.Cleanup(func() { adminExec(t, admin, "GRANT CONNECT ON DATABASE "+db+" TO PUBLIC") })
			}
			cfg := cfg
			cfg.Shards = append([]shardmap.ShardConfig(nil), cfg.Shards...)
			cfg.Shards[rest].Primary = tt.dsn
			cfg.Database.BreakerFailures = 3
			cfg.Database.BreakerOpenTimeout = time.Minute
			m, err := shardmap.Open(cfg, shardmap.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			sh, _ := m.For("05")
			ctx := context.Background()
			for i := range 3 {
				err := readOne(ctx, sh, "05")
				var unavailable *shardmap.UnavailableError
				var pgErr *pgconn.PgError
				if !errors.As(err, &unavailable) || unavailable.RetryAfter <= 0 {
					t.Fatalf("read %d: %v, want *UnavailableError with a RetryAfter", i, err)
				}
				if !errors.As(err, &pgErr) || pgErr.Code != tt.code {
					t.Fatalf("read %d: %v, want the server's refusal %s inside", i, err, tt.code)
				}
				if !shardmap.IsInfrastructure(err) {
					t.Errorf("IsInfrastructure(%v) = false, want true", err)
				}
			}
			if got := sh.State(); got != "open" {
				t.Fatalf("breaker after 3 refused connections = %s, want open", got)
			}
			// The open breaker refuses before any connection attempt.
			if err := readOne(ctx, sh, "05"); !errors.Is(err, gobreaker.ErrOpenState) {
				t.Errorf("read with the breaker open: %v, want the breaker's refusal", err)
			}
		})
	}
}
