package seed

import (
	"math/rand/v2"
	"testing"

	"github.com/dmshub/dmsrouter/taxcode"
)

func TestMakePartitaIVA(t *testing.T) {
	tests := []struct {
		matricola, office int
		want              string
	}{
		{123456, 789, "01234567897"},
		{1234567, 890, "12345678903"},
		{74311, 15, "00743110157"},
	}
	for _, tt := range tests {
		if got := makePartitaIVA(tt.matricola, tt.office); got != tt.want {
			t.Errorf("makePartitaIVA(%d, %d) = %s, want %s", tt.matricola, tt.office, got, tt.want)
		}
	}
}

func TestGeneratedPartitaIVAValid(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		p := makePartitaIVA(rng.IntN(10_000_000), 1+rng.IntN(100))
		if !taxcode.ValidPartitaIVA(p) {
			t.Fatalf("ValidPartitaIVA(%s) = false for a generated one", p)
		}
		// Any single wrong digit is caught by the check digit.
		i := rng.IntN(11)
		b := []byte(p)
		b[i] = '0' + (b[i]-'0'+byte(1+rng.IntN(9)))%10
		if taxcode.ValidPartitaIVA(string(b)) {
			t.Fatalf("ValidPartitaIVA(%s) = true, a digit of %s changed", b, p)
		}
	}
}

func TestCodiceFiscale(t *testing.T) {
	tests := []struct {
		p    person
		want string
	}{
		{person{surname: "Rossi", name: "Mario", year: 1980, month: 1, day: 1, place: "H501"}, "RSSMRA80A01H501U"},
		{person{surname: "Rossi", name: "Maria", female: true, year: 1980, month: 1, day: 1, place: "H501"}, "RSSMRA80A41H501Y"},
		{person{surname: "Rossi", name: "Mario", year: 1985, month: 12, day: 10, place: "A562"}, "RSSMRA85T10A562S"},
	}
	for _, tt := range tests {
		if got := tt.p.codiceFiscale(); got != tt.want {
			t.Errorf("%+v.codiceFiscale() = %s, want %s", tt.p, got, tt.want)
		}
	}
}

func TestNameCodes(t *testing.T) {
	for _, tt := range []struct {
		name, surname, want string
		code                func(string) string
	}{
		{"surname", "Rossi", "RSS", surnameCode},
		{"surname", "De Luca", "DLC", surnameCode},
		{"surname", "D'Angelo", "DNG", surnameCode},
		{"surname", "Fo", "FOX", surnameCode},
		{"surname", "Ruo", "RUO", surnameCode},
		{"name", "Giuseppe", "GPP", nameCode}, // four consonants: 1st, 3rd, 4th
		{"name", "Mario", "MRA", nameCode},
		{"name", "Anna", "NNA", nameCode},
		{"name", "Ada", "DAA", nameCode},
	} {
		if got := tt.code(tt.surname); got != tt.want {
			t.Errorf("%s code of %q = %s, want %s", tt.name, tt.surname, got, tt.want)
		}
	}
}

func TestGeneratedCodiciFiscaliValid(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 10000 {
		cf := randomPerson(rng, "015146").codiceFiscale()
		if !taxcode.ValidCodiceFiscale(cf) {
			t.Fatalf("ValidCodiceFiscale(%s) = false for a generated one", cf)
		}
	}
}

// TestPlanVendors checks the national registry: valid and distinct tax
// codes, companies whose codice fiscale is their partita IVA, and the share
// of vendors in several regions.
func TestPlanVendors(t *testing.T) {
	p := newPlan(Options{Markets: 8000, Days: 1, Seed: 42}, dayOf(2026, 5, 4))
	if got, want := len(p.vendors), 8000*vendorsPerMarket; got != want {
		t.Errorf("vendors = %d, want %d", got, want)
	}
	pivas, cfs := map[string]bool{}, map[string]bool{}
	for _, v := range p.vendors {
		if !taxcode.ValidPartitaIVA(v.partitaIVA) || !taxcode.ValidCodiceFiscale(v.codiceFiscale) {
			t.Errorf("vendor %+v: invalid tax code", v)
		}
		if len(v.codiceFiscale) == 11 && v.codiceFiscale != v.partitaIVA {
			t.Errorf("company %+v: codice fiscale is not the partita IVA", v)
		}
		if pivas[v.partitaIVA] || cfs[v.codiceFiscale] {
			t.Errorf("vendor %+v: tax code used twice", v)
		}
		pivas[v.partitaIVA], cfs[v.codiceFiscale] = true, true
	}
	inRegions := make([]int, len(p.vendors))
	for n := 1; n <= 20; n++ {
		for _, v := range p.regionVendors[n] {
			inRegions[v]++
		}
	}
	multi := 0
	for v, n := range inRegions {
		if n == 0 {
			t.Errorf("vendor %d has no region", v)
		}
		if n > 1 {
			multi++
		}
	}
	if f := float64(multi) / float64(len(p.vendors)); f < 0.14 || f > 0.16 {
		t.Errorf("%.3f of the vendors operate in several regions, want 0.15", f)
	}
}
