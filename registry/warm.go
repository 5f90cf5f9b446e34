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
// write, are prepared and planned once by EXPLAIN, not run, and the write
// fence is compiled (warmFence): a check-in's first run on a connection
// cost 17-22 ms of the server's CPU after the warm-up without them, 9-13
// with them, at full scale (BENCHMARKS.md, "Warm before the switch"); its
// rollup trigger still compiles at the first insert.
// A table locked against readers (a migration's DDL) makes it fail within
// warmBegin's lock timeout rather than hold the acquire that opened the
// connection. The error is the first statement's that failed; the
// transaction is then left for the caller to roll back.
func Warm(ctx context.Context, conn *pgx.Conn) error {
	for _, sc := range warmScopes() {
		a := scopeArgs(sc)
		a["market"], a["date"] = int64(0), time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
		a["limit"], a["offset"] = 1, 0
		// The batch's statements are all parsed, which takes their
		// tables' locks, before the first runs: the lock timeout goes first.
		if _, err := conn.PgConn().Exec(ctx, warmBegin).ReadAll(); err != nil {
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
	if _, err := conn.PgConn().Exec(ctx, warmBegin).ReadAll(); err != nil {
		return fmt.Errorf("warm the check-ins: %w", err)
	}
	for _, s := range []statement{checkInSQL, checkInKeptSQL} {
		if _, err := conn.Prepare(ctx, s.sql, s.sql); err != nil {
			return fmt.Errorf("warm the check-ins: %w", err)
		}
		// Planned once, not run (EXPLAIN runs nothing, so the read-only
		// transaction allows it), with every argument NULL: the catalogs
		// and policies its plan needs are loaded now.
		if _, err := conn.PgConn().ExecParams(ctx, "EXPLAIN (COSTS OFF) "+s.sql, make([][]byte, len(s.names)), nil, nil, nil).Close(); err != nil {
			return fmt.Errorf("warm the check-ins: plan: %w", err)
		}
	}
	if err := warmFence(ctx, conn); err != nil {
		return fmt.Errorf("warm the write fence: %w", err)
	}
	_, err := conn.Exec(ctx, "ROLLBACK")
	return err
}

// warmFence compiles dms.fence (migration 00013) on conn and plans both
// of its statements, in Warm's read-only transaction and without locking
// anything: called for no region, the read fence refuses it (DMF01), and
// the write fence's row lock is refused by the read-only transaction
// (25006) after its plan was built and kept. Each refusal is undone to a
// savepoint. Unwarmed, the first write on a connection compiled the fence
// there: its first call on a new backend took 11-58 ms in psql at full
// scale (0.2-0.4 ms after), and 107-118 ms for the first writes on a
// move's target right after the switch (BENCHMARKS.md, "Warm before the
// switch"). It works on a replica too, which refuses the row lock alike.
func warmFence(ctx context.Context, conn *pgx.Conn) error {
	for _, f := range []struct {
		sql, code string
	}{{"SELECT dms.fence(NULL, false)", "DMF01"}, {"SELECT dms.fence(NULL, true)", "25006"}} {
		if _, err := conn.PgConn().Exec(ctx, "SAVEPOINT warm_fence").ReadAll(); err != nil {
			return err
		}
		_, err := conn.PgConn().Exec(ctx, f.sql).ReadAll()
		if !isPgCode(err, f.code) {
			return fmt.Errorf("%s: %v, want SQLSTATE %s", f.sql, err, f.code)
		}
		if _, err := conn.PgConn().Exec(ctx, "ROLLBACK TO SAVEPOINT warm_fence").ReadAll(); err != nil {
			return err
		}
	}
	return nil
}

// warmBegin opens Warm's transaction and bounds how long it waits for a
// lock: the connection then serves cold rather than late.
const warmBegin = `BEGIN READ ONLY; SET LOCAL lock_timeout = '100ms'`

// warmScopes returns the scopes whose reads Warm prepares: a comune's and
// a whole region's. Only their shape matters (which optional predicates a
// statement has, and so its text, and the role it runs as).
func warmScopes() []regions.Scope {
	return []regions.Scope{
		{Region: "03", Province: "015", Comune: "015146"},
		{Region: "03"},
	}
}
