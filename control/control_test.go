package control_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/control"
	"github.com/dmshub/dmsrouter/migrations"
	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/regions"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &pg)) }

// controlDB creates an empty database, migrated and seeded by Migrate
// with every region on shard "a", and returns its DSN.
func controlDB(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	db := pgtest.Prefix("control_" + strings.ToLower(t.Name()))
	drop := func() {
		pg.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)")
	}
	drop()
	if err := pg.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	dsn := pg.AdminDB(db)
	for i := range 2 {
		r := control.Migrate(ctx, dsn, all("a"))
		if r.Err != nil || r.Epoch != 1 || r.Seeded != (i == 0) || r.Regions["03"] != "a" {
			t.Fatalf("Migrate #%d = %+v, want epoch 1 of shard a, seeded the first time only", i+1, r)
		}
	}
	return dsn
}

func all(shard string) map[string]string {
	m := map[string]string{}
	for _, r := range regions.All() {
		m[string(r.Code)] = shard
	}
	return m
}

// TestWriteEpoch checks that an epoch is written against the epoch its
// author read, whole, and notified on commit; anything else writes nothing.
func TestWriteEpoch(t *testing.T) {
	ctx := context.Background()
	dsn := controlDB(t)
	listener, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close(ctx)
	if _, err := listener.Exec(ctx, "LISTEN "+control.Channel); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	nineteen := all("b")
	delete(nineteen, "20")
	bogus := all("b")
	bogus["21"] = "b"
	delete(bogus, "20")
	for _, tc := range []struct {
		name     string
		expected int64
		regions  map[string]string
		want     string // a substring of the error
		is       error
	}{
		{"stale epoch", 0, all("b"), "the current epoch is 1, not 0", control.ErrEpochChanged},
		{"future epoch", 2, all("b"), "the current epoch is 1, not 2", control.ErrEpochChanged},
		{"19 regions", 1, nineteen, "an epoch assigns all 20 regions; this one assigns 19", nil},
		{"unknown region", 1, bogus, "assignments_region_id_check", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := control.WriteEpoch(ctx, conn, tc.expected, tc.regions, tc.name)
			if err == nil || !strings.Contains(err.Error(), tc.want) || tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("WriteEpoch(%s) = %v, want an error containing %q", tc.name, err, tc.want)
			}
			if cur, err := control.Current(ctx, conn); err != nil || cur.Epoch != 1 || cur.Regions["03"] != "a" {
				t.Errorf("after a refused WriteEpoch, Current = %+v, %v; want epoch 1 unchanged", cur, err)
			}
		})
	}

	epoch, err := control.WriteEpoch(ctx, conn, 1, all("b"), "all on b")
	if err != nil || epoch != 2 {
		t.Fatalf("WriteEpoch(1, all on b) = %d, %v; want 2", epoch, err)
	}
	cur, err := control.Current(ctx, conn)
	if err != nil || cur.Epoch != 2 || len(cur.Regions) != 20 || cur.Regions["03"] != "b" || cur.Note != "all on b" {
		t.Errorf("Current = %+v, %v; want epoch 2, all 20 on b", cur, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := listener.WaitForNotification(wctx)
	if err != nil || n.Channel != control.Channel || n.Payload != "2" {
		t.Errorf("notification = %+v, %v; want %s with payload 2", n, err, control.Channel)
	}
}

// TestCurrentNotSeeded checks that a migrated control database with no
// epoch says so.
func TestCurrentNotSeeded(t *testing.T) {
	ctx := context.Background()
	dsn := controlDB(t)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DELETE FROM control.epochs"); err != nil {
		t.Fatal(err)
	}
	if _, err := control.Current(ctx, conn); !errors.Is(err, control.ErrNotSeeded) {
		t.Errorf("Current(no epochs) = %v, want ErrNotSeeded", err)
	}
	latest, err := migrations.ControlLatest()
	if err != nil {
		t.Fatal(err)
	}
	if r := control.Status(ctx, dsn); r.Err != nil || r.Epoch != 0 || r.Version != latest {
		t.Errorf("Status(no epochs) = %+v, want version %d, epoch 0, no error", r, latest)
	}
}
