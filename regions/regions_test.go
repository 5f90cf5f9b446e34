package regions

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"testing"
)

// wantRegions is the region list of docs/domain.md, written out independently of
// the implementation.
var wantRegions = []struct {
	code Code
	num  int
	name string
}{
	{"01", 1, "Piemonte"},
	{"02", 2, "Valle d'Aosta/Vallée d'Aoste"},
	{"03", 3, "Lombardia"},
	{"04", 4, "Trentino-Alto Adige/Südtirol"},
	{"05", 5, "Veneto"},
	{"06", 6, "Friuli-Venezia Giulia"},
	{"07", 7, "Liguria"},
	{"08", 8, "Emilia-Romagna"},
	{"09", 9, "Toscana"},
	{"10", 10, "Umbria"},
	{"11", 11, "Marche"},
	{"12", 12, "Lazio"},
	{"13", 13, "Abruzzo"},
	{"14", 14, "Molise"},
	{"15", 15, "Campania"},
	{"16", 16, "Puglia"},
	{"17", 17, "Basilicata"},
	{"18", 18, "Calabria"},
	{"19", 19, "Sicilia"},
	{"20", 20, "Sardegna"},
}

// span is an inclusive range of province numbers, as docs/domain.md writes them.
type span struct{ lo, hi int }

// wantProvinceTable is the province table of docs/domain.md transcribed as ranges.
var wantProvinceTable = []struct {
	region    Code
	plain     []span
	metro     []int
	abolished []span
}{
	{region: "01", plain: []span{{1, 6}, {96, 96}, {103, 103}}, metro: []int{201}},
	{region: "02", plain: []span{{7, 7}}},
	{region: "03", plain: []span{{12, 20}, {97, 98}, {108, 108}}, metro: []int{215}},
	{region: "04", plain: []span{{21, 22}}},
	{region: "05", plain: []span{{23, 29}}, metro: []int{227}},
	{region: "06", plain: []span{{30, 32}, {93, 93}}},
	{region: "07", plain: []span{{8, 11}}, metro: []int{210}},
	{region: "08", plain: []span{{33, 40}, {99, 99}}, metro: []int{237}},
	{region: "09", plain: []span{{45, 53}, {100, 100}}, metro: []int{248}},
	{region: "10", plain: []span{{54, 55}}},
	{region: "11", plain: []span{{41, 44}, {109, 109}}},
	{region: "12", plain: []span{{56, 60}}, metro: []int{258}},
	{region: "13", plain: []span{{66, 69}}},
	{region: "14", plain: []span{{70, 70}, {94, 94}}},
	{region: "15", plain: []span{{61, 65}}, metro: []int{263}},
	{region: "16", plain: []span{{71, 75}, {110, 110}}, metro: []int{272}},
	{region: "17", plain: []span{{76, 77}}},
	{region: "18", plain: []span{{78, 80}, {101, 102}}, metro: []int{280}},
	{region: "19", plain: []span{{81, 89}}, metro: []int{282, 283, 287}},
	{region: "20", plain: []span{{90, 92}, {95, 95}, {111, 111}}, metro: []int{292}, abolished: []span{{104, 107}}},
}

type wantProvince struct {
	code      string
	region    Code
	metro     bool
	abolished bool
}

// wantProvinces expands wantProvinceTable into one entry per code.
func wantProvinces(tb testing.TB) map[string]wantProvince {
	tb.Helper()
	all := make(map[string]wantProvince)
	add := func(n int, p wantProvince) {
		p.code = fmt.Sprintf("%03d", n)
		if _, dup := all[p.code]; dup {
			tb.Fatalf("province %s listed twice in the test table", p.code)
		}
		all[p.code] = p
	}
	for _, row := range wantProvinceTable {
		for _, s := range row.plain {
			for n := s.lo; n <= s.hi; n++ {
				add(n, wantProvince{region: row.region})
			}
		}
		for _, s := range row.abolished {
			for n := s.lo; n <= s.hi; n++ {
				add(n, wantProvince{region: row.region, abolished: true})
			}
		}
		for _, n := range row.metro {
			add(n, wantProvince{region: row.region, metro: true})
		}
	}
	return all
}

func TestRegionCodes(t *testing.T) {
	for _, tt := range wantRegions {
		t.Run(string(tt.code), func(t *testing.T) {
			if got, err := ParseCode(string(tt.code)); err != nil || got != tt.code {
				t.Errorf("ParseCode(%q) = %q, %v, want %q, nil", tt.code, got, err, tt.code)
			}
			if got, err := CodeOf(tt.num); err != nil || got != tt.code {
				t.Errorf("CodeOf(%d) = %q, %v, want %q, nil", tt.num, got, err, tt.code)
			}
			if got := tt.code.Num(); got != tt.num {
				t.Errorf("Code(%q).Num() = %d, want %d", tt.code, got, tt.num)
			}
			if got := tt.code.Name(); got != tt.name {
				t.Errorf("Code(%q).Name() = %q, want %q", tt.code, got, tt.name)
			}
		})
	}
}

func TestAll(t *testing.T) {
	want := make([]Region, 0, len(wantRegions))
	for _, r := range wantRegions {
		want = append(want, Region{Code: r.code, Name: r.name})
	}
	got := All()
	if !slices.Equal(got, want) {
		t.Fatalf("All() = %v, want %v", got, want)
	}
	got[0].Name = "changed"
	if again := All(); again[0].Name != "Piemonte" {
		t.Errorf("All()[0].Name after modifying an earlier result = %q, want %q", again[0].Name, "Piemonte")
	}
}

func TestParseCodeRejects(t *testing.T) {
	for _, in := range []string{
		"", "0", "3", "00", "21", "99", "003", " 3", "3 ", " 03", "03 ", "+3", "-1",
		"a1", "0a", "\x003", "０３", "٠٣",
	} {
		t.Run(in, func(t *testing.T) {
			got, err := ParseCode(in)
			if !errors.Is(err, ErrUnknownRegion) {
				t.Errorf("ParseCode(%q) = %q, %v, want error wrapping ErrUnknownRegion", in, got, err)
			}
		})
	}
}

func TestCodeOfRejects(t *testing.T) {
	for _, n := range []int{math.MinInt, -1, 0, 21, 99, 100, math.MaxInt} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			got, err := CodeOf(n)
			if !errors.Is(err, ErrUnknownRegion) {
				t.Errorf("CodeOf(%d) = %q, %v, want error wrapping ErrUnknownRegion", n, got, err)
			}
		})
	}
}

func TestUnknownCode(t *testing.T) {
	for _, c := range []Code{"", "00", "21", "3", "003", "ab"} {
		t.Run(string(c), func(t *testing.T) {
			if got := c.Num(); got != 0 {
				t.Errorf("Code(%q).Num() = %d, want 0", c, got)
			}
			if got := c.Name(); got != "" {
				t.Errorf("Code(%q).Name() = %q, want \"\"", c, got)
			}
		})
	}
}

func TestProvinceRegion(t *testing.T) {
	want := wantProvinces(t)
	if plain, metro := countProvinces(want); plain != 111 || metro != 14 {
		t.Fatalf("test table has %d plain and %d metropolitan codes, want 111 and 14", plain, metro)
	}
	// Every three-digit string: the ones in the table map to their region,
	// all others are rejected.
	for n := 0; n <= 999; n++ {
		p := fmt.Sprintf("%03d", n)
		w, known := want[p]
		got, err := ProvinceRegion(p)
		switch {
		case known && (err != nil || got != w.region):
			t.Errorf("ProvinceRegion(%q) = %q, %v, want %q, nil", p, got, err, w.region)
		case !known && !errors.Is(err, ErrUnknownProvince):
			t.Errorf("ProvinceRegion(%q) = %q, %v, want error wrapping ErrUnknownProvince", p, got, err)
		}
	}
}

func countProvinces(want map[string]wantProvince) (plain, metro int) {
	for _, w := range want {
		if w.metro {
			metro++
		} else {
			plain++
		}
	}
	return plain, metro
}

func TestProvinceRegionExamples(t *testing.T) {
	tests := []struct {
		in   string
		want Code
	}{
		{"015", "03"}, {"215", "03"}, {"037", "08"}, {"237", "08"}, {"058", "12"}, {"258", "12"},
		{"082", "19"}, {"282", "19"}, {"283", "19"}, {"287", "19"},
		{"104", "20"}, {"105", "20"}, {"106", "20"}, {"107", "20"}, {"111", "20"}, {"292", "20"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got, err := ProvinceRegion(tt.in); err != nil || got != tt.want {
				t.Errorf("ProvinceRegion(%q) = %q, %v, want %q, nil", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestProvinceRejects(t *testing.T) {
	for _, in := range []string{
		"", "000", "112", "200", "216", "300", "999", "15", "0015", "abc", " 15", "15 ",
		"+15", "-15", "1a5", "015\n", "０１５",
	} {
		t.Run(in, func(t *testing.T) {
			if got, err := ProvinceRegion(in); !errors.Is(err, ErrUnknownProvince) {
				t.Errorf("ProvinceRegion(%q) = %q, %v, want error wrapping ErrUnknownProvince", in, got, err)
			}
			if got, err := CanonicalProvince(in); !errors.Is(err, ErrUnknownProvince) {
				t.Errorf("CanonicalProvince(%q) = %q, %v, want error wrapping ErrUnknownProvince", in, got, err)
			}
		})
	}
}

func TestProvinceErrorQuotesInput(t *testing.T) {
	_, err := ProvinceRegion("216")
	if want := `unknown province: "216"`; err == nil || err.Error() != want {
		t.Errorf("ProvinceRegion(%q) error = %v, want %s", "216", err, want)
	}
}

func TestCanonicalProvince(t *testing.T) {
	for p, w := range wantProvinces(t) {
		t.Run(p, func(t *testing.T) {
			want := p
			if w.metro {
				n, _ := strconv.Atoi(p)
				want = fmt.Sprintf("%03d", n-200)
			}
			got, err := CanonicalProvince(p)
			if err != nil || got != want {
				t.Fatalf("CanonicalProvince(%q) = %q, %v, want %q, nil", p, got, err, want)
			}
			if r, err := ProvinceRegion(got); err != nil || r != w.region {
				t.Errorf("ProvinceRegion(CanonicalProvince(%q)) = %q, %v, want %q, nil", p, r, err, w.region)
			}
		})
	}
}

func TestComuneRegion(t *testing.T) {
	tests := []struct {
		in   string
		want Code
	}{
		{"037006", "08"}, // Bologna
		{"015146", "03"}, // Milano
		{"058091", "12"}, // Roma
		{"063049", "15"}, // Napoli
		{"082053", "19"}, // Palermo
		{"001272", "01"}, // Torino
		{"007003", "02"}, // Aosta
		{"092009", "20"}, // Cagliari
		{"111001", "20"}, // Arbus
		{"081025", "19"}, // Misiliscemi, created in 2021
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got, err := ComuneRegion(tt.in); err != nil || got != tt.want {
				t.Errorf("ComuneRegion(%q) = %q, %v, want %q, nil", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestComuneRejects(t *testing.T) {
	for _, in := range []string{
		"", "215146", "282053", "015000", "15146", "0151460", "000001", "112001", "999999",
		"abcdef", "01514a", "O15146", " 15146", "015146 ", "+15146", "-15146", "015-146",
		"015999", "015147", "104001", "001000", "111999", // well-formed, but no comune of the ISTAT list
	} {
		t.Run(in, func(t *testing.T) {
			if got, err := ComuneRegion(in); !errors.Is(err, ErrUnknownComune) {
				t.Errorf("ComuneRegion(%q) = %q, %v, want error wrapping ErrUnknownComune", in, got, err)
			}
		})
	}
}

func TestProvinces(t *testing.T) {
	byRegion := make(map[Code][]string)
	for p, w := range wantProvinces(t) {
		if !w.metro && !w.abolished {
			byRegion[w.region] = append(byRegion[w.region], p)
		}
	}
	total := 0
	for _, r := range wantRegions {
		t.Run(string(r.code), func(t *testing.T) {
			want := byRegion[r.code]
			slices.Sort(want)
			got := Provinces(r.code)
			if !slices.Equal(got, want) {
				t.Errorf("Provinces(%q) = %v, want %v", r.code, got, want)
			}
			total += len(got)
		})
	}
	if total != 107 {
		t.Errorf("Provinces over all regions: %d codes, want 107", total)
	}
	if got := Provinces("21"); got != nil {
		t.Errorf("Provinces(%q) = %v, want nil", "21", got)
	}
	got := Provinces("03")
	got[0] = "999"
	if again := Provinces("03"); again[0] != "012" {
		t.Errorf("Provinces(%q)[0] after modifying an earlier result = %q, want %q", "03", again[0], "012")
	}
}

func TestLevelString(t *testing.T) {
	tests := []struct {
		in   Level
		want string
	}{
		{National, "national"},
		{Regional, "regional"},
		{Provincial, "provincial"},
		{Municipal, "municipal"},
		{Market, "market"},
		{Level(-1), "Level(-1)"},
		{Level(5), "Level(5)"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.in.String(); got != tt.want {
				t.Errorf("Level(%d).String() = %q, want %q", int(tt.in), got, tt.want)
			}
		})
	}
}

// lombardyMarket is market 1 of Lombardia: 3<<48 | 1.
const lombardyMarket = "844424930131969"

func TestParseTerritory(t *testing.T) {
	tests := []struct {
		in   string
		want Territory
	}{
		{"national", Territory{Level: National}},
		{"region:03", Territory{Level: Regional, Code: "03"}},
		{"region:20", Territory{Level: Regional, Code: "20"}},
		{"province:015", Territory{Level: Provincial, Code: "015"}},
		{"province:215", Territory{Level: Provincial, Code: "215"}},
		{"province:287", Territory{Level: Provincial, Code: "287"}},
		{"province:104", Territory{Level: Provincial, Code: "104"}},
		{"comune:015146", Territory{Level: Municipal, Code: "015146"}},
		{"comune:037006", Territory{Level: Municipal, Code: "037006"}},
		{"market:" + lombardyMarket, Territory{Level: Market, Code: lombardyMarket}},
		{"market:5910974510923775", Territory{Level: Market, Code: "5910974510923775"}}, // region 20, MaxSeq
	}
	for _, r := range wantRegions {
		tests = append(tests, struct {
			in   string
			want Territory
		}{"region:" + string(r.code), Territory{Level: Regional, Code: string(r.code)}})
	}
	for p := range wantProvinces(t) {
		tests = append(tests, struct {
			in   string
			want Territory
		}{"province:" + p, Territory{Level: Provincial, Code: p}})
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTerritory(tt.in)
			if err != nil || got != tt.want {
				t.Fatalf("ParseTerritory(%q) = %+v, %v, want %+v, nil", tt.in, got, err, tt.want)
			}
			if s := got.String(); s != tt.in {
				t.Errorf("%+v.String() = %q, want %q", got, s, tt.in)
			}
		})
	}
}

func TestParseTerritoryRejects(t *testing.T) {
	tests := []struct {
		in   string
		also error // the specific sentinel, or nil when only ErrBadTerritory applies
	}{
		// Unknown or badly written prefixes.
		{"", nil},
		{"nation", nil},
		{"National", nil},
		{"NATIONAL", nil},
		{"national:", nil},
		{"national:03", nil},
		{" national", nil},
		{"national ", nil},
		{"Region:03", nil},
		{"REGION:03", nil},
		{"regione:03", nil},
		{"regional:03", nil},
		{"provincia:015", nil},
		{"municipal:015146", nil},
		{"city:015146", nil},
		{" region:03", nil},
		{"region :03", nil},
		{"region03", nil},
		{"region", nil},
		{"03", nil},
		{":03", nil},
		// Empty codes.
		{"region:", nil},
		{"province:", nil},
		{"comune:", nil},
		{"market:", nil},
		// Unknown regions.
		{"region:3", ErrUnknownRegion},
		{"region:003", ErrUnknownRegion},
		{"region:00", ErrUnknownRegion},
		{"region:21", ErrUnknownRegion},
		{"region: 03", ErrUnknownRegion},
		{"region:03 ", ErrUnknownRegion},
		{"region:03:04", ErrUnknownRegion},
		{"region:Lombardia", ErrUnknownRegion},
		// Unknown provinces.
		{"province:15", ErrUnknownProvince},
		{"province:0015", ErrUnknownProvince},
		{"province:000", ErrUnknownProvince},
		{"province:112", ErrUnknownProvince},
		{"province:200", ErrUnknownProvince},
		{"province:216", ErrUnknownProvince},
		{"province:MI", ErrUnknownProvince},
		{"province:015\n", ErrUnknownProvince},
		// Unknown comuni.
		{"comune:215146", ErrUnknownComune},
		{"comune:015000", ErrUnknownComune},
		{"comune:015999", ErrUnknownComune},
		{"comune:15146", ErrUnknownComune},
		{"comune:0151460", ErrUnknownComune},
		{"comune:112001", ErrUnknownComune},
		{"comune:abcdef", ErrUnknownComune},
		{"comune: 015146", ErrUnknownComune},
		// Bad market ids.
		{"market:0", ErrBadID},
		{"market:-1", ErrBadID},
		{"market:-" + lombardyMarket, ErrBadID},
		{"market:+" + lombardyMarket, ErrBadID},
		{"market:0" + lombardyMarket, ErrBadID},
		{"market: " + lombardyMarket, ErrBadID},
		{"market:" + lombardyMarket + " ", ErrBadID},
		{"market:abc", ErrBadID},
		{"market:1.5", ErrBadID},
		{"market:0x10", ErrBadID},
		{"market:5", ErrBadID},                   // region bits 0
		{"market:844424930131968", ErrBadID},     // region 03, sequence 0
		{"market:5910974510923777", ErrBadID},    // region bits 21
		{"market:9223372036854775807", ErrBadID}, // region bits 32767
		{"market:9223372036854775808", ErrBadID}, // overflows int64
		{"market:99999999999999999999999", ErrBadID},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTerritory(tt.in)
			if !errors.Is(err, ErrBadTerritory) {
				t.Fatalf("ParseTerritory(%q) = %+v, %v, want error wrapping ErrBadTerritory", tt.in, got, err)
			}
			if tt.also != nil && !errors.Is(err, tt.also) {
				t.Errorf("ParseTerritory(%q) error = %v, want it to wrap %v", tt.in, err, tt.also)
			}
			if got != (Territory{}) {
				t.Errorf("ParseTerritory(%q) = %+v with error, want zero Territory", tt.in, got)
			}
		})
	}
}

// mustTerritory parses s or fails the test.
func mustTerritory(tb testing.TB, s string) Territory {
	tb.Helper()
	t, err := ParseTerritory(s)
	if err != nil {
		tb.Fatalf("ParseTerritory(%q) = %v", s, err)
	}
	return t
}

func TestTerritoryRegion(t *testing.T) {
	tests := []struct {
		in     string
		want   Code
		wantOK bool
	}{
		{"national", "", false},
		{"region:03", "03", true},
		{"province:015", "03", true},
		{"province:215", "03", true},
		{"province:287", "19", true},
		{"province:105", "20", true},
		{"comune:037006", "08", true},
		{"market:" + lombardyMarket, "03", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := mustTerritory(t, tt.in).Region()
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("ParseTerritory(%q).Region() = %q, %v, want %q, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestMalformedTerritory(t *testing.T) {
	for _, bad := range []Territory{
		{Level: National, Code: "03"},
		{Level: Regional, Code: "21"},
		{Level: Provincial, Code: "216"},
		{Level: Municipal, Code: "215146"},
		{Level: Market, Code: "0"},
		{Level: Level(9), Code: "03"},
		{Level: Regional},
	} {
		t.Run(bad.String(), func(t *testing.T) {
			if r, ok := bad.Region(); ok {
				t.Errorf("%+v.Region() = %q, true, want false", bad, r)
			}
			if bad.Covers("03") {
				t.Errorf("%+v.Covers(%q) = true, want false", bad, "03")
			}
			if bad.Includes(bad) {
				t.Errorf("%+v.Includes(itself) = true, want false", bad)
			}
			national := Territory{Level: National}
			if national.Includes(bad) {
				t.Errorf("national.Includes(%+v) = true, want false", bad)
			}
			_, err := bad.Scope("03", "")
			if !errors.Is(err, ErrOutsideTerritory) || !errors.Is(err, ErrBadTerritory) {
				t.Errorf("%+v.Scope(%q) error = %v, want it to wrap ErrOutsideTerritory and ErrBadTerritory", bad, "03", err)
			}
		})
	}
}

func TestCovers(t *testing.T) {
	national := Territory{Level: National}
	for _, r := range wantRegions {
		if !national.Covers(r.code) {
			t.Errorf("national.Covers(%q) = false, want true", r.code)
		}
	}
	for _, r := range []Code{"", "00", "21", "3"} {
		if national.Covers(r) {
			t.Errorf("national.Covers(%q) = true, want false", r)
		}
	}
	tests := []struct {
		in  string
		own Code
	}{
		{"region:03", "03"},
		{"region:20", "20"},
		{"province:015", "03"},
		{"province:215", "03"},
		{"province:283", "19"},
		{"comune:058091", "12"},
		{"market:" + lombardyMarket, "03"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			ter := mustTerritory(t, tt.in)
			for _, r := range wantRegions {
				if got, want := ter.Covers(r.code), r.code == tt.own; got != want {
					t.Errorf("ParseTerritory(%q).Covers(%q) = %v, want %v", tt.in, r.code, got, want)
				}
			}
		})
	}
}

func TestIncludes(t *testing.T) {
	milanMarket := lombardyMarket
	romeMarket := strconv.FormatInt(12<<IDShift|7, 10)
	tests := []struct {
		t, u string
		want bool
	}{
		// National includes everything.
		{"national", "national", true},
		{"national", "region:20", true},
		{"national", "province:215", true},
		{"national", "comune:082053", true},
		{"national", "market:" + romeMarket, true},

		// A region.
		{"region:03", "region:03", true},
		{"region:03", "region:04", false},
		{"region:03", "national", false},
		{"region:03", "province:015", true},
		{"region:03", "province:215", true},
		{"region:03", "province:108", true},
		{"region:03", "province:037", false},
		{"region:19", "province:282", true},
		{"region:19", "province:283", true},
		{"region:19", "province:287", true},
		{"region:20", "province:104", true},
		{"region:20", "province:292", true},
		{"region:03", "comune:015146", true},
		{"region:03", "comune:037006", false},
		{"region:03", "market:" + milanMarket, true},
		{"region:03", "market:" + romeMarket, false},
		{"region:12", "market:" + romeMarket, true},

		// A province and its metropolitan-city twin.
		{"province:015", "province:015", true},
		{"province:015", "province:215", true},
		{"province:215", "province:015", true},
		{"province:215", "province:215", true},
		{"province:015", "province:016", false},
		{"province:082", "province:282", true},
		{"province:282", "province:283", false},
		{"province:215", "comune:015146", true},
		{"province:015", "comune:015146", true},
		{"province:215", "comune:016001", false},
		{"province:015", "region:03", false},
		{"province:015", "national", false},
		{"province:015", "market:" + milanMarket, false},
		{"province:215", "market:" + milanMarket, false},

		// A comune.
		{"comune:015146", "comune:015146", true},
		{"comune:015146", "comune:015139", false},
		{"comune:015146", "province:015", false},
		{"comune:015146", "region:03", false},
		{"comune:015146", "market:" + milanMarket, false},

		// A market.
		{"market:" + milanMarket, "market:" + milanMarket, true},
		{"market:" + milanMarket, "market:" + romeMarket, false},
		{"market:" + milanMarket, "comune:015146", false},
		{"market:" + milanMarket, "region:03", false},
		{"market:" + milanMarket, "national", false},
	}
	for _, tt := range tests {
		t.Run(tt.t+"⊇"+tt.u, func(t *testing.T) {
			ter, u := mustTerritory(t, tt.t), mustTerritory(t, tt.u)
			if got := ter.Includes(u); got != tt.want {
				t.Errorf("ParseTerritory(%q).Includes(%q) = %v, want %v", tt.t, tt.u, got, tt.want)
			}
		})
	}
}

func TestScope(t *testing.T) {
	tests := []struct {
		t    string
		r    Code
		user string
		want Scope
	}{
		{"national", "03", "alice", Scope{Region: "03", User: "alice"}},
		{"national", "20", "", Scope{Region: "20"}},
		{"region:03", "03", "bob", Scope{Region: "03", User: "bob"}},
		{"province:015", "03", "u", Scope{Region: "03", Province: "015", User: "u"}},
		{"province:215", "03", "u", Scope{Region: "03", Province: "015", User: "u"}},
		{"province:287", "19", "u", Scope{Region: "19", Province: "087", User: "u"}},
		{"comune:015146", "03", "u", Scope{Region: "03", Province: "015", Comune: "015146", User: "u"}},
		{"market:" + lombardyMarket, "03", "v", Scope{Region: "03", Market: 3<<IDShift | 1, User: "v"}},
	}
	for _, tt := range tests {
		t.Run(tt.t+"@"+string(tt.r), func(t *testing.T) {
			got, err := mustTerritory(t, tt.t).Scope(tt.r, tt.user)
			if err != nil || got != tt.want {
				t.Errorf("ParseTerritory(%q).Scope(%q, %q) = %+v, %v, want %+v, nil", tt.t, tt.r, tt.user, got, err, tt.want)
			}
		})
	}
}

func TestScopeOutside(t *testing.T) {
	tests := []struct {
		t    string
		r    Code
		also error
	}{
		{"national", "21", ErrUnknownRegion},
		{"national", "", ErrUnknownRegion},
		{"region:03", "04", nil},
		{"region:03", "3", ErrUnknownRegion},
		{"province:215", "08", nil},
		{"province:015", "12", nil},
		{"comune:015146", "12", nil},
		{"market:" + lombardyMarket, "12", nil},
	}
	for _, tt := range tests {
		t.Run(tt.t+"@"+string(tt.r), func(t *testing.T) {
			got, err := mustTerritory(t, tt.t).Scope(tt.r, "u")
			if !errors.Is(err, ErrOutsideTerritory) {
				t.Fatalf("ParseTerritory(%q).Scope(%q) = %+v, %v, want error wrapping ErrOutsideTerritory", tt.t, tt.r, got, err)
			}
			if tt.also != nil && !errors.Is(err, tt.also) {
				t.Errorf("ParseTerritory(%q).Scope(%q) error = %v, want it to wrap %v", tt.t, tt.r, err, tt.also)
			}
		})
	}
}

func TestIDs(t *testing.T) {
	for _, r := range wantRegions {
		for _, seq := range []int64{1, 2, 12345, 1<<48 - 1} {
			t.Run(fmt.Sprintf("%s/%d", r.code, seq), func(t *testing.T) {
				id := MakeID(r.code, seq)
				if want := int64(r.num)<<48 | seq; id != want {
					t.Fatalf("MakeID(%q, %d) = %d, want %d", r.code, seq, id, want)
				}
				if id <= 0 || id >= 1<<53 {
					t.Errorf("MakeID(%q, %d) = %d, want in 1..2^53-1", r.code, seq, id)
				}
				if got, err := IDRegion(id); err != nil || got != r.code {
					t.Errorf("IDRegion(%d) = %q, %v, want %q, nil", id, got, err, r.code)
				}
				s := strconv.FormatInt(id, 10)
				gotID, got, err := ParseID(s)
				if err != nil || gotID != id || got != r.code {
					t.Errorf("ParseID(%q) = %d, %q, %v, want %d, %q, nil", s, gotID, got, err, id, r.code)
				}
			})
		}
	}
	if MaxSeq != 1<<48-1 {
		t.Errorf("MaxSeq = %d, want %d", int64(MaxSeq), int64(1<<48-1))
	}
}

func TestMakeIDOutOfRange(t *testing.T) {
	tests := []struct {
		r   Code
		seq int64
	}{
		{"03", 0},
		{"03", -1},
		{"03", 1 << 48},
		{"03", math.MaxInt64},
		{"21", 1},
		{"", 1},
		{"3", 1},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q/%d", tt.r, tt.seq), func(t *testing.T) {
			if got := MakeID(tt.r, tt.seq); got != 0 {
				t.Errorf("MakeID(%q, %d) = %d, want 0", tt.r, tt.seq, got)
			}
		})
	}
}

func TestIDRegionRejects(t *testing.T) {
	for _, id := range []int64{
		math.MinInt64, -1, 0, 5, 1<<48 - 1, // region bits 0
		1 << 48, 3 << 48, 20 << 48, // sequence 0
		21<<48 | 1, 255<<48 | 1, math.MaxInt64, // unknown region bits
	} {
		t.Run(strconv.FormatInt(id, 10), func(t *testing.T) {
			if got, err := IDRegion(id); !errors.Is(err, ErrBadID) {
				t.Errorf("IDRegion(%d) = %q, %v, want error wrapping ErrBadID", id, got, err)
			}
		})
	}
}

func TestParseIDRejects(t *testing.T) {
	for _, in := range []string{
		"", "0", "-1", "abc", "+" + lombardyMarket, "-" + lombardyMarket, "0" + lombardyMarket,
		" " + lombardyMarket, lombardyMarket + " ", lombardyMarket + "\n", "844 424930131969",
		"1.5", "1e5", "0x10", "1_000", "5", "844424930131968",
		"9223372036854775807", "9223372036854775808", "99999999999999999999999",
	} {
		t.Run(in, func(t *testing.T) {
			id, r, err := ParseID(in)
			if !errors.Is(err, ErrBadID) {
				t.Errorf("ParseID(%q) = %d, %q, %v, want error wrapping ErrBadID", in, id, r, err)
			}
		})
	}
}

func FuzzParseTerritory(f *testing.F) {
	for _, s := range []string{
		"national", "region:03", "province:015", "province:215", "comune:015146",
		"market:" + lombardyMarket, "region:21", "comune:215146", "market:+1", "", "province:",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ter, err := ParseTerritory(s)
		if err != nil {
			if !errors.Is(err, ErrBadTerritory) {
				t.Fatalf("ParseTerritory(%q) error = %v, want it to wrap ErrBadTerritory", s, err)
			}
			return
		}
		out := ter.String()
		if out != s {
			t.Errorf("ParseTerritory(%q).String() = %q, want %q", s, out, s)
		}
		again, err := ParseTerritory(out)
		if err != nil || again != ter {
			t.Errorf("ParseTerritory(%q) = %+v, %v, want %+v, nil", out, again, err, ter)
		}
		if _, ok := ter.Region(); ok == (ter.Level == National) {
			t.Errorf("ParseTerritory(%q).Region() ok = %v for level %v", s, ok, ter.Level)
		}
		if !ter.Includes(ter) {
			t.Errorf("ParseTerritory(%q).Includes(itself) = false, want true", s)
		}
	})
}
