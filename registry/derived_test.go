package registry

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// TestDerivedValues holds what follows from other values to them: a
// stall's area to its width and depth, a graduatoria to its vendors' state.
func TestDerivedValues(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, "derived")
	mi1 := w.markets["MI001"].ID

	t.Run("stall area", func(t *testing.T) {
		id := w.stalls[0].ID // area 10, no width or depth
		f := func(v float64) Field[*float64] { return Field[*float64]{Set: true, V: &v} }
		null := Field[*float64]{Set: true}
		area := func(v float64) Field[float64] { return Field[float64]{Set: true, V: v} }
		for _, tt := range []struct {
			name  string
			p     StallPatch
			area  float64 // after the patch
			field string  // of the *InvalidError, "" for none
		}{
			{"a width alone", StallPatch{WidthM: f(5)}, 10, ""},
			{"then a depth", StallPatch{DepthM: f(3)}, 15, ""},
			{"then another width", StallPatch{WidthM: f(4)}, 12, ""},
			{"an area that is not the product", StallPatch{AreaMq: area(11)}, 12, "area_mq"},
			{"an area with a width that is not their product", StallPatch{AreaMq: area(20), WidthM: f(4.5)}, 12, "area_mq"},
			{"an area with a width that is", StallPatch{AreaMq: area(9), WidthM: f(3)}, 9, ""},
			{"both sides", StallPatch{WidthM: f(2.5), DepthM: f(4.01)}, 10.03, ""},
			{"a product too large", StallPatch{WidthM: f(999.99), DepthM: f(999.99)}, 10.03, "area_mq"},
			{"no width", StallPatch{WidthM: null}, 10.03, ""},
			{"an area without a width", StallPatch{AreaMq: area(11)}, 11, ""},
			{"a width again", StallPatch{WidthM: f(3)}, 12.03, ""},
		} {
			res, err := UpdateStall(ctx, w.sh, milano, admin, id, tt.p)
			var invalid *InvalidError
			switch {
			case tt.field == "" && err != nil:
				t.Errorf("%s: UpdateStall: %v", tt.name, err)
			case tt.field != "" && (!errors.As(err, &invalid) || invalid.Field != tt.field):
				t.Errorf("%s: UpdateStall = %+v, %v; want an invalid %s", tt.name, res.Value, err, tt.field)
			case tt.field == "" && res.Value.AreaMq != tt.area:
				t.Errorf("%s: area_mq = %v, want %v", tt.name, res.Value.AreaMq, tt.area)
			}
			s, err := GetStall(ctx, w.sh, milano, id)
			if err != nil || s.AreaMq != tt.area {
				t.Errorf("%s: stored area_mq = %v, %v; want %v", tt.name, s.AreaMq, err, tt.area)
			}
		}
		two, three := 2.0, 3.0
		in := NewStall{Number: 9, Type: "FISSO", Status: "LIBERO", AreaMq: 7, WidthM: &two, DepthM: &three}
		var invalid *InvalidError
		if _, err := CreateStall(ctx, w.sh, milano, admin, mi1, in); !errors.As(err, &invalid) || invalid.Field != "area_mq" {
			t.Errorf("CreateStall with area 7 = 2 x 3: %v, want an invalid area_mq", err)
		}
		in.AreaMq = 6
		if _, err := CreateStall(ctx, w.sh, milano, admin, mi1, in); err != nil {
			t.Errorf("CreateStall with area 6 = 2 x 3: %v", err)
		}
	})

	t.Run("graduatoria", func(t *testing.T) {
		gamma := w.vendors["Gamma Spa"].ID // one SPUNTA presence today
		delta := must(CreateVendor(ctx, w.sh, lombardia, admin, NewVendor{PartitaIVA: "11111111111", CodiceFiscale: "11111111111",
			Denominazione: "Delta", Comune: "015146", Status: "ATTIVA"}))(t).Value.ID
		// A spuntista is ranked in the sectors it is authorised for (issue 13).
		authorise(t, w.admin, "NON_ALIMENTARE", gamma, delta)
		for _, days := range []int{1, 2} {
			day := w.today.AddDate(0, 0, -days)
			must(CheckInVendor(ctx, w.sh, milano, admin, CheckIn{MarketID: mi1, VendorID: delta, Kind: "SPUNTA", Date: day, CheckinAt: day.Add(7 * time.Hour)}))(t)
		}
		ranked := func() []int64 {
			t.Helper()
			g, err := GetGraduatoria(ctx, w.sh, milano, mi1, GraduatoriaQuery{Kind: "SPUNTA", Date: w.today}, Page{Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			if g.Total != int64(len(g.Items)) {
				t.Errorf("graduatoria total %d for %d vendors", g.Total, len(g.Items))
			}
			for i, e := range g.Items {
				if e.Rank != int64(i+1) {
					t.Errorf("graduatoria place %d has rank %d", i+1, e.Rank)
				}
			}
			return ids(g.Items, func(e GraduatoriaEntry) int64 { return e.VendorID })
		}
		if got := ranked(); !slices.Equal(got, []int64{delta, gamma}) {
			t.Fatalf("graduatoria = %v, want Delta %d, Gamma %d", got, delta, gamma)
		}
		for _, stato := range []string{"SOSPESA", "CESSATA"} {
			must(UpdateVendor(ctx, w.sh, lombardia, admin, delta, VendorPatch{Status: Field[string]{Set: true, V: stato}}))(t)
			if got := ranked(); !slices.Equal(got, []int64{gamma}) {
				t.Errorf("graduatoria with Delta %s = %v, want Gamma %d alone", stato, got, gamma)
			}
		}
	})
}
