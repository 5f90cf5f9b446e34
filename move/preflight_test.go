package move

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/internal/pgcluster"
	"github.com/dmshub/dmsrouter/pgtest"
)

func TestPreflight(t *testing.T) {
	p := newPair(t, "preflight")
	// newPair made the target hold the region unowned: a fresh target has
	// no row at all.
	exec(t, p.dst, `DELETE FROM dms.shard_regions WHERE region_id = $1`, region.Num())

	// A database that was never migrated.
	bare := pgtest.Prefix("preflight_bare")
	if err := pg.Exec(context.Background(), "CREATE DATABASE "+pgx.Identifier{bare}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pg.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{bare}.Sanitize()+" WITH (FORCE)")
	})
	// A source server without logical decoding.
	replica := pgtest.StartOwnedWith(t, "wal_level=replica")
	rcfg := pgtest.NewDeployment(t, replica, "preflight_replica", pgtest.Split("rest", pgtest.Layout{region: "src"}))
	closed, err := pgcluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		setup  func(t *testing.T) (Plan, func())
		failed string // the one failing check's name, "" for none
		fix    string // what its Fix must say
	}{
		{"ready", func(t *testing.T) (Plan, func()) { return p.plan, func() {} }, "", ""},
		{"target unreachable", func(t *testing.T) (Plan, func()) {
			plan := p.plan
			plan.Target.Admin = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/x?sslmode=disable&connect_timeout=2", closed)
			return plan, func() {}
		}, "target reachable", "admin DSN"},
		{"source wal_level replica", func(t *testing.T) (Plan, func()) {
			plan := p.plan
			plan.Source = pgtest.Shard(t, rcfg, "src")
			return plan, func() {}
		}, "source wal_level", "wal_level = logical"},
		{"target not migrated", func(t *testing.T) (Plan, func()) {
			plan := p.plan
			plan.Target.Admin = pg.AdminDB(bare)
			return plan, func() {}
		}, "target schema version", "migrate up"},
		{"target holds rows", func(t *testing.T) (Plan, func()) {
			exec(t, p.dst, `INSERT INTO dms.shard_regions (region_id, owned) VALUES ($1, false)`, region.Num())
			audit(t, p.dst, 1, 3)
			return p.plan, func() {
				exec(t, p.dst, `DELETE FROM audit_log WHERE region_id = $1`, region.Num())
				exec(t, p.dst, `DELETE FROM dms.shard_regions WHERE region_id = $1`, region.Num())
			}
		}, "target holds no row of region 05", "region abort --region 05"},
		{"target owns the region", func(t *testing.T) (Plan, func()) {
			exec(t, p.dst, `INSERT INTO dms.shard_regions (region_id, owned) VALUES ($1, true)`, region.Num())
			return p.plan, func() { exec(t, p.dst, `DELETE FROM dms.shard_regions WHERE region_id = $1`, region.Num()) }
		}, "target does not own region 05", "choose another target"},
		{"source does not own the region", func(t *testing.T) (Plan, func()) {
			plan := p.plan
			plan.Region = "06" // served by rest, not by src
			return plan, func() {}
		}, "source serves region 06", "region status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, undo := tt.setup(t)
			defer undo()
			cs := Preflight(context.Background(), plan)
			var out bytes.Buffer
			PrintChecks(&out, cs)
			failed := Failed(cs)
			if tt.failed == "" {
				if len(failed) != 0 {
					t.Errorf("Preflight failed:\n%s", out.String())
				}
				return
			}
			var hit *Check
			for i, c := range failed {
				if c.Name == tt.failed {
					hit = &failed[i]
				}
			}
			if hit == nil {
				t.Fatalf("Preflight: no failed check %q:\n%s", tt.failed, out.String())
			}
			if !strings.Contains(hit.Fix, tt.fix) {
				t.Errorf("check %q: fix %q, want it to say %q", hit.Name, hit.Fix, tt.fix)
			}
			if !strings.Contains(out.String(), "FAIL "+tt.failed) || !strings.Contains(out.String(), "fix: "+hit.Fix) {
				t.Errorf("PrintChecks does not show the failure and its fix:\n%s", out.String())
			}
			t.Logf("\n%s", out.String())
		})
	}
}
