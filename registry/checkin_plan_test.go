package registry

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// TestCheckInPlanStartsNoScopeInitPlans checks why a check-in runs as
// shardmap.RowWriter (migration 00022): as the login role its statement
// starts an InitPlan per scope setting and table its policies read (23),
// each started, run and shut down at every check-in; as the writer only
// the two whose policies every role shares (vendors' and audit_log's
// region) and the statement's own (the recorded presence as JSON). A
// comune office's scope and a region's, with and without an
// Idempotency-Key.
func TestCheckInPlanStartsNoScopeInitPlans(t *testing.T) {
	ctx := context.Background()
	d := newDayBook(t, "checkinplan")
	in := CheckIn{MarketID: d.market, VendorID: d.bianchi, Kind: "SPUNTA", Date: d.m[3], CheckinAt: at(d.m[3], 9, 0)}
	initPlans := func(batch func(context.Context, regions.Scope, func(*pgx.Batch)) error, sc regions.Scope, stmt statement, args pgx.NamedArgs) int {
		t.Helper()
		var plan []string
		err := batch(ctx, sc, func(b *pgx.Batch) {
			b.Queue("EXPLAIN (COSTS OFF) "+stmt.sql, stmt.args(args)...).Query(func(rows pgx.Rows) error {
				var err error
				plan, err = pgx.CollectRows(rows, pgx.RowTo[string])
				return err
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(strings.Join(plan, "\n"), "InitPlan")
	}
	for _, sc := range []regions.Scope{milano, lombardia} {
		w := admin
		args := writeArgs(sc, w, pgx.NamedArgs{"market": in.MarketID, "vendor": in.VendorID, "stall": in.StallID,
			"date": in.Date, "kind": in.Kind, "checkin": in.CheckinAt})
		w.Key, w.Fingerprint = "k", []byte("f")
		for _, c := range []struct {
			name string
			stmt statement
			args pgx.NamedArgs
		}{{"without a key", checkInSQL, args}, {"with a key", checkInKeptSQL, keyArgs(sc, w, args)}} {
			app := initPlans(d.sh.Batch, sc, c.stmt, c.args)
			writer := initPlans(d.sh.BatchAsWriter, sc, c.stmt, c.args)
			if writer > 3 || app < 20 {
				t.Errorf("a check-in %s in scope %+v starts %d InitPlans as the login role, %d as %s; want 20 or more, at most 3",
					c.name, sc, app, writer, shardmap.RowWriter)
			}
		}
	}
}
