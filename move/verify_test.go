package move

import (
	"context"
	"os"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/regions"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &pg)) }

// region is the region the tests move, from shard "src" to shard "rest".
const region regions.Code = "05"

// pair is a deployment whose shard src holds region 05 and whose shard
// rest holds every other region: a move's source and target.
type pair struct {
	plan     Plan
	src, dst *pgx.Conn
}

func newPair(tb testing.TB, name string) pair {
	tb.Helper()
	cfg := pgtest.NewDeployment(tb, pg, name, pgtest.Split("rest", pgtest.Layout{region: "src"}))
	p := pair{plan: Plan{ID: 1, Region: region, Source: pgtest.Shard(tb, cfg, "src"), Target: pgtest.Shard(tb, cfg, "rest")}}
	p.src = connect(tb, p.plan.Source.AdminDSN())
	p.dst = connect(tb, p.plan.Target.AdminDSN())
	// The target holds the region unowned, as while a move copies it.
	exec(tb, p.dst, `INSERT INTO dms.shard_regions (region_id, owned) VALUES ($1, false)`, region.Num())
	return p
}

func connect(tb testing.TB, dsn string) *pgx.Conn {
	tb.Helper()
	conn, err := Connect(context.Background(), dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func exec(tb testing.TB, conn *pgx.Conn, sql string, args ...any) {
	tb.Helper()
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		tb.Fatalf("exec %q: %v", sql, err)
	}
}

// id returns region 05's id with sequence number seq.
func id(seq int64) int64 { return regions.MakeID(region, seq) }

// audit writes audit rows first..last of region 05 on conn, each row's
// values derived from its number, so that both sides can hold equal rows.
func audit(tb testing.TB, conn *pgx.Conn, first, last int64) {
	tb.Helper()
	exec(tb, conn, `INSERT INTO audit_log (id, region_id, at, user_sub, role, action, entity, entity_id, after)
SELECT $1::bigint + g, $3, timestamptz '2024-01-01 00:00:00+01' + g * interval '1 minute', 'user-' || g, 'admin', 'create', 'market', g,
	jsonb_build_object('n', g, 'f', g / 3.0)
FROM generate_series($2::bigint, $4::bigint) g`, int64(region.Num())<<regions.IDShift, first, region.Num(), last)
}

// mark writes region 05's move mark on conn.
func mark(tb testing.TB, conn *pgx.Conn, n int64) {
	tb.Helper()
	exec(tb, conn, `INSERT INTO dms.move_marks (region_id, mark, marked_at) VALUES ($1, $2, '2024-01-01')
ON CONFLICT (region_id) DO UPDATE SET mark = excluded.mark`, region.Num(), n)
}

// reset makes both sides hold the same rows: audit rows 1..rows and mark 1.
func (p pair) reset(tb testing.TB, rows int64) {
	tb.Helper()
	for _, c := range []*pgx.Conn{p.src, p.dst} {
		exec(tb, c, `DELETE FROM audit_log WHERE region_id = $1`, region.Num())
		audit(tb, c, 1, rows)
		mark(tb, c, 1)
	}
}

func testTables(tb testing.TB) []Table {
	tb.Helper()
	var out []Table
	for _, name := range []string{"public.audit_log", "dms.move_marks"} {
		t, ok := tableNamed(name)
		if !ok {
			tb.Fatalf("no table %s in Tables", name)
		}
		out = append(out, t)
	}
	return out
}

func TestVerifyFindsDifferences(t *testing.T) {
	p := newPair(t, "verify")
	const rows = 2000
	tests := []struct {
		name   string
		change string // run on the target after the reset
		table  string // where the difference lies ("" for none)
		key    int64  // a key inside the differing range
	}{
		{"equal", "", "", 0},
		{"missing row", `DELETE FROM audit_log WHERE id = ` + itoa(id(700)), "public.audit_log", id(700)},
		{"extra row", `INSERT INTO audit_log (id, region_id, user_sub, role, action, entity) VALUES (` + itoa(id(rows+40)) + `, 5, 'x', 'admin', 'create', 'market')`, "public.audit_log", id(rows + 40)},
		{"changed row", `UPDATE audit_log SET action = 'update' WHERE id = ` + itoa(id(1234)), "public.audit_log", id(1234)},
		{"changed json", `UPDATE audit_log SET after = jsonb_set(after, '{n}', '0') WHERE id = ` + itoa(id(1)), "public.audit_log", id(1)},
		{"changed mark", `UPDATE dms.move_marks SET mark = 2 WHERE region_id = 5`, "dms.move_marks", 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p.reset(t, rows)
			if tt.change != "" {
				exec(t, p.dst, tt.change)
			}
			v, err := Verify(context.Background(), p.src, p.dst, region, VerifyOptions{RangeRows: 250, Tables: testTables(t)})
			if err != nil {
				t.Fatal(err)
			}
			if got := v.Tables[0].Ranges; got != rows/250 {
				t.Errorf("audit_log split into %d ranges, want %d", got, rows/250)
			}
			if tt.table == "" {
				if !v.OK() {
					t.Errorf("Verify(equal sides) differs: %v", v.Differing)
				}
				return
			}
			if len(v.Differing) != 1 {
				t.Fatalf("Verify found %d differing ranges %v, want 1 in %s around %d", len(v.Differing), v.Differing, tt.table, tt.key)
			}
			d := v.Differing[0]
			if d.Table != tt.table || tt.key < d.Lo || tt.key >= d.Hi {
				t.Errorf("Verify found %v, want the range of %s holding %d", d, tt.table, tt.key)
			}
			if v.Rounds != 1 {
				t.Errorf("Verify without Settle ran %d rounds, want 1", v.Rounds)
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestVerifyConverges(t *testing.T) {
	p := newPair(t, "converge")
	tests := []struct {
		name      string
		fixAfter  int // Settle fixes the target on this call; 0 never
		rounds    int
		wantOK    bool
		wantRound int
		wantCalls int
	}{
		{"fixed by the first settle", 1, 10, true, 2, 1},
		{"fixed by the third settle", 3, 10, true, 4, 3},
		{"never fixed", 0, 3, false, 4, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p.reset(t, 1000)
			exec(t, p.dst, `DELETE FROM audit_log WHERE id = $1`, id(10))
			calls := 0
			settle := func(ctx context.Context) error {
				calls++
				if calls == tt.fixAfter {
					// As replication would: the missing row arrives.
					audit(t, p.dst, 10, 10)
				}
				return nil
			}
			v, err := Verify(context.Background(), p.src, p.dst, region,
				VerifyOptions{RangeRows: 100, Rounds: tt.rounds, Settle: settle, Tables: testTables(t)})
			if err != nil {
				t.Fatal(err)
			}
			if v.OK() != tt.wantOK || v.Rounds != tt.wantRound || calls != tt.wantCalls {
				t.Errorf("Verify: OK %t after %d rounds and %d settles, want %t, %d, %d (differing %v)",
					v.OK(), v.Rounds, calls, tt.wantOK, tt.wantRound, tt.wantCalls, v.Differing)
			}
			if !tt.wantOK && (len(v.Differing) != 1 || v.Tables[0].Differing != 1) {
				t.Errorf("Verify: differing %v, audit_log %+v; want the one range", v.Differing, v.Tables[0])
			}
		})
	}
}

// TestVerifyFrozenRecent checks that the freeze hashes the stored
// Idempotency-Keys written since the online verification, and only those.
func TestVerifyFrozenRecent(t *testing.T) {
	p := newPair(t, "recent")
	ctx := context.Background()
	keys, ok := tableNamed("public.idempotency_keys")
	if !ok || keys.Recent == "" {
		t.Fatal("public.idempotency_keys has no Recent column in Tables")
	}
	insert := func(conn *pgx.Conn, key, at string) {
		exec(t, conn, `INSERT INTO idempotency_keys (region_id, user_sub, role, territory, key, fingerprint, created, response, created_at)
VALUES ($1, 'u', 'admin_pa', 'region:05', $2, '\x00', true, '{}', $3)`, region.Num(), key, at)
	}
	for _, tt := range []struct {
		name      string
		target    func()
		wantFound bool
	}{
		{"new key missing on the target", func() { insert(p.src, "new", "now()") }, true},
		{"old key missing on the target, not looked at in the freeze", func() { exec(t, p.dst, `DELETE FROM idempotency_keys WHERE key = 'old'`) }, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, c := range []*pgx.Conn{p.src, p.dst} {
				exec(t, c, `DELETE FROM idempotency_keys WHERE region_id = $1`, region.Num())
				insert(c, "old", "2024-01-01")
			}
			last, err := Verify(ctx, p.src, p.dst, region, VerifyOptions{Tables: []Table{keys}})
			if err != nil || !last.OK() {
				t.Fatalf("Verify before the freeze: %v, %v", err, last.Differing)
			}
			tt.target()
			v, err := verifyFrozen(ctx, p.src, p.dst, region, last, 0, 500)
			if err != nil {
				t.Fatal(err)
			}
			if found := !v.OK(); found != tt.wantFound {
				t.Errorf("VerifyFrozen differing %v, want found %t", v.Differing, tt.wantFound)
			}
			if v.Tables[0].Rows > 1 {
				t.Errorf("VerifyFrozen hashed %d keys, want only those written since the online verification", v.Tables[0].Rows)
			}
		})
	}
}

// TestVerifyNarrows checks that a difference that does not settle is
// narrowed down to a small range, which is all the freeze then hashes.
func TestVerifyNarrows(t *testing.T) {
	p := newPair(t, "narrow")
	const rows, missing = 20_000, 12_345
	p.reset(t, rows)
	exec(t, p.dst, `DELETE FROM audit_log WHERE id = $1`, id(missing))
	v, err := Verify(context.Background(), p.src, p.dst, region, VerifyOptions{RangeRows: rows, Rounds: 5,
		Settle: func(context.Context) error { return nil }, Tables: testTables(t)})
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Differing) != 1 {
		t.Fatalf("Verify: differing %v, want one range", v.Differing)
	}
	d := v.Differing[0]
	if d.Lo > id(missing) || id(missing) >= d.Hi || d.Source.Rows > narrowRows || d.Source.Rows != d.Target.Rows+1 {
		t.Errorf("Verify: differing %v, want a range of at most %d rows holding the missing row %d", d, narrowRows, id(missing))
	}
}

func TestVerifyFrozen(t *testing.T) {
	p := newPair(t, "frozen")
	const rows = 3000
	tests := []struct {
		name   string
		small  int64  // hash every range under this many rows
		source string // run on the source after the online verification
		target string // and on the target
		table  string // the table found differing, "" for none
		key    int64
	}{
		{"nothing new", 0, "", "", "", 0},
		{"new rows arrived", 0, insertAudit(rows + 1), insertAudit(rows + 1), "", 0},
		{"newest row missing", 0, insertAudit(rows + 1), "", "public.audit_log", id(rows + 1)},
		{"newest row changed", 0, insertAudit(rows + 1), insertAudit(rows+1) + `; UPDATE audit_log SET role = 'x' WHERE id = ` + itoa(id(rows+1)), "public.audit_log", id(rows + 1)},
		{"newest row deleted", 0, "", `DELETE FROM audit_log WHERE id = ` + itoa(id(rows)), "public.audit_log", id(rows)},
		// Below the newest keys the freeze looks at nothing: the whole
		// verification after the switch finds such a row.
		{"older row deleted", 0, "", `DELETE FROM audit_log WHERE id = ` + itoa(id(5)), "", 0},
		{"mark changed", 0, `UPDATE dms.move_marks SET mark = 9`, "", "dms.move_marks", 5},
		{"small region: older row changed", 1 << 40, "", `UPDATE audit_log SET role = 'x' WHERE id = ` + itoa(id(5)), "public.audit_log", id(5)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			p.reset(t, rows)
			last, err := Verify(ctx, p.src, p.dst, region, VerifyOptions{RangeRows: 500, Tables: testTables(t)})
			if err != nil || !last.OK() {
				t.Fatalf("Verify before the freeze: %v, %v", err, last.Differing)
			}
			if tt.source != "" {
				exec(t, p.src, tt.source)
			}
			if tt.target != "" {
				exec(t, p.dst, tt.target)
			}
			v, err := verifyFrozen(ctx, p.src, p.dst, region, last, tt.small, 500)
			if err != nil {
				t.Fatal(err)
			}
			if !v.Frozen {
				t.Error("VerifyFrozen: Frozen not set")
			}
			if tt.table == "" {
				if !v.OK() {
					t.Errorf("VerifyFrozen differs: %v", v.Differing)
				}
				return
			}
			found := false
			for _, d := range v.Differing {
				found = found || (d.Table == tt.table && d.Lo <= tt.key && tt.key < d.Hi)
			}
			if !found {
				t.Errorf("VerifyFrozen found %v, want a range of %s holding %d", v.Differing, tt.table, tt.key)
			}
		})
	}
}

// insertAudit is the SQL that inserts audit row n of region 05 as audit
// does.
func insertAudit(n int64) string {
	return `INSERT INTO audit_log (id, region_id, at, user_sub, role, action, entity, entity_id)
VALUES (` + itoa(id(n)) + `, 5, '2024-02-01', 'late', 'admin', 'create', 'market', 1)`
}

// BenchmarkVerify measures Verify and VerifyFrozen over a million audit
// rows of region 05 on each side (go test -run X -bench Verify -benchtime 1x).
func BenchmarkVerify(b *testing.B) {
	ctx := context.Background()
	p := newPair(b, "bench")
	const rows = 1_000_000
	p.reset(b, rows)
	for _, c := range []*pgx.Conn{p.src, p.dst} {
		exec(b, c, `VACUUM ANALYZE audit_log`)
	}
	var last Verification
	b.Run("Verify", func(b *testing.B) {
		for b.Loop() {
			v, err := Verify(ctx, p.src, p.dst, region, VerifyOptions{Tables: Tables})
			if err != nil || !v.OK() {
				b.Fatalf("Verify: %v %v", err, v.Differing)
			}
			last = v
		}
	})
	b.Run("VerifyFrozen", func(b *testing.B) {
		for b.Loop() {
			v, err := VerifyFrozen(ctx, p.src, p.dst, region, last)
			if err != nil || !v.OK() {
				b.Fatalf("VerifyFrozen: %v %v", err, v.Differing)
			}
		}
	})
}
