package registry

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// TestWarm checks that a connection warmed by Warm holds the presence
// reads of a comune's and a region's scope prepared, with their generic
// plans built, and that a request's read reuses them instead of preparing
// and planning its own.
func TestWarm(t *testing.T) {
	ctx := context.Background()
	cfg := pgtest.NewDeployment(t, pg, "registry_warm", pgtest.SingleShard())
	cfg.Shards[0].MaxConns = 1 // every read below sees the warmed connection
	m, err := shardmap.Open(cfg, shardmap.Options{Warm: Warm})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.WarmPools(ctx, 1); err != nil {
		t.Fatal(err)
	}
	sh := m.Shards()[0]

	// prepared returns the generic and custom plan counts of the prepared
	// presence statements of the connection, by text.
	prepared := func() map[string]plans {
		t.Helper()
		out := map[string]plans{}
		for s, p := range preparedPlans(t, sh) {
			if strings.HasPrefix(s, "SELECT p.id") && strings.Contains(s, "FROM vendor_presences p") {
				out[s] = p
			}
		}
		return out
	}
	comune := regions.Scope{Region: "03", Province: "015", Comune: "015146", User: "tester"}
	region := regions.Scope{Region: "03", User: "tester"}
	sqlOf := func(sc regions.Scope) string {
		a := scopeArgs(sc)
		a["market"], a["date"] = int64(0), time.Time{}
		return presenceList.first.pick(a).sql
	}

	before := prepared()
	if len(before) != 2 {
		t.Fatalf("after Warm, %d presence statements are prepared, want 2: %v", len(before), before)
	}
	for _, sc := range []regions.Scope{comune, region} {
		if p, ok := before[sqlOf(sc)]; !ok || p.generic != 1 || p.custom != 0 {
			t.Errorf("after Warm, the presence read of scope %+v: prepared %v, plans %+v; want prepared, one generic plan run, no custom", sc, ok, p)
		}
	}
	for _, sc := range []regions.Scope{comune, region} {
		if _, err := ListPresences(ctx, sh, sc, 1<<48*3+1, time.Now(), Page{Limit: 10}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("ListPresences(%+v, a market that does not exist) = %v, want ErrNotFound", sc, err)
		}
	}
	after := prepared()
	if len(after) != 2 {
		t.Errorf("after the reads, %d presence statements are prepared, want the 2 Warm prepared: %v", len(after), after)
	}
	for _, sc := range []regions.Scope{comune, region} {
		if p := after[sqlOf(sc)]; p.generic != 2 || p.custom != 0 {
			t.Errorf("after a read in scope %+v its statement ran plans %+v, want 2 generic (Warm's and the read's), 0 custom", sc, p)
		}
	}
}

// TestWarmLocked checks that Warm gives up on a table locked against
// readers (a migration's DDL) with a lock timeout instead of waiting for
// the lock, and that the connection serves once its transaction is rolled
// back.
func TestWarmLocked(t *testing.T) {
	ctx := context.Background()
	cfg := pgtest.NewDeployment(t, pg, "registry_warmlock", pgtest.SingleShard())
	unlock := pgtest.Lock(t, cfg.Shards[0].AdminDSN(), "markets")
	conn := pgtest.Connect(t, cfg.Shards[0].Primary)
	var pgErr *pgconn.PgError
	if err := Warm(ctx, conn); !errors.As(err, &pgErr) || pgErr.Code != "55P03" {
		t.Fatalf("Warm with markets locked = %v, want a lock timeout (55P03)", err)
	}
	if _, err := conn.Exec(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	unlock()
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Errorf("SELECT 1 after the failed warm-up = %d, %v; want 1", one, err)
	}
	if err := Warm(ctx, conn); err != nil {
		t.Errorf("Warm once the lock is gone = %v, want nil", err)
	}
}

// plans are the generic and custom plan counts of a prepared statement.
type plans struct{ generic, custom int64 }

// preparedPlans returns the prepared statements of the connection a read
// of sh runs on (the tests' pools hold one), by text, with their plan
// counts.
func preparedPlans(t *testing.T, sh *shardmap.Shard) map[string]plans {
	t.Helper()
	out := map[string]plans{}
	err := sh.Read(context.Background(), regions.Scope{}, func(b *pgx.Batch) {
		b.Queue(`SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements`).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var s string
				var p plans
				if err := rows.Scan(&s, &p.generic, &p.custom); err != nil {
					return err
				}
				out[s] = p
			}
			return rows.Err()
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// openOneConn opens a map of a new single-shard deployment called name
// whose pool holds one connection, so every read sees the same one, with
// warm as its warm-up (nil for none), logging to log.
func openOneConn(t *testing.T, name string, warm func(context.Context, *pgx.Conn) error, log *slog.Logger) (*shardmap.Shard, shardmap.Config) {
	t.Helper()
	cfg := pgtest.NewDeployment(t, pg, name, pgtest.SingleShard())
	cfg.Shards[0].MaxConns = 1
	m, err := shardmap.Open(cfg, shardmap.Options{Warm: warm, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	if err := m.WarmPools(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	return m.Shards()[0], cfg
}

// TestWarmVendorLegAndCheckIn checks that Warm also prepares the national
// vendor leg (VendorInRegion) with its generic plans built, which the leg
// then reuses, and prepares the check-in's statements without running
// them.
func TestWarmVendorLegAndCheckIn(t *testing.T) {
	ctx := context.Background()
	sh, _ := openOneConn(t, "registry_warmleg", Warm, nil)
	before := preparedPlans(t, sh)
	for _, s := range vendorInRegionStatements() {
		if p, ok := before[s.sql]; !ok || p.generic != 1 || p.custom != 0 {
			t.Errorf("after Warm, %.60q...: prepared %v, plans %+v; want prepared, one generic plan run, no custom", s.sql, ok, p)
		}
	}
	for _, s := range []statement{checkInSQL, checkInKeptSQL} {
		if p, ok := before[s.sql]; !ok || p.generic != 0 || p.custom != 0 {
			t.Errorf("after Warm, the check-in %.60q...: prepared %v, plans %+v; want prepared, never run", s.sql, ok, p)
		}
	}
	if _, err := VendorInRegion(ctx, sh, lombardia, "00000000000", time.Now()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("VendorInRegion(a partita IVA nobody has) = %v, want ErrNotFound", err)
	}
	if p := preparedPlans(t, sh)[vendorPresencesSQL.sql]; p.generic != 2 || p.custom != 0 {
		t.Errorf("after the leg, its presence count ran plans %+v, want 2 generic (Warm's and the leg's), 0 custom", p)
	}
}

// TestGenericReads checks that the reads whose custom plans would plan
// every presence partition at each run (absences, the spunta's ranking,
// the vendor leg), and the national summary's and market days' legs, whose
// planning cost more than their run, run their generic plans from the
// first run on.
func TestGenericReads(t *testing.T) {
	ctx := context.Background()
	sh, _ := openOneConn(t, "registry_generic", nil, nil)
	day := time.Now().UTC().Truncate(24 * time.Hour)
	if _, err := ListAbsences(ctx, sh, milano, 1<<48*3+1, day.Year(), day); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ListAbsences(a concession that does not exist) = %v, want ErrNotFound", err)
	}
	if _, err := GetGraduatoria(ctx, sh, milano, 1<<48*3+1, GraduatoriaQuery{Kind: "SPUNTA", Year: day.Year(), Date: day}, Page{Limit: 10}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetGraduatoria(a market that does not exist) = %v, want ErrNotFound", err)
	}
	if _, err := VendorInRegion(ctx, sh, lombardia, "00000000000", day); !errors.Is(err, ErrNotFound) {
		t.Fatalf("VendorInRegion(a partita IVA nobody has) = %v, want ErrNotFound", err)
	}
	if _, err := Summary(ctx, sh, lombardia, day, 0); err != nil {
		t.Fatalf("Summary: %v", err)
	}
	if _, err := MarketDays(ctx, sh, lombardia, day.AddDate(0, 0, -6), day); err != nil {
		t.Fatalf("MarketDays: %v", err)
	}
	got := preparedPlans(t, sh)
	for name, s := range map[string]statement{"absences": absencesSQL, "spunta ranking": spuntaRankingSQL, "vendor presences": vendorPresencesSQL,
		"national summary": summarySQL, "market days": marketDaysSQL} {
		if p, ok := got[s.sql]; !ok || p.generic != 1 || p.custom != 0 {
			t.Errorf("after one read, the %s statement: prepared %v, plans %+v; want one generic plan run, no custom", name, ok, p)
		}
	}
}

// TestWarmFailureServesCold checks that a connection whose warm-up failed
// (the presences locked by a migration's DDL) is logged and still serves,
// cold: its first read prepares and plans its own statements.
func TestWarmFailureServesCold(t *testing.T) {
	ctx := context.Background()
	cfg := pgtest.NewDeployment(t, pg, "registry_warmcold", pgtest.SingleShard())
	cfg.Shards[0].MaxConns = 1
	var logged bytes.Buffer
	m, err := shardmap.Open(cfg, shardmap.Options{Warm: Warm, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	unlock := pgtest.Lock(t, cfg.Shards[0].AdminDSN(), "vendor_presences")
	if err := m.WarmPools(ctx, 1); err != nil {
		t.Fatalf("WarmPools with the presences locked = %v, want nil (the connection serves cold)", err)
	}
	unlock()
	if !strings.Contains(logged.String(), `msg="connection not warmed"`) || !strings.Contains(logged.String(), "55P03") {
		t.Errorf("the log says %q, want the warm-up's lock timeout", logged.String())
	}
	sh := m.Shards()[0]
	// The shard map's warm-up of its scope statements ran before Warm
	// failed; of Warm's statements none may have been prepared, only this
	// probe (after its own scope statement).
	var stmts []string
	for sql := range preparedPlans(t, sh) {
		if !strings.Contains(sql, "set_config('dms.region'") {
			stmts = append(stmts, sql)
		}
	}
	if len(stmts) > 1 {
		t.Errorf("after a failed warm-up, prepared %d statements besides the scope statements, want at most this one:\n%s",
			len(stmts), strings.Join(stmts, "\n"))
	}
	sc := regions.Scope{Region: "03", Province: "015", Comune: "015146", User: "tester"}
	if _, err := ListPresences(ctx, sh, sc, 1<<48*3+1, time.Now(), Page{Limit: 10}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ListPresences on the cold connection = %v, want ErrNotFound", err)
	}
	a := scopeArgs(sc)
	a["market"], a["date"] = int64(0), time.Time{}
	if p := preparedPlans(t, sh)[presenceList.first.pick(a).sql]; p.generic != 1 || p.custom != 0 {
		t.Errorf("the cold read's presence statement ran plans %+v, want the read's one generic plan", p)
	}
}

// TestWarmOnReplica checks that Warm succeeds on a connection to a hot
// standby, which the replicas' pools warm too: the check-in's statements,
// which write, are only prepared there, which a standby allows.
func TestWarmOnReplica(t *testing.T) {
	ctx := context.Background()
	primary := pgtest.StartOwned(t)
	cfg := pgtest.NewDeployment(t, primary, "registry_warmrep", pgtest.SingleShard())
	replica := pgtest.StartReplica(t, primary)
	dsn, err := replica.Moved(cfg.Shards[0].Primary)
	if err != nil {
		t.Fatal(err)
	}
	conn := pgtest.Connect(t, dsn)
	if err := Warm(ctx, conn); err != nil {
		t.Fatalf("Warm on a standby = %v, want nil", err)
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_prepared_statements WHERE statement = ANY($1)`,
		[]string{checkInSQL.sql, checkInKeptSQL.sql, vendorPresencesSQL.sql}).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("after Warm on a standby, %d of the check-in's and the vendor leg's statements are prepared, want 3", n)
	}
}
