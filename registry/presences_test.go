package registry

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/dmshub/dmsrouter/regions"
)

func TestPresences(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, "presences")
	mi1 := w.markets["MI001"].ID
	all := ids(w.presences, presenceID)
	for _, tt := range []struct {
		name   string
		sc     regions.Scope
		market int64
		day    time.Time
		p      Page
		want   []int64
		err    error
	}{
		{"today", milano, mi1, w.today, Page{Limit: 10}, all, nil},
		{"offset", milano, mi1, w.today, Page{Limit: 10, Offset: 1}, all[1:], nil},
		{"yesterday", lombardia, mi1, w.today.AddDate(0, 0, -1), Page{Limit: 10}, []int64{}, nil},
		{"another market", lombardia, w.markets["MI002"].ID, w.today, Page{Limit: 10}, []int64{}, nil},
		{"a market outside the scope", regions.Scope{Region: "03", Province: "016"}, mi1, w.today, Page{Limit: 10}, nil, ErrNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l, err := ListPresences(ctx, w.sh, tt.sc, tt.market, tt.day, tt.p)
			checkList(t, "ListPresences", l, err, tt.err, presenceID, tt.want)
		})
	}
	t.Run("pages", func(t *testing.T) {
		list := func(p Page) (List[Presence], error) { return ListPresences(ctx, w.sh, milano, mi1, w.today, p) }
		if got := allPages(t, list, presenceID, 1, 2); !slices.Equal(got, all) {
			t.Errorf("pages = %v, want %v", got, all)
		}
	})
	t.Run("the concession's stall", func(t *testing.T) {
		p := w.presences[0]
		if p.StallID == nil || *p.StallID != w.stalls[0].ID || p.Kind != "CONCESSION" || !p.CheckinAt.Equal(w.today.Add(7*time.Hour)) {
			t.Errorf("check-in of the concession holder = %+v, want stall %d at 07:00", p, w.stalls[0].ID)
		}
	})
}
