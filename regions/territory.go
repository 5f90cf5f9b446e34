package regions

import (
	"fmt"
	"strconv"
	"strings"
)

// Level is how wide a territory is.
type Level int

// The territory levels, from the widest to the narrowest.
const (
	National Level = iota
	Regional
	Provincial
	Municipal
	Market
)

// levelNames are the names of the levels, which are also the prefixes of
// their territory strings (except national, which has no code).
var levelNames = [...]string{
	National:   "national",
	Regional:   "regional",
	Provincial: "provincial",
	Municipal:  "municipal",
	Market:     "market",
}

// territoryPrefixes are the prefixes of ParseTerritory, by level.
var territoryPrefixes = [...]string{
	Regional:   "region",
	Provincial: "province",
	Municipal:  "comune",
	Market:     "market",
}

// String returns the lower-case name of l ("national", "regional",
// "provincial", "municipal", "market"), or "Level(n)" for any other value.
func (l Level) String() string {
	if l < 0 || int(l) >= len(levelNames) {
		return "Level(" + strconv.Itoa(int(l)) + ")"
	}
	return levelNames[l]
}

// Territory is what a principal may see. Code is "" for National, the region
// code for Regional, the province code as given (three digits, possibly a
// metropolitan-city code) for Provincial, the six-digit comune code for
// Municipal and the decimal market id for Market.
type Territory struct {
	Level Level
	Code  string
}

// ParseTerritory parses a territory string: "national", "region:03",
// "province:015", "province:215", "comune:015146" or
// "market:844424930131969". It accepts only that exact, canonical form and
// never guesses: an unknown prefix, upper case, spaces, an empty code or a
// code that names nothing gives an error wrapping ErrBadTerritory. When the
// code is at fault the error also wraps ErrUnknownRegion, ErrUnknownProvince,
// ErrUnknownComune or ErrBadID. A market id must be a positive decimal int64
// whose region bits name a known region.
func ParseTerritory(s string) (Territory, error) {
	if s == levelNames[National] {
		return Territory{Level: National}, nil
	}
	prefix, code, ok := strings.Cut(s, ":")
	if !ok || code == "" {
		return Territory{}, fmt.Errorf("%w: %q", ErrBadTerritory, s)
	}
	var (
		t   Territory
		err error
	)
	switch prefix {
	case territoryPrefixes[Regional]:
		t.Level = Regional
		_, err = ParseCode(code)
	case territoryPrefixes[Provincial]:
		t.Level = Provincial
		_, err = ProvinceRegion(code)
	case territoryPrefixes[Municipal]:
		t.Level = Municipal
		_, err = ComuneRegion(code)
	case territoryPrefixes[Market]:
		t.Level = Market
		_, _, err = ParseID(code)
	default:
		return Territory{}, fmt.Errorf("%w: %q", ErrBadTerritory, s)
	}
	if err != nil {
		return Territory{}, fmt.Errorf("%w %q: %w", ErrBadTerritory, s, err)
	}
	t.Code = code
	return t, nil
}

// String returns t in the form ParseTerritory reads: "national" or
// prefix:code, such as "province:215".
func (t Territory) String() string {
	if t.Level == National {
		if t.Code == "" {
			return levelNames[National]
		}
		return levelNames[National] + ":" + t.Code
	}
	if t.Level < 0 || int(t.Level) >= len(territoryPrefixes) {
		return t.Level.String() + ":" + t.Code
	}
	return territoryPrefixes[t.Level] + ":" + t.Code
}

// Region returns the single region t lies in. It reports false for National,
// which spans every region, and for a territory whose code names nothing.
func (t Territory) Region() (Code, bool) {
	var (
		r   Code
		err error
	)
	switch t.Level {
	case Regional:
		r, err = ParseCode(t.Code)
	case Provincial:
		r, err = ProvinceRegion(t.Code)
	case Municipal:
		r, err = ComuneRegion(t.Code)
	case Market:
		_, r, err = ParseID(t.Code)
	default:
		return "", false
	}
	return r, err == nil
}

// Covers reports whether t may see region r: a national territory covers
// every known region, any other territory only the region it lies in.
func (t Territory) Covers(r Code) bool {
	if t.Level == National {
		return t.Code == "" && r.Num() != 0
	}
	own, ok := t.Region()
	return ok && own == r
}

// Includes reports whether u lies inside t as far as codes alone can tell.
// National includes every valid territory; a region includes itself and the
// provinces (plain or metropolitan-city code), comuni and markets of that
// region; a province includes itself, its metropolitan-city or plain twin and
// its comuni; a comune and a market include only themselves. The code of a
// market does not say which comune or province it is in, so a province or a
// comune never includes a market: the database decides. Includes returns false
// when t or u is malformed.
func (t Territory) Includes(u Territory) bool {
	if !t.valid() || !u.valid() {
		return false
	}
	switch t.Level {
	case National:
		return true
	case Regional:
		if u.Level == National {
			return false
		}
		r, _ := u.Region()
		return string(r) == t.Code
	case Provincial:
		p, _ := CanonicalProvince(t.Code)
		switch u.Level {
		case Provincial:
			q, _ := CanonicalProvince(u.Code)
			return p == q
		case Municipal:
			return u.Code[:3] == p
		}
		return false
	case Municipal, Market:
		return u.Level == t.Level && u.Code == t.Code
	}
	return false
}

// valid reports whether t is a territory ParseTerritory could have returned.
func (t Territory) valid() bool {
	if t.Level == National {
		return t.Code == ""
	}
	_, ok := t.Region()
	return ok
}

// Scope is what one query on one region may see; the database's row-level
// security reads it.
type Scope struct {
	Region   Code   // always set
	Province string // canonical 3-digit province ("015" even for territory province:215), or ""
	Comune   string // 6 digits or ""
	Market   int64  // 0 = any market
	User     string // the principal's subject, may be ""
}

// Scope returns the scope for querying region r on behalf of territory t and
// user. A national territory gives Scope{Region: r, User: user}; narrower
// territories also fill the fields they pin down: a province its canonical
// province code, a comune its province (the first three digits) and comune, a
// market its id. When t does not cover r, Scope returns an error wrapping
// ErrOutsideTerritory; the error also wraps ErrUnknownRegion when r names no
// region and ErrBadTerritory when t is malformed.
func (t Territory) Scope(r Code, user string) (Scope, error) {
	switch {
	case !t.valid():
		return Scope{}, fmt.Errorf("%w: %w: %q", ErrOutsideTerritory, ErrBadTerritory, t.String())
	case r.Num() == 0:
		return Scope{}, fmt.Errorf("%w: %w: %q", ErrOutsideTerritory, ErrUnknownRegion, string(r))
	case !t.Covers(r):
		return Scope{}, fmt.Errorf("%w: %s does not cover region %s", ErrOutsideTerritory, t, r)
	}
	s := Scope{Region: r, User: user}
	switch t.Level {
	case Provincial:
		s.Province, _ = CanonicalProvince(t.Code)
	case Municipal:
		s.Province, s.Comune = t.Code[:3], t.Code
	case Market:
		s.Market, _, _ = ParseID(t.Code)
	}
	return s, nil
}
