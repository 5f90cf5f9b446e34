package migrations_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/migrations"
	"github.com/dmshub/dmsrouter/pgtest"
)

// TestIdempotencyKeysPolicy checks the policies on idempotency_keys
// (migrations 00003 and 00011), which the keyed check-in's statement meets:
// dms_app reads and writes a key only in its own region, as its own user
// and under its own narrowing.
func TestIdempotencyKeysPolicy(t *testing.T) {
	cfg := deploy(t, "keypolicy")
	app := pgtest.Shard(t, cfg, "lombardia").Primary
	region := narrowed{region: "03"}
	insert := func(user, narrowing string) string {
		return fmt.Sprintf(`INSERT INTO idempotency_keys (region_id, user_sub, role, territory, key, fingerprint, created, response, narrowing)
			VALUES (3, '%s', 'admin_pa', 'region:03', 'k', '\x00', true, '{}', '%s')`, user, narrowing)
	}
	ctx := context.Background()
	tx := appTx(t, app, region)
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, insert("mallory", "//")); err != nil {
		t.Fatalf("storing a key in its own scope: %v", err)
	}
	if _, err := tx.Exec(ctx, "SAVEPOINT s"); err != nil {
		t.Fatal(err)
	}
	refused := []struct{ name, sql string }{
		{"another user's key", insert("eve", "//")},
		{"a key under another narrowing", insert("mallory", "015//")},
	}
	for _, r := range refused {
		_, err := tx.Exec(ctx, r.sql)
		if got := sqlState(err); got != "42501" {
			t.Errorf("%s: SQLSTATE %q, want 42501", r.name, got)
		}
		if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT s"); err != nil {
			t.Fatal(err)
		}
	}
	// The key, as seen by each scope in the same transaction.
	seen := []struct {
		name string
		sc   narrowed
		want int64
	}{
		{"its own scope", region, 1},
		{"a province of its region", narrowed{region: "03", province: "015"}, 0},
		{"a market of its region", narrowed{region: "03", market: fmt.Sprint(milano)}, 0},
		{"another region", narrowed{region: "05"}, 0},
		{"no scope", narrowed{}, 0},
	}
	for _, s := range seen {
		var n int64
		err := tx.QueryRow(ctx, `SELECT set_config('dms.region', $1, true), set_config('dms.province', $2, true),
			set_config('dms.comune', $3, true), set_config('dms.market', $4, true)`,
			s.sc.region, s.sc.province, s.sc.comune, s.sc.market).Scan(nil, nil, nil, nil)
		if err == nil {
			err = tx.QueryRow(ctx, "SELECT count(*) FROM idempotency_keys").Scan(&n)
		}
		if err != nil {
			t.Fatal(err)
		}
		if n != s.want {
			t.Errorf("keys seen by %s = %d, want %d", s.name, n, s.want)
		}
	}
	if _, err := tx.Exec(ctx, "SELECT set_config('dms.region', '03', true), set_config('dms.user', 'eve', true)"); err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM idempotency_keys").Scan(&n); err != nil || n != 0 {
		t.Errorf("keys seen by another user = %d (%v), want 0", n, err)
	}
}

// TestPresenceInsertFiresOneTrigger checks that an insert into
// vendor_presences fires presence_rollups_insert alone among the statement
// triggers of migrations 00007 and 00010 (its function checks the
// references, which TestWall exercises).
func TestPresenceInsertFiresOneTrigger(t *testing.T) {
	cfg := deploy(t, "onetrigger")
	rows, _ := pgtest.Connect(t, pgtest.Shard(t, cfg, "lombardia").AdminDSN()).Query(context.Background(),
		`SELECT tgname FROM pg_trigger WHERE tgrelid = 'vendor_presences'::regclass AND NOT tgisinternal
		   AND tgtype & 4 <> 0 ORDER BY tgname`) // TRIGGER_TYPE_INSERT
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"presence_rollups_insert"}; !slices.Equal(got, want) {
		t.Errorf("insert triggers on vendor_presences = %v, want %v", got, want)
	}
}

// TestPresenceInsertOneTriggerDown checks that migration 00019's Down
// restores the triggers, trigger functions and policies as migration 00018
// left them.
func TestPresenceInsertOneTriggerDown(t *testing.T) {
	ctx := context.Background()
	dsn := freshDB(t, "onetriggerdown")
	state := func() []string {
		rows, _ := pgtest.Connect(t, dsn).Query(ctx, `SELECT 'trigger ' || tgname || ' ' || pg_get_triggerdef(oid) FROM pg_trigger
			WHERE tgrelid = 'vendor_presences'::regclass AND NOT tgisinternal
			UNION ALL
			SELECT 'function ' || proname || ' ' || prosrc FROM pg_proc WHERE proname LIKE 'presence_r%'
			ORDER BY 1`)
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return append(got, policies(t, dsn)...)
	}
	if err := migrations.UpTo(ctx, dsn, 18); err != nil {
		t.Fatal(err)
	}
	want := state()
	if err := migrations.UpTo(ctx, dsn, 19); err != nil {
		t.Fatal(err)
	}
	if got := state(); slices.Equal(got, want) {
		t.Fatal("migration 00019 changed nothing")
	}
	if err := migrations.DownTo(ctx, dsn, 18); err != nil {
		t.Fatal(err)
	}
	if got := state(); !slices.Equal(got, want) {
		t.Errorf("after 00019's Down:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
