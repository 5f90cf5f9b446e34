package registry

import (
	"context"
	"errors"
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
	type plans struct{ generic, custom int64 }
	prepared := func() map[string]plans {
		t.Helper()
		out := map[string]plans{}
		err := sh.Read(ctx, regions.Scope{}, func(b *pgx.Batch) {
			b.Queue(`SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements
				WHERE statement LIKE 'SELECT p.id%FROM vendor_presences p%'`).Query(func(rows pgx.Rows) error {
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
