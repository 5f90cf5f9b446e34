package regions

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestLookupComune(t *testing.T) {
	tests := []Comune{
		{Code: "015146", Name: "Milano", Region: "03", Population: 1242123},
		{Code: "058091", Name: "Roma", Region: "12", Population: 2617175},
		{Code: "001001", Name: "Agliè", Region: "01", Population: 2644},
		{Code: "021008", Name: "Bolzano/Bozen", Region: "04", Population: 102575},
		{Code: "007020", Name: "Châtillon", Region: "02", Population: 4946},
		{Code: "001004", Name: "Albiano d'Ivrea", Region: "01", Population: 1791},
		{Code: "111001", Name: "Arbus", Region: "20", Population: 6575},
		{Code: "081025", Name: "Misiliscemi", Region: "19"},  // created in 2021: no census population
		{Code: "099031", Name: "Sassofeltrio", Region: "08"}, // moved from Marche in 2021: new code
		{Code: "111107", Name: "Villaspeciosa", Region: "20", Population: 2407},
	}
	for _, want := range tests {
		t.Run(want.Code, func(t *testing.T) {
			got, err := LookupComune(want.Code)
			if err != nil || got != want {
				t.Errorf("LookupComune(%q) = %+v, %v, want %+v, nil", want.Code, got, err, want)
			}
			if got.Province() != want.Code[:3] {
				t.Errorf("LookupComune(%q).Province() = %q, want %q", want.Code, got.Province(), want.Code[:3])
			}
		})
	}
}

func TestLookupComuneRejects(t *testing.T) {
	for _, in := range []string{
		"", "000000", "000001", "001000", "015000", "015147", "015999", "104001", "111999", "215146",
		"999999", "15146", "0151460", "01514a", " 15146", "015146\n", "001001;01",
	} {
		t.Run(in, func(t *testing.T) {
			got, err := LookupComune(in)
			if !errors.Is(err, ErrUnknownComune) {
				t.Errorf("LookupComune(%q) = %+v, %v, want error wrapping ErrUnknownComune", in, got, err)
			}
		})
	}
}

func TestLookupComuneErrorQuotesInput(t *testing.T) {
	_, err := ComuneRegion("015999")
	if want := `unknown comune: "015999" is not the ISTAT code of a comune`; err == nil || err.Error() != want {
		t.Errorf("ComuneRegion(%q) error = %v, want %s", "015999", err, want)
	}
}

// TestComuniTable checks the generated table against the province table:
// sorted unique codes, every comune in a plain province of its own region,
// every province in use with comuni, and every comune found by LookupComune.
func TestComuniTable(t *testing.T) {
	lines := strings.Split(strings.TrimSuffix(comuniTable, "\n"), "\n")
	if len(lines) != 7896 {
		t.Errorf("comuniTable has %d comuni, want 7896", len(lines))
	}
	if !strings.HasSuffix(comuniTable, "\n") {
		t.Errorf("comuniTable does not end with a newline")
	}
	byProvince := map[string]int{}
	withPopulation := 0
	for i, line := range lines {
		c := parseComune(line)
		if i > 0 && lines[i-1][:6] >= c.Code {
			t.Errorf("line %d: code %s does not follow %s", i+1, c.Code, lines[i-1][:6])
		}
		if c.Name == "" || c.Population < 0 || len(strings.Split(line, ";")) != 4 {
			t.Errorf("line %d: malformed %q", i+1, line)
		}
		if r, err := ProvinceRegion(c.Province()); err != nil || r != c.Region {
			t.Errorf("comune %s (%s) is in region %s, ProvinceRegion(%q) = %q, %v", c.Code, c.Name, c.Region, c.Province(), r, err)
		}
		if !slices.Contains(Provinces(c.Region), c.Province()) {
			t.Errorf("comune %s (%s): %s is not a plain province of region %s", c.Code, c.Name, c.Province(), c.Region)
		}
		if got, err := LookupComune(c.Code); err != nil || got != c {
			t.Errorf("LookupComune(%q) = %+v, %v, want %+v, nil", c.Code, got, err, c)
		}
		byProvince[c.Province()]++
		if c.Population > 0 {
			withPopulation++
		}
	}
	if withPopulation < 7800 {
		t.Errorf("%d comuni have a population, want nearly all", withPopulation)
	}
	for _, r := range All() {
		for _, p := range Provinces(r.Code) {
			if byProvince[p] == 0 {
				t.Errorf("province %s of region %s has no comuni", p, r.Code)
			}
		}
	}
}

func TestProvinceComuni(t *testing.T) {
	total := 0
	for p, w := range wantProvinces(t) {
		t.Run(p, func(t *testing.T) {
			got := ProvinceComuni(p)
			canon, _ := CanonicalProvince(p)
			switch {
			case w.abolished && got != nil:
				t.Errorf("ProvinceComuni(%q) = %d comuni, want nil for an abolished province", p, len(got))
			case !w.abolished && len(got) == 0:
				t.Errorf("ProvinceComuni(%q) is empty", p)
			}
			for i, c := range got {
				if c.Province() != canon || c.Region != w.region || (i > 0 && got[i-1].Code >= c.Code) {
					t.Errorf("ProvinceComuni(%q)[%d] = %+v, want ascending comuni of province %s in region %s", p, i, c, canon, w.region)
				}
			}
			if w.metro {
				if twin := ProvinceComuni(canon); !slices.Equal(got, twin) {
					t.Errorf("ProvinceComuni(%q) = %d comuni, ProvinceComuni(%q) = %d, want the same", p, len(got), canon, len(twin))
				}
			} else {
				total += len(got)
			}
		})
	}
	if total != 7896 {
		t.Errorf("the plain provinces hold %d comuni, want 7896", total)
	}
	for _, p := range []string{"", "000", "112", "216", "15", "MI"} {
		if got := ProvinceComuni(p); got != nil {
			t.Errorf("ProvinceComuni(%q) = %d comuni, want nil", p, len(got))
		}
	}
	if got := ProvinceComuni("015"); len(got) != 133 || got[0].Code != "015002" || got[len(got)-1].Name != "Vermezzo con Zelo" {
		t.Errorf("ProvinceComuni(%q) = %d comuni from %+v, want 133 from 015002 to Vermezzo con Zelo", "015", len(got), got[0])
	}
}
