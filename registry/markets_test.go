package registry

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/regions"
)

func TestMarkets(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, "markets")
	id := func(codes ...string) []int64 { return idsOf(w.markets, marketID, codes...) }
	// The test cluster's collation (C.UTF-8) orders names by code point:
	// "Mercato Vecchio" before "Mercato del Borgo", "mercato" last.
	t.Run("list", func(t *testing.T) {
		for _, tt := range []struct {
			name string
			sc   regions.Scope
			f    MarketFilter
			want []int64
		}{
			{"region", lombardia, MarketFilter{}, id("MI001", "MI003", "BG001", "MI002")},
			{"province scope", milanoPr, MarketFilter{}, id("MI001", "MI003", "MI002")},
			{"comune filter", lombardia, MarketFilter{Comune: "016024"}, id("BG001")},
			{"province filter outside the scope", milanoPr, MarketFilter{Province: "016"}, id()},
			{"status", lombardia, MarketFilter{Status: "INACTIVE"}, id("MI003")},
			{"name, case-insensitive", lombardia, MarketFilter{Q: "MERCATO R"}, id("MI002")},
			{"name, a LIKE wildcard is literal", lombardia, MarketFilter{Q: "%"}, id()},
			{"market scope", regions.Scope{Region: "03", Market: w.markets["BG001"].ID}, MarketFilter{}, id("BG001")},
			{"another region", lazio, MarketFilter{}, id("RM001")},
		} {
			t.Run(tt.name, func(t *testing.T) {
				l, err := ListMarkets(ctx, w.sh, tt.sc, tt.f, Page{Limit: 10})
				checkList(t, "ListMarkets", l, err, nil, marketID, tt.want)
				if l.Total != int64(len(tt.want)) {
					t.Errorf("ListMarkets total = %d, want %d", l.Total, len(tt.want))
				}
			})
		}
	})
	t.Run("pages", func(t *testing.T) {
		want := id("MI001", "MI003", "BG001", "MI002")
		// By cursor, two at a time.
		list := func(p Page) (List[Market], error) { return ListMarkets(ctx, w.sh, lombardia, MarketFilter{}, p) }
		if got := allPages(t, list, marketID, 2, 4); !slices.Equal(got, want) {
			t.Errorf("pages by cursor = %v, want %v", got, want)
		}
		// By offset, and past the end.
		for _, tt := range []struct {
			offset int
			want   []int64
		}{{1, want[1:3]}, {3, want[3:]}, {9, nil}} {
			l, err := ListMarkets(ctx, w.sh, lombardia, MarketFilter{}, Page{Limit: 2, Offset: tt.offset})
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(l.Items, marketID); !slices.Equal(got, append([]int64{}, tt.want...)) || l.Total != 4 {
				t.Errorf("offset %d = %v (total %d), want %v (total 4)", tt.offset, got, l.Total, tt.want)
			}
		}
	})
	t.Run("bad cursor", func(t *testing.T) {
		for _, cur := range []string{"garbage", cursor{List: "stalls", ID: 1}.encode(), NationalMarketsCursor(w.markets["MI001"])} {
			if _, err := ListMarkets(ctx, w.sh, lombardia, MarketFilter{}, Page{Limit: 2, Cursor: cur}); !errors.Is(err, ErrBadCursor) {
				t.Errorf("ListMarkets with cursor %q: %v, want ErrBadCursor", cur, err)
			}
		}
	})
	t.Run("get", func(t *testing.T) {
		for _, tt := range []struct {
			sc   regions.Scope
			code string
			ok   bool
		}{
			{lombardia, "BG001", true},
			{milano, "MI002", true},
			{milano, "BG001", false},
			{lazio, "MI001", false},
		} {
			m, err := GetMarket(ctx, w.sh, tt.sc, w.markets[tt.code].ID)
			switch {
			case tt.ok && (err != nil || !reflect.DeepEqual(m.Market, w.markets[tt.code])):
				t.Errorf("GetMarket(%+v, %s) = %+v, %v, want %+v", tt.sc, tt.code, m, err, w.markets[tt.code])
			case !tt.ok && !errors.Is(err, ErrNotFound):
				t.Errorf("GetMarket(%+v, %s): %v, want ErrNotFound", tt.sc, tt.code, err)
			}
		}
	})
}

// TestMarketOrderUsesIndex checks that an index gives the regional and the
// national lists of markets their order: with sorting disabled, the plan of
// a page has no Sort node, which it would need if no index had the order
// (in the list's collation).
func TestMarketOrderUsesIndex(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, "market_order")
	if _, err := w.admin.Exec(ctx, `INSERT INTO markets (id, region_id, code, name, province, comune, comune_name)
		SELECT dms.next_id('markets', 3::smallint), 3, 'XX' || lpad(g::text, 4, '0'), 'Mercato ' || md5(g::text), '015', '015146', 'Milano'
		FROM generate_series(1, 2000) g; ANALYZE markets`); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		l    list[Market]
		cur  string
	}{
		{"regional, first page", marketList, ""},
		{"regional, keyset page", marketList, marketList.spec.cursor(w.markets["MI001"]).encode()},
		{"national", nationalMarkets, ""},
		{"national, keyset page", nationalMarkets, NationalMarketsCursor(w.markets["MI001"])},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := marketArgs(lombardia, MarketFilter{})
			a["limit"], a["offset"] = 21, 0
			s := tt.l.first.pick(a)
			if tt.cur != "" {
				if err := tt.l.seek(a, tt.cur); err != nil {
					t.Fatal(err)
				}
				s = tt.l.page.pick(a)
			}
			text := explain(t, w, `SELECT set_config('enable_sort', 'off', true)`, s, a)
			if strings.Contains(text, "Sort") || !strings.Contains(text, "Index") {
				t.Errorf("the plan of %s sorts instead of reading an index in order:\n%s", s.sql, text)
			}
		})
	}
}

// explain returns the plan of s with arguments a, as lombardia's read runs
// it after the statement settings (set_config calls for the transaction).
func explain(tb testing.TB, w *world, settings string, s statement, a pgx.NamedArgs) string {
	tb.Helper()
	var plan []string
	err := w.sh.Read(context.Background(), lombardia, func(b *pgx.Batch) {
		b.Queue(settings)
		b.Queue("EXPLAIN "+s.sql, s.args(a)...).Query(func(rows pgx.Rows) error {
			var err error
			plan, err = pgx.CollectRows(rows, pgx.RowTo[string])
			return err
		})
	})
	if err != nil {
		tb.Fatal(err)
	}
	return strings.Join(plan, "\n")
}
