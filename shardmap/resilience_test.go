package shardmap_test

import (
	"context"
	"errors"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sony/gobreaker/v2"

	"github.com/dmshub/dmsrouter/pgtest"
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
// once it is open requests fail without a new connection attempt. When the
// cause goes away, the prober closes the breaker long before its open
// timeout.
func TestConnectFailuresAreInfrastructure(t *testing.T) {
	cfg := pgtest.NewDeployment(t, pg, "connfail", twoShards())
	rest := shardIndex(t, cfg, "rest")
	dsn, admin := cfg.Shards[rest].Primary, cfg.Shards[rest].AdminDSN()
	c, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	db := pgx.Identifier{c.Database}.Sanitize()
	tests := []struct {
		name    string
		dsn     string
		setup   string // run as the owner before the map opens
		code    string // the SQLSTATE of the refusal
		restore string // run as the owner to let the role connect again
	}{
		{"connect revoked", dsn, "REVOKE CONNECT ON DATABASE " + db + " FROM PUBLIC", "42501", "GRANT CONNECT ON DATABASE " + db + " TO PUBLIC"},
		{"database does not exist", withURL(t, dsn, func(u *url.URL) { u.Path = "/" + c.Database + "_missing" }), "", "3D000", ""},
		{"role does not exist", withURL(t, dsn, func(u *url.URL) { u.User = url.User("dms_nobody") }), "", "28000", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != "" {
				pgtest.Exec(t, admin, tt.setup)
				t.Cleanup(func() { pgtest.Exec(t, admin, tt.restore) })
			}
			cfg := cfg
			cfg.Shards = append([]shardmap.ShardConfig(nil), cfg.Shards...)
			cfg.Shards[rest].Primary = tt.dsn
			cfg.Database.BreakerFailures = 3
			cfg.Database.BreakerOpenTimeout = time.Minute // only the prober may close it in this test
			cfg.Database.ProbeInterval = 100 * time.Millisecond
			m := pgtest.OpenMap(t, cfg)
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
			if tt.restore == "" {
				return
			}
			pgtest.Exec(t, admin, tt.restore)
			waitServed(t, sh, "05")
		})
	}
}

// waitServed waits until a read of region r on sh succeeds, failing the
// test after 30s: far less than the breaker's open timeout in these tests,
// so only the prober can have closed the breaker.
func waitServed(tb testing.TB, sh *shardmap.Shard, r regions.Code) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		err := readOne(ctx, sh, r)
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			tb.Fatalf("region %s not served again (breaker %s): %v", r, sh.State(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestHungShard freezes a shard's server (SIGSTOP, as a hung host) while
// calls are in flight: each returns a *TimeoutError at the router's
// deadline, since the frozen server cannot enforce its statement_timeout;
// the timeouts open the breaker; and once the server runs again the
// prober closes the breaker without waiting for its open timeout.
func TestHungShard(t *testing.T) {
	owned := pgtest.StartOwned(t)
	ctx := context.Background()
	cfg, err := owned.Deployment(ctx, pgtest.Prefix("hung"), pgtest.SingleShard())
	if err != nil {
		t.Fatal(err)
	}
	const queryTimeout = 3 * time.Second
	cfg.Database.StatementTimeout = time.Minute // the server's own timeout ends nothing here
	cfg.Database.QueryTimeout = queryTimeout
	cfg.Database.BreakerFailures = 3
	cfg.Database.BreakerOpenTimeout = time.Minute // only the prober may close it
	cfg.Database.ProbeInterval = 200 * time.Millisecond
	m, err := shardmap.Open(cfg, shardmap.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close) // after Continue, which is registered later
	sh, _ := m.For("03")
	sc := regions.Scope{Region: "03"}
	if err := readOne(ctx, sh, "03"); err != nil {
		t.Fatal(err)
	}

	// Three calls in flight: a read and a batch inside a long statement,
	// and a transaction whose callback runs its next statement, with its
	// own context, once the server is frozen.
	inTx, frozen := make(chan struct{}), make(chan struct{})
	calls := map[string]func() error{
		"read": func() error {
			return sh.Read(ctx, sc, func(b *pgx.Batch) { b.Queue(`SELECT pg_sleep(60) -- hung call`) })
		},
		"batch": func() error {
			return sh.Batch(ctx, sc, func(b *pgx.Batch) { b.Queue(`SELECT pg_sleep(60) -- hung call`) })
		},
		"tx": func() error {
			return sh.Tx(ctx, sc, pgx.ReadOnly, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, `SELECT 1`); err != nil {
					return err
				}
				close(inTx)
				<-frozen
				_, err := tx.Exec(ctx, `SELECT 1`)
				return err
			})
		},
	}
	type result struct {
		name string
		err  error
	}
	results := make(chan result, len(calls))
	for name, call := range calls {
		go func() { results <- result{name, call()} }()
	}
	var freeze sync.Once
	defer freeze.Do(func() { close(frozen) }) // the transaction must end for m.Close to return
	<-inTx
	waitActive(t, cfg.Shards[0].AdminDSN(), 2)
	if err := owned.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { owned.Continue() })
	freeze.Do(func() { close(frozen) })

	bound := time.After(10 * queryTimeout)
	for range calls {
		select {
		case r := <-results:
			var timeout *shardmap.TimeoutError
			if !errors.As(r.err, &timeout) {
				t.Errorf("%s on a frozen server: %v, want *TimeoutError", r.name, r.err)
			}
		case <-bound:
			t.Fatalf("calls on a frozen server still waiting after %s; query timeout %s", 10*queryTimeout, queryTimeout)
		}
	}
	if got := sh.State(); got != "open" {
		t.Fatalf("breaker after 3 timed-out calls = %s, want open", got)
	}
	var unavailable *shardmap.UnavailableError
	if err := readOne(ctx, sh, "03"); !errors.As(err, &unavailable) {
		t.Errorf("read with the breaker open: %v, want *UnavailableError", err)
	}

	if err := owned.Continue(); err != nil {
		t.Fatal(err)
	}
	waitServed(t, sh, "03")
}

// waitActive waits until n statements marked "hung call" run on the
// database of dsn.
func waitActive(tb testing.TB, dsn string, n int) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(context.Background())
	for {
		var got int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE state = 'active' AND query LIKE '%-- hung call'`).Scan(&got)
		if err != nil {
			tb.Fatalf("waiting for %d hung calls: %v", n, err)
		}
		if got == n {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// probers counts the goroutines running a prober.
func probers() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "shardmap.(*backend).watch(")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// waitProbers waits until want probers run, failing the test after 30s. A
// count is only reached eventually: a new goroutine runs a little after it
// is started, and a shard replaced by a reload is closed in the background.
func waitProbers(tb testing.TB, want int, what string) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for probers() != want {
		if time.Now().After(deadline) {
			tb.Fatalf("probers %s = %d, want %d", what, probers(), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestProbersStop checks that every server of a shard has a prober, and
// that closing a shard (replaced by a reload, or at shutdown) stops them.
func TestProbersStop(t *testing.T) {
	cfg := pgtest.NewDeployment(t, pg, "probers", twoShards())
	nw := shardIndex(t, cfg, "nw")
	cfg.Shards[nw].Replicas = []string{cfg.Shards[nw].Primary}
	waitProbers(t, 0, "before the test")
	h, err := shardmap.NewHolder(cfg, shardmap.Options{})
	if err != nil {
		t.Fatal(err)
	}
	waitProbers(t, 3, "of two shards, one with a replica")
	// Replacing shard nw closes it once its requests are done, in the background.
	changed := cfg
	changed.Shards = append([]shardmap.ShardConfig(nil), cfg.Shards...)
	changed.Shards[nw].Replicas = nil
	if _, err := h.Reload(changed); err != nil {
		t.Fatal(err)
	}
	waitProbers(t, 2, "after replacing nw by a shard without a replica")
	h.Close()
	waitProbers(t, 0, "after Close")
}
