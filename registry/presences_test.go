package registry

import (
	"context"
	"errors"
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
			if !errors.Is(err, tt.err) {
				t.Fatalf("ListPresences: %v, want %v", err, tt.err)
			}
			if got := ids(l.Items, presenceID); err == nil && !slices.Equal(got, tt.want) {
				t.Errorf("ListPresences = %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("pages", func(t *testing.T) {
		l, err := ListPresences(ctx, w.sh, milano, mi1, w.today, Page{Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		next, err := ListPresences(ctx, w.sh, milano, mi1, w.today, Page{Limit: 1, Cursor: l.NextCursor})
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(append(l.Items, next.Items...), presenceID); !slices.Equal(got, all) || next.Total != 2 {
			t.Errorf("pages = %v (total %d), want %v", got, next.Total, all)
		}
	})
	t.Run("the concession's stall", func(t *testing.T) {
		p := w.presences[0]
		if p.StallID == nil || *p.StallID != w.stalls[0].ID || p.Kind != "CONCESSION" || !p.CheckinAt.Equal(w.today.Add(7*time.Hour)) {
			t.Errorf("check-in of the concession holder = %+v, want stall %d at 07:00", p, w.stalls[0].ID)
		}
	})
}
