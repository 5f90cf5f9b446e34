package registry

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// Warm prepares the hot statements on conn, a new pooled connection, and
// builds their generic plans, so that no request pays for them
// (shardmap.Options.Warm runs it before the connection serves). The hot
// statements are the first page of a market's presences on a day with
// its market guard, as a comune's scope reads them (the login role, the
// market offices) and as a whole region's (shardmap.RegionReader), and the
// national vendor leg (VendorInRegion, a region's scope): a generic plan
// over vendor_presences spans every monthly partition and takes tens of
// milliseconds of the server's CPU to build (30 ms for a presence page
// and 16 ms for the vendor leg at 84 partitions), once per connection,
// statement and role. Each scope's statements run as that scope's read
// does, prepared in pgx's statement cache under the same text, in a
// read-only transaction that is rolled back; no scope setting is set, so
// row-level security shows them no row. The check-in's statements, which
// write, are only prepared as the role they run as (parsed, their tables'
// definitions and policies loaded), not run: their plans are built per run
// (see CheckInVendor).
// A table locked against readers (a migration's DDL) makes it fail within
// shardmap.WarmBegin's lock timeout rather than hold the acquire that opened the
// connection. The error is the first statement's that failed; the
// transaction is then left for the caller to roll back.
func Warm(ctx context.Context, conn *pgx.Conn) error {
	for _, sc := range warmScopes() {
		a := scopeArgs(sc)
		a["market"], a["date"] = int64(0), time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
		a["limit"], a["offset"] = 1, 0
		// The batch's statements are all parsed, which takes their
		// tables' locks, before the first runs: the lock timeout goes first.
		if _, err := conn.PgConn().Exec(ctx, shardmap.WarmBegin).ReadAll(); err != nil {
			return fmt.Errorf("warm the presence reads: %w", err)
		}
		b := &pgx.Batch{}
		if sc.Comune == "" {
			b.Queue(`SELECT set_config('role', $1, true)`, shardmap.RegionReader)
		}
		b.Queue(genericPlans)
		marketGuard.pick(a).queue(b, a)
		presenceList.first.pick(a).queue(b, a)
		if sc.Comune == "" {
			a["piva"], a["year_start"] = "", a["date"]
			for _, s := range vendorInRegionStatements() {
				s.queue(b, a)
			}
		}
		b.Queue("ROLLBACK")
		if err := conn.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("warm the presence reads of a scope like %+v: %w", sc, err)
		}
	}
	if _, err := conn.PgConn().Exec(ctx, shardmap.WarmBegin).ReadAll(); err != nil {
		return fmt.Errorf("warm the check-ins: %w", err)
	}
	// As the role they run as (Shard.BatchAsWriter): a statement is
	// analyzed under the row-level security of one role.
	if _, err := conn.Exec(ctx, `SELECT set_config('role', $1, true)`, shardmap.RowWriter); err != nil {
		return fmt.Errorf("warm the check-ins: %w", err)
	}
	for _, s := range []statement{checkInSQL, checkInKeptSQL} {
		if _, err := conn.Prepare(ctx, s.sql, s.sql); err != nil {
			return fmt.Errorf("warm the check-ins: %w", err)
		}
	}
	_, err := conn.Exec(ctx, "ROLLBACK")
	return err
}

// warmScopes returns the scopes whose reads Warm prepares: a comune's and
// a whole region's. Only their shape matters (which optional predicates a
// statement has, and so its text, and the role it runs as).
func warmScopes() []regions.Scope {
	return []regions.Scope{
		{Region: "03", Province: "015", Comune: "015146"},
		{Region: "03"},
	}
}
