package registry

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/dmshub/dmsrouter/regions"
)

func TestStalls(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, "stalls")
	mi1, bg1 := w.markets["MI001"].ID, w.markets["BG001"].ID
	all := ids(w.stalls, stallID)
	for _, tt := range []struct {
		name   string
		sc     regions.Scope
		market int64
		f      StallFilter
		p      Page
		want   []int64
		err    error
	}{
		{"by number", lombardia, mi1, StallFilter{}, Page{Limit: 10}, all, nil},
		{"status", milano, mi1, StallFilter{Status: "LIBERO"}, Page{Limit: 10}, []int64{all[0], all[3]}, nil},
		{"type", milano, mi1, StallFilter{Type: "SPUNTA"}, Page{Limit: 10}, []int64{all[2]}, nil},
		{"offset", lombardia, mi1, StallFilter{}, Page{Limit: 2, Offset: 1}, all[1:3], nil},
		{"a market without stalls", lombardia, bg1, StallFilter{}, Page{Limit: 10}, []int64{}, nil},
		{"a market outside the scope", regions.Scope{Region: "03", Comune: "016024"}, mi1, StallFilter{}, Page{Limit: 10}, nil, ErrNotFound},
		{"a market of another region", lazio, mi1, StallFilter{}, Page{Limit: 10}, nil, ErrNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l, err := ListStalls(ctx, w.sh, tt.sc, tt.market, tt.f, tt.p)
			checkList(t, "ListStalls", l, err, tt.err, stallID, tt.want)
		})
	}
	t.Run("pages", func(t *testing.T) {
		list := func(p Page) (List[Stall], error) { return ListStalls(ctx, w.sh, lombardia, mi1, StallFilter{}, p) }
		if got := allPages(t, list, stallID, 3, 4); !slices.Equal(got, all) {
			t.Errorf("pages = %v, want %v", got, all)
		}
	})
	t.Run("get", func(t *testing.T) {
		if s, err := GetStall(ctx, w.sh, milano, all[2]); err != nil || s.Number != 3 || s.Status != "RISERVATO" || s.AreaMq != 10 || s.WidthM != nil {
			t.Errorf("GetStall = %+v, %v, want stall 3", s, err)
		}
		if _, err := GetStall(ctx, w.sh, regions.Scope{Region: "03", Market: bg1}, all[0]); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetStall of another market's scope: %v, want ErrNotFound", err)
		}
	})
}
