package cli_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/control"
	"github.com/dmshub/dmsrouter/internal/cli"
	"github.com/dmshub/dmsrouter/internal/clitest"
	"github.com/dmshub/dmsrouter/migrations"
	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/seed"
	"github.com/dmshub/dmsrouter/shardmap"
)

// TestRegionCommands runs the region commands as a DBA would, on one
// cluster: a preflight refusal and a dry run create nothing, a command
// that changes something asks (and without a terminal needs --yes), a
// move switches, status shows it, complete removes the source's rows.
func TestRegionCommands(t *testing.T) {
	ctx := context.Background()
	cfg := pgtest.NewDeployment(t, pg, "cliregion", pgtest.Split("rest", pgtest.Layout{"05": "src"}))
	if _, err := seed.Run(ctx, cfg, seed.Options{Markets: 40, Days: 2, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	dst := newDatabase(t, "cliregion_dst")
	for _, r := range migrations.Up(ctx, []migrations.Target{{Name: "dst", DSN: dst}}) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	t.Cleanup(func() { dropReplication(t, dst) })
	cfg.Shards = append(cfg.Shards, shardmap.ShardConfig{Name: "dst", Primary: dst, Admin: dst, MaxConns: 2})
	ctlDSN := newDatabase(t, "cliregion_control")
	if r := control.Migrate(ctx, ctlDSN, cfg.Regions); r.Err != nil {
		t.Fatal(r.Err)
	}
	path := withControl(t, clitest.WriteConfig(t, cfg), ctlDSN)

	region := func(args ...string) (string, error) {
		var out, errOut clitest.Buffer
		err := cli.Region(ctx, append(args[:1:1], append([]string{"--config", path}, args[1:]...)...), clitest.NoEnv, &out, &errOut)
		t.Logf("dmsrouter region %s:\n%s", strings.Join(args, " "), out.String())
		return out.String(), err
	}
	moves := func() int64 {
		conn := pgtest.Connect(t, ctlDSN)
		var n int64
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM control.moves`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	for _, tc := range []struct {
		args    []string
		wantErr string // "" for none
		wantOut string
	}{
		{[]string{"move", "--region", "05", "--to", "nosuch", "--yes"}, "preflight: 1 check(s) failed", "FAIL target shard nosuch"},
		{[]string{"move", "--region", "05", "--to", "src", "--yes"}, "preflight", "FAIL target differs from source"},
		{[]string{"move", "--region", "05", "--to", "dst", "--dry-run"}, "", "dry run: nothing was created"},
		{[]string{"move", "--region", "05", "--to", "dst"}, "stdin is not a terminal: pass --yes", "ok   target holds no row of region 05"},
		{[]string{"complete", "--region", "05", "--yes"}, "no move of the region is in progress", ""},
		{[]string{"status", "--to", "dst"}, "--to is not a flag of region status", ""},
	} {
		out, err := region(tc.args...)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("region %q = %v, want error %q", tc.args, err, tc.wantErr)
		}
		if !strings.Contains(out, tc.wantOut) {
			t.Errorf("region %q printed %q, want it to contain %q", tc.args, out, tc.wantOut)
		}
	}
	if n := moves(); n != 0 {
		t.Fatalf("refused and dry-run moves recorded %d moves, want none", n)
	}

	for _, step := range []struct {
		args []string
		want []string
	}{
		{[]string{"move", "--region", "05", "--to", "dst", "--yes"}, []string{"freeze: ", "switched region 05 to dst"}},
		{[]string{"status", "--region", "05"}, []string{"phase switched", "public.vendor_presences", "orphaned replication objects", "  none"}},
		{[]string{"complete", "--region", "05", "--yes"}, []string{"rows removed", "public.vendor_presences", "move 1 is completed"}},
		{[]string{"status"}, []string{"phase completed", "  none"}},
	} {
		out, err := region(step.args...)
		if err != nil {
			t.Fatalf("region %q: %v", step.args, err)
		}
		for _, want := range step.want {
			if !strings.Contains(out, want) {
				t.Errorf("region %q printed %q, want it to contain %q", step.args, out, want)
			}
		}
	}
}

// newDatabase creates an empty database on pg, dropped when t ends, and
// returns its superuser DSN.
func newDatabase(t *testing.T, name string) string {
	t.Helper()
	db := pgtest.Prefix(name)
	ctx := context.Background()
	if err := pg.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pg.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)")
	})
	return pg.AdminDB(db)
}

// dropReplication removes what a failed move may have left in the
// database at dsn and its server (the shared test server): its
// subscriptions, and every move's slot of the server's databases.
func dropReplication(t *testing.T, dsn string) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	rows, _ := conn.Query(ctx, `SELECT subname::text FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`)
	subs, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	for _, s := range subs {
		id := pgx.Identifier{s}.Sanitize()
		for _, sql := range []string{"ALTER SUBSCRIPTION " + id + " DISABLE", "ALTER SUBSCRIPTION " + id + " SET (slot_name = NONE)", "DROP SUBSCRIPTION " + id} {
			conn.Exec(ctx, sql)
		}
	}
	conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE 'dms\_move\_%' AND NOT active
		AND database LIKE $1`, pgtest.Prefix("cliregion")+"%")
}
