package router

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/jackc/pgx/v5"
)

// Checks of what a shard holds, for the tests of writes.

// shardDSN returns the superuser DSN of shard name.
func (e *env) shardDSN(t *testing.T, name string) string {
	t.Helper()
	return pgtest.Shard(t, e.m.Config(), name).AdminDSN()
}

// scalar returns the single integer sql yields on dsn.
func scalar(t *testing.T, dsn, sql string, args ...any) int64 {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int64
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// writtenRows counts the rows of every table a write may touch, so a test
// can show that a refused write wrote nothing.
func writtenRows(t *testing.T, dsn string) string {
	t.Helper()
	var parts []string
	for _, table := range []string{"markets", "stalls", "vendors", "concessions", "vendor_presences", "audit_log", "idempotency_keys", "spunta_runs"} {
		parts = append(parts, fmt.Sprintf("%s=%d", table, scalar(t, dsn, "SELECT count(*) FROM "+table)))
	}
	parts = append(parts, fmt.Sprintf("stall_status=%d", scalar(t, dsn, `SELECT coalesce(sum(hashtext(id::text || status)), 0) FROM stalls`)))
	parts = append(parts, fmt.Sprintf("concession_status=%d", scalar(t, dsn, `SELECT coalesce(sum(hashtext(id::text || status)), 0) FROM concessions`)))
	return strings.Join(parts, " ")
}

// checkRollup checks that the presence rollup, where the schema has one,
// equals the presences counted by market, day and kind.
func checkRollup(t *testing.T, dsn string) {
	t.Helper()
	if scalar(t, dsn, `SELECT count(*) FROM pg_class WHERE relname = 'presence_daily'`) == 0 {
		return
	}
	bad := scalar(t, dsn, `SELECT count(*) FROM (
		SELECT market_id, date, kind, count(*)::int AS n FROM vendor_presences GROUP BY 1, 2, 3) p
		FULL JOIN (SELECT market_id, date, kind, n FROM presence_daily WHERE n > 0) d USING (market_id, date, kind)
		WHERE p.n IS DISTINCT FROM d.n`)
	if bad != 0 {
		t.Errorf("presence_daily differs from count(*) of vendor_presences in %d (market, day, kind) groups", bad)
	}
}

// auditRow is the latest audit row of an entity.
type auditRow struct {
	User, Role, Action string
	Before, After      map[string]any
}

func latestAudit(t *testing.T, dsn, entity string, id int64) auditRow {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var a auditRow
	err = conn.QueryRow(context.Background(), `SELECT user_sub, role, action, before, after FROM audit_log
		WHERE entity = $1 AND entity_id = $2 ORDER BY id DESC LIMIT 1`, entity, id).Scan(&a.User, &a.Role, &a.Action, &a.Before, &a.After)
	if err != nil {
		t.Fatalf("audit row of %s %d: %v", entity, id, err)
	}
	return a
}

// partitaIVA returns the partita IVA with the ten digits d and their check digit.
func partitaIVA(d string) string {
	sum := 0
	for i := 0; i < 10; i++ {
		n := int(d[i] - '0')
		if i%2 == 1 {
			if n *= 2; n > 9 {
				n -= 9
			}
		}
		sum += n
	}
	return d + strconv.Itoa((10-sum%10)%10)
}
