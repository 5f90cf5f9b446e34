package registry

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/dmshub/dmsrouter/regions"
)

func TestVendors(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, "vendors")
	id := func(names ...string) []int64 { return idsOf(w.vendors, vendorID, names...) }
	for _, tt := range []struct {
		name string
		sc   regions.Scope
		f    VendorFilter
		want []int64
	}{
		{"by denominazione", lombardia, VendorFilter{}, id("Alfa Srl", "Beta di Mario Rossi", "Gamma Spa")},
		{"a comune's scope sees the region's vendors", milano, VendorFilter{}, id("Alfa Srl", "Beta di Mario Rossi", "Gamma Spa")},
		{"partita IVA", lombardia, VendorFilter{PartitaIVA: "01234567897"}, id("Alfa Srl")},
		{"codice fiscale", lombardia, VendorFilter{CodiceFiscale: "RSSMRA80A01H501U"}, id("Beta di Mario Rossi")},
		{"name", lombardia, VendorFilter{Q: "spa"}, id("Gamma Spa")},
		{"another region", lazio, VendorFilter{PartitaIVA: "01234567897"}, id("Alfa Srl Roma")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l, err := ListVendors(ctx, w.sh, tt.sc, tt.f, Page{Limit: 10})
			checkList(t, "ListVendors", l, err, nil, vendorID, tt.want)
			if l.Total != int64(len(tt.want)) {
				t.Errorf("ListVendors total = %d, want %d", l.Total, len(tt.want))
			}
		})
	}
	t.Run("pages", func(t *testing.T) {
		list := func(p Page) (List[Vendor], error) { return ListVendors(ctx, w.sh, lombardia, VendorFilter{}, p) }
		if got, want := allPages(t, list, vendorID, 2, 3), id("Alfa Srl", "Beta di Mario Rossi", "Gamma Spa"); !slices.Equal(got, want) {
			t.Errorf("pages = %v, want %v", got, want)
		}
	})
	t.Run("get", func(t *testing.T) {
		if v, err := GetVendor(ctx, w.sh, milano, w.vendors["Gamma Spa"].ID); err != nil || !reflect.DeepEqual(v, w.vendors["Gamma Spa"]) {
			t.Errorf("GetVendor = %+v, %v, want %+v", v, err, w.vendors["Gamma Spa"])
		}
		if _, err := GetVendor(ctx, w.sh, lazio, w.vendors["Gamma Spa"].ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetVendor of another region: %v, want ErrNotFound", err)
		}
	})
}
