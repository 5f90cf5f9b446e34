package migrations_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/pgtest"
)

// visibleIDs returns the first column of query's rows as dms_app sees them
// under scope sc.
func visibleIDs(tb testing.TB, dsn string, sc narrowed, query string) []int64 {
	tb.Helper()
	ctx := context.Background()
	tx := appTx(tb, dsn, sc)
	defer tx.Rollback(ctx)
	rows, _ := tx.Query(ctx, query)
	got, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		tb.Fatalf("%s under %+v: %v", query, sc, err)
	}
	return got
}

// TestScopePoliciesAdmitTheScope checks that the scope policies of
// migration 00018 admit, for every kind of territory, exactly the rows of
// that territory: a region, a province, a comune, a market, a narrowing
// that contradicts another, another region; and that the region-wide
// rollups are seen only without a narrowing.
func TestScopePoliciesAdmitTheScope(t *testing.T) {
	cfg := deploy(t, "scopepol")
	app := pgtest.Shard(t, cfg, "lombardia").Primary
	m, b := fmt.Sprint(milano), fmt.Sprint(bergamo)
	tests := []struct {
		name    string
		sc      narrowed
		markets []int64
		stalls  []int64
		rollups bool
	}{
		{"the region", narrowed{region: "03"}, []int64{milano, bergamo}, []int64{milanoStall, bergamoStall}, true},
		{"Milano's province", narrowed{region: "03", province: "015"}, []int64{milano}, []int64{milanoStall}, false},
		{"Bergamo's province", narrowed{region: "03", province: "016"}, []int64{bergamo}, []int64{bergamoStall}, false},
		{"Milano's comune", narrowed{region: "03", province: "015", comune: "015146"}, []int64{milano}, []int64{milanoStall}, false},
		{"Bergamo's comune", narrowed{region: "03", province: "016", comune: "016024"}, []int64{bergamo}, []int64{bergamoStall}, false},
		{"Milano's market", narrowed{region: "03", market: m}, []int64{milano}, []int64{milanoStall}, false},
		{"Bergamo's market", narrowed{region: "03", market: b}, []int64{bergamo}, []int64{bergamoStall}, false},
		{"Milano's market under Bergamo's comune", narrowed{region: "03", comune: "016024", market: m}, nil, nil, false},
		{"another region", narrowed{region: "05"}, nil, nil, false},
		{"no scope", narrowed{}, nil, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := visibleIDs(t, app, tt.sc, "SELECT id FROM markets ORDER BY id"); !slices.Equal(got, tt.markets) {
				t.Errorf("markets seen = %v, want %v", got, tt.markets)
			}
			if got := visibleIDs(t, app, tt.sc, "SELECT id FROM stalls ORDER BY id"); !slices.Equal(got, tt.stalls) {
				t.Errorf("stalls seen = %v, want %v", got, tt.stalls)
			}
			got := visibleIDs(t, app, tt.sc, "SELECT count(*) FROM region_status_counts")
			if seen := got[0] > 0; seen != tt.rollups {
				t.Errorf("region_status_counts rows seen = %d, want some: %v", got[0], tt.rollups)
			}
		})
	}

	// A write outside the market scope is refused by the same policies.
	ctx := context.Background()
	tx := appTx(t, app, narrowed{region: "03", market: m})
	defer tx.Rollback(ctx)
	_, err := tx.Exec(ctx, fmt.Sprintf(
		`INSERT INTO stalls (id, region_id, market_id, comune, number, type, area_mq) VALUES (%d, 3, %d, '016024', 9, 'FISSO', 10)`,
		bergamoStall+100, bergamo))
	if got := sqlState(err); got != "42501" {
		t.Errorf("a stall of Bergamo's market under Milano's market scope: SQLSTATE %q, want 42501", got)
	}
}

// TestScopePoliciesReadEachSettingOnce checks the form of the scope
// policies: each reads each scope setting in one subquery, so a statement
// starts one InitPlan per setting and table, not two. spunta_runs_scope
// calls the functions per row instead (no InitPlans) and is left as it is.
// Twelve: the eleven of migration 00018 and market_day_counts' (00020).
func TestScopePoliciesReadEachSettingOnce(t *testing.T) {
	cfg := deploy(t, "scopeonce")
	var n int
	for _, p := range policies(t, pgtest.Shard(t, cfg, "lombardia").AdminDSN()) {
		if !strings.Contains(p, "_scope PERMISSIVE {dms_app}") || !strings.Contains(p, "SELECT dms.scope_region()") ||
			!strings.Contains(p, "scope_market") && !strings.Contains(p, "scope_narrowing") {
			continue
		}
		n++
		for _, s := range []string{"dms.scope_region()", "'dms.province'", "'dms.comune'", "dms.scope_market()", "dms.scope_narrowing()"} {
			if c := strings.Count(p, s); c > 1 {
				t.Errorf("policy %s reads %s %d times, want once", strings.Fields(p)[1], s, c)
			}
		}
	}
	if n != 12 {
		t.Errorf("%d narrowing scope policies, want 12", n)
	}
}

// TestScopePoliciesDown checks that migration 00018's Down restores the
// policies as migration 00017 left them.
func TestScopePoliciesDown(t *testing.T) {
	checkPoliciesDown(t, freshDB(t, "scopedown"), 18)
}
