// Package regions holds the Italian territory as ISTAT codes: the 20 regions,
// the province and metropolitan-city codes, comune codes, the territories a
// principal may see and the ids that carry their region.
//
// There is no arithmetic from a province to its region, so the package keeps a
// lookup table. It never guesses: an unknown code is an error, never a default.
// The package does no I/O and has no mutable state.
package regions

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// Errors returned by the package. They are wrapped with the offending input,
// so compare them with errors.Is.
var (
	// ErrUnknownRegion means a region code is malformed or names no region.
	ErrUnknownRegion = errors.New("unknown region")
	// ErrUnknownProvince means a province or metropolitan-city code is
	// malformed or unknown.
	ErrUnknownProvince = errors.New("unknown province")
	// ErrUnknownComune means a comune code is malformed or lies in no known province.
	ErrUnknownComune = errors.New("unknown comune")
	// ErrBadTerritory means a territory string or value is malformed.
	ErrBadTerritory = errors.New("bad territory")
	// ErrBadID means an id is malformed or does not carry a known region.
	ErrBadID = errors.New("bad id")
	// ErrOutsideTerritory means a territory does not cover the region asked for.
	ErrOutsideTerritory = errors.New("outside territory")
)

// Code is a two-digit ISTAT region code, "01".."20".
type Code string

// Num returns the region number of c ("03" -> 3), or 0 when c is not a known
// region code.
func (c Code) Num() int {
	return regionNum(string(c))
}

// Name returns the official name of region c ("03" -> "Lombardia"), or ""
// when c is not a known region code.
func (c Code) Name() string {
	return regionTable[c.Num()].name
}

// CodeOf returns the code of region number n (3 -> "03"). It returns an error
// wrapping ErrUnknownRegion when n is outside 1..20.
func CodeOf(n int) (Code, error) {
	if n < 1 || n >= len(regionTable) {
		return "", fmt.Errorf("%w: %d", ErrUnknownRegion, n)
	}
	return regionCode(n), nil
}

// ParseCode returns s as a region code. s must be exactly two ASCII digits
// naming one of the 20 regions ("01".."20"); otherwise ParseCode returns an
// error wrapping ErrUnknownRegion.
func ParseCode(s string) (Code, error) {
	if regionNum(s) == 0 {
		return "", fmt.Errorf("%w: %q", ErrUnknownRegion, s)
	}
	return Code(s), nil
}

// Region is one of the 20 Italian regions.
type Region struct {
	Code Code
	Name string
}

// All returns the 20 regions ordered by code. The slice is new on every call,
// so the caller may modify it.
func All() []Region {
	all := make([]Region, 0, len(regionTable)-1)
	for n := 1; n < len(regionTable); n++ {
		all = append(all, Region{Code: regionCode(n), Name: regionTable[n].name})
	}
	return all
}

// ProvinceRegion returns the region of province p. p must be exactly three
// ASCII digits and either a province code ("015"), a metropolitan-city code
// (old province code + 200, "215") or one of the abolished Sardinian codes
// 104..107. Any other p gives an error wrapping ErrUnknownProvince.
func ProvinceRegion(p string) (Code, error) {
	if n, ok := provinceRegion(p); ok {
		return regionCode(n), nil
	}
	return "", fmt.Errorf("%w: %q", ErrUnknownProvince, p)
}

// CanonicalProvince returns the province code that the comuni of province p
// carry as their first three digits: a metropolitan-city code maps to its old
// province code ("215" -> "015"), a plain province code maps to itself. An
// unknown p gives an error wrapping ErrUnknownProvince.
func CanonicalProvince(p string) (string, error) {
	n, ok := provinceRegion(p)
	if !ok {
		return "", fmt.Errorf("%w: %q", ErrUnknownProvince, p)
	}
	if slices.Contains(regionTable[n].metro, p) {
		return cmTwin(p), nil
	}
	return p, nil
}

// ComuneRegion returns the region of comune c. c must be exactly six ASCII
// digits: the first three a known plain province code (never a
// metropolitan-city code, whose comuni keep the old prefix), the last three a
// serial number 001..999. Any other c gives an error wrapping ErrUnknownComune.
func ComuneRegion(c string) (Code, error) {
	if len(c) != 6 || !allDigits(c) || c[3:] == "000" {
		return "", fmt.Errorf("%w: %q", ErrUnknownComune, c)
	}
	n, ok := provinceRegion(c[:3])
	if !ok || slices.Contains(regionTable[n].metro, c[:3]) {
		return "", fmt.Errorf("%w: %q", ErrUnknownComune, c)
	}
	return regionCode(n), nil
}

// Provinces returns the plain province codes of region r in ascending order:
// no metropolitan-city codes, and for Sardegna not the abolished 104..107,
// which name no province in use. It returns nil for an unknown r. The slice is
// new on every call.
func Provinces(r Code) []string {
	ps := regionTable[r.Num()].provinces
	if len(ps) == 0 {
		return nil
	}
	return append([]string(nil), ps...)
}

// regionInfo is one row of the DOMAIN.md province table. Every list is sorted.
type regionInfo struct {
	name      string
	provinces []string // plain province codes in use
	metro     []string // metropolitan-city codes (old province code + 200)
	abolished []string // plain codes no longer in use, still recognised
}

// regionTable is indexed by region number; entry 0 is unused.
var regionTable = [...]regionInfo{
	1: {
		name:      "Piemonte",
		provinces: []string{"001", "002", "003", "004", "005", "006", "096", "103"},
		metro:     []string{"201"},
	},
	2: {
		name:      "Valle d'Aosta/Vallée d'Aoste",
		provinces: []string{"007"},
	},
	3: {
		name:      "Lombardia",
		provinces: []string{"012", "013", "014", "015", "016", "017", "018", "019", "020", "097", "098", "108"},
		metro:     []string{"215"},
	},
	4: {
		name:      "Trentino-Alto Adige/Südtirol",
		provinces: []string{"021", "022"},
	},
	5: {
		name:      "Veneto",
		provinces: []string{"023", "024", "025", "026", "027", "028", "029"},
		metro:     []string{"227"},
	},
	6: {
		name:      "Friuli-Venezia Giulia",
		provinces: []string{"030", "031", "032", "093"},
	},
	7: {
		name:      "Liguria",
		provinces: []string{"008", "009", "010", "011"},
		metro:     []string{"210"},
	},
	8: {
		name:      "Emilia-Romagna",
		provinces: []string{"033", "034", "035", "036", "037", "038", "039", "040", "099"},
		metro:     []string{"237"},
	},
	9: {
		name:      "Toscana",
		provinces: []string{"045", "046", "047", "048", "049", "050", "051", "052", "053", "100"},
		metro:     []string{"248"},
	},
	10: {
		name:      "Umbria",
		provinces: []string{"054", "055"},
	},
	11: {
		name:      "Marche",
		provinces: []string{"041", "042", "043", "044", "109"},
	},
	12: {
		name:      "Lazio",
		provinces: []string{"056", "057", "058", "059", "060"},
		metro:     []string{"258"},
	},
	13: {
		name:      "Abruzzo",
		provinces: []string{"066", "067", "068", "069"},
	},
	14: {
		name:      "Molise",
		provinces: []string{"070", "094"},
	},
	15: {
		name:      "Campania",
		provinces: []string{"061", "062", "063", "064", "065"},
		metro:     []string{"263"},
	},
	16: {
		name:      "Puglia",
		provinces: []string{"071", "072", "073", "074", "075", "110"},
		metro:     []string{"272"},
	},
	17: {
		name:      "Basilicata",
		provinces: []string{"076", "077"},
	},
	18: {
		name:      "Calabria",
		provinces: []string{"078", "079", "080", "101", "102"},
		metro:     []string{"280"},
	},
	19: {
		name:      "Sicilia",
		provinces: []string{"081", "082", "083", "084", "085", "086", "087", "088", "089"},
		metro:     []string{"282", "283", "287"},
	},
	20: {
		name:      "Sardegna",
		provinces: []string{"090", "091", "092", "095", "111"},
		metro:     []string{"292"},
		abolished: []string{"104", "105", "106", "107"},
	},
}

// provinceRegion returns the region number of province, metropolitan-city or
// abolished province code p.
func provinceRegion(p string) (int, bool) {
	if len(p) != 3 || !allDigits(p) {
		return 0, false
	}
	for n := 1; n < len(regionTable); n++ {
		ri := &regionTable[n]
		if slices.Contains(ri.provinces, p) || slices.Contains(ri.metro, p) || slices.Contains(ri.abolished, p) {
			return n, true
		}
	}
	return 0, false
}

// cmTwin returns the old province code of metropolitan-city code p ("215" -> "015").
func cmTwin(p string) string {
	return string(p[0]-2) + p[1:]
}

// regionNum returns the number of region code s, or 0 when s is not exactly
// two ASCII digits naming a region.
func regionNum(s string) int {
	if len(s) != 2 || !allDigits(s) {
		return 0
	}
	n := int(s[0]-'0')*10 + int(s[1]-'0')
	if n < 1 || n >= len(regionTable) {
		return 0
	}
	return n
}

// regionCode formats region number n, which must be in 1..20, as a Code.
func regionCode(n int) Code {
	if n < 10 {
		return Code("0" + strconv.Itoa(n))
	}
	return Code(strconv.Itoa(n))
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
