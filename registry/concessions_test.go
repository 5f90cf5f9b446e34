package registry

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/dmshub/dmsrouter/regions"
)

func TestConcessions(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, "concessions")
	alfa, beta := w.concessions[0].ID, w.concessions[1].ID
	for _, tt := range []struct {
		name string
		sc   regions.Scope
		f    ConcessionFilter
		want []int64
	}{
		{"by id", lombardia, ConcessionFilter{}, []int64{alfa, beta}},
		{"market", milano, ConcessionFilter{MarketID: w.markets["MI001"].ID}, []int64{alfa, beta}},
		{"another market", lombardia, ConcessionFilter{MarketID: w.markets["BG001"].ID}, []int64{}},
		{"vendor", lombardia, ConcessionFilter{VendorID: w.vendors["Beta di Mario Rossi"].ID}, []int64{beta}},
		{"status", lombardia, ConcessionFilter{Status: "SOSPESA"}, []int64{}},
		{"expiring before", lombardia, ConcessionFilter{ExpiringBefore: w.today.AddDate(0, 0, 20)}, []int64{alfa}},
		{"outside the scope", regions.Scope{Region: "03", Comune: "016024"}, ConcessionFilter{}, []int64{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l, err := ListConcessions(ctx, w.sh, tt.sc, tt.f, Page{Limit: 10})
			checkList(t, "ListConcessions", l, err, nil, concessionID, tt.want)
			if l.Total != int64(len(tt.want)) {
				t.Errorf("ListConcessions total = %d, want %d", l.Total, len(tt.want))
			}
		})
	}
	t.Run("pages", func(t *testing.T) {
		list := func(p Page) (List[Concession], error) {
			return ListConcessions(ctx, w.sh, lombardia, ConcessionFilter{}, p)
		}
		if got := allPages(t, list, concessionID, 1, 2); !slices.Equal(got, []int64{alfa, beta}) {
			t.Errorf("pages = %v, want [%d %d]", got, alfa, beta)
		}
	})
	t.Run("get", func(t *testing.T) {
		if c, err := GetConcession(ctx, w.sh, milano, beta); err != nil || c != w.concessions[1] {
			t.Errorf("GetConcession = %+v, %v, want %+v", c, err, w.concessions[1])
		}
		if _, err := GetConcession(ctx, w.sh, lazio, beta); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetConcession of another region: %v, want ErrNotFound", err)
		}
	})
}
