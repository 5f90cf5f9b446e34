package seed

import (
	"math/rand/v2"
	"slices"
	"strconv"

	"github.com/dmshub/dmsrouter/regions"
)

// marketShares are the regions' shares of the markets in DOMAIN.md, in
// tenths of a percent, indexed by region number. They sum to 1000.
var marketShares = [21]int{
	1: 72, 2: 2, 3: 170, 4: 18, 5: 82, 6: 20, 7: 26, 8: 75, 9: 62, 10: 15,
	11: 25, 12: 97, 13: 22, 14: 5, 15: 95, 16: 66, 17: 9, 18: 31, 19: 81, 20: 27,
}

// Scale of the synthetic data, per market unless said otherwise.
const (
	vendorsPerMarket = 5    // distinct vendors nationally
	multiRegionShare = 0.15 // of distinct vendors, operating in two or more regions
	minRegionVendors = 25   // single-region vendors of a region with markets, at least
)

// plan is everything decided nationally before the regions are generated
// independently: how many markets each region gets, the comuni of every
// province, and the vendors with the regions they operate in. It is a pure
// function of the options.
type plan struct {
	seed    uint64
	today   day
	days    int
	markets [21]int // by region number

	provinces map[string]*provincePlan // by plain province code
	vendors   []vendorIdent            // national registry, by vendor number
	// regionVendors lists, by region number, the vendor numbers that have a
	// row in that region, ascending.
	regionVendors [21][]int32
}

// provincePlan is a province with its synthetic comuni; comuni[0] is the capoluogo.
type provincePlan struct {
	code   string
	sigla  string
	metro  bool // the seat of a metropolitan city
	comuni []comune
}

type comune struct {
	code, name string
}

// vendorIdent is a vendor as the national registry knows it: the same in
// every region where it has a row.
type vendorIdent struct {
	partitaIVA    string
	codiceFiscale string
	denominazione string
	comune        string // registered office, in the home region
	stato         string
}

// derive mixes a seed with a path of labels into a new 64-bit seed
// (splitmix64 finalizer), so every region and market gets an independent
// stream that does not depend on the order work is done in.
func derive(seed uint64, path ...uint64) uint64 {
	x := seed
	for _, p := range path {
		x ^= p + 0x9e3779b97f4a7c15 + x<<6 + x>>2
		x ^= x >> 30
		x *= 0xbf58476d1ce4e5b9
		x ^= x >> 27
		x *= 0x94d049bb133111eb
		x ^= x >> 31
	}
	return x
}

// Stream labels for derive.
const (
	streamPlan uint64 = iota + 1
	streamProvince
	streamVendors
	streamMarkets
	streamMarket
	streamPresences
	streamSpunta
)

func newRand(seed uint64, path ...uint64) *rand.Rand {
	s := derive(seed, path...)
	return rand.New(rand.NewPCG(s, derive(s, 0xda3e39cb94b95bdb)))
}

// largestRemainder splits total in proportion to weights so that the parts
// sum to total exactly: every part gets the floor of its quota, and the
// units left go to the largest remainders (ties to the lower index).
func largestRemainder(total int, weights []int) []int {
	sum := 0
	for _, w := range weights {
		sum += w
	}
	parts := make([]int, len(weights))
	if sum == 0 {
		return parts
	}
	type rem struct{ i, r int }
	var rems []rem
	left := total
	for i, w := range weights {
		parts[i] = total * w / sum
		left -= parts[i]
		rems = append(rems, rem{i, total * w % sum})
	}
	slices.SortStableFunc(rems, func(a, b rem) int { return b.r - a.r })
	for k := 0; k < left; k++ {
		parts[rems[k].i]++
	}
	return parts
}

func newPlan(opts Options, today day) *plan {
	p := &plan{
		seed:      uint64(opts.Seed),
		today:     today,
		days:      opts.Days,
		provinces: map[string]*provincePlan{},
	}
	counts := largestRemainder(opts.Markets, marketShares[1:])
	copy(p.markets[1:], counts)
	for _, r := range regions.All() {
		for _, code := range regions.Provinces(r.Code) {
			p.provinces[code] = p.newProvince(code)
		}
	}
	p.planVendors(opts.Markets)
	return p
}

// newProvince makes the comuni of province code: the capoluogo and 40..109
// synthetic ones (Italy has 7,896 comuni in 107 provinces), with distinct
// serials and names.
func (p *plan) newProvince(code string) *provincePlan {
	rng := newRand(p.seed, streamProvince, uint64(mustAtoi(code)))
	info := provinceTable[code]
	metro, err := regions.CanonicalProvince(strconv.Itoa(200 + mustAtoi(code)))
	pp := &provincePlan{code: code, sigla: info.sigla, metro: err == nil && metro == code}
	n := 40 + rng.IntN(70)
	usedSerial := map[int]bool{info.serial: true}
	usedName := map[string]bool{info.capoluogo: true}
	pp.comuni = append(pp.comuni, comune{code + pad3d(info.serial), info.capoluogo})
	for len(pp.comuni) < n {
		s := 1 + rng.IntN(min(999, n*3))
		name := comuneName(rng)
		if usedSerial[s] || usedName[name] {
			continue
		}
		usedSerial[s], usedName[name] = true, true
		pp.comuni = append(pp.comuni, comune{code + pad3d(s), name})
	}
	return pp
}

// comuneName returns an Italian-sounding comune name such as
// "Castelfiorito", "San Giorgio Superiore" or "Bagnolo".
func comuneName(rng *rand.Rand) string {
	var name string
	switch k := rng.IntN(10); {
	case k < 4:
		name = pick(rng, comunePrefixes) + pick(rng, comuneRoots)
	case k < 6:
		name = pick(rng, comuneSaints)
	default:
		name = pick(rng, comuneStems) + pick(rng, comuneEndings)
	}
	if rng.IntN(4) == 0 {
		name += pick(rng, comuneQualifiers)
	}
	return name
}

// comuneByCode finds comune c of the plan.
func (p *plan) comuneByCode(c string) comune {
	for _, x := range p.provinces[c[:3]].comuni {
		if x.code == c {
			return x
		}
	}
	return comune{}
}

// provinceWeights returns region r's plain provinces and a weight for each:
// a metropolitan city's province holds three times as many markets.
func (p *plan) provinceWeights(r regions.Code) ([]*provincePlan, []int) {
	var ps []*provincePlan
	var ws []int
	for _, code := range regions.Provinces(r) {
		pp := p.provinces[code]
		ps = append(ps, pp)
		if pp.metro {
			ws = append(ws, 3)
		} else {
			ws = append(ws, 1)
		}
	}
	return ps, ws
}

// planVendors builds the national vendor registry: vendorsPerMarket per
// market, multiRegionShare of them operating in 2..4 regions (weighted by
// the regions' markets), the others in one region, and every region with
// markets holding at least minRegionVendors of its own.
func (p *plan) planVendors(markets int) {
	rng := newRand(p.seed, streamVendors)
	var active []int // region numbers with markets
	weights := make([]int, 21)
	for n := 1; n <= 20; n++ {
		if p.markets[n] > 0 {
			active = append(active, n)
			weights[n] = p.markets[n]
		}
	}
	total := vendorsPerMarket * markets
	multi := 0
	if len(active) >= 2 {
		multi = int(float64(total)*multiRegionShare + 0.5)
	}
	singles := largestRemainder(total-multi, weights)
	homes := make([]int, 0, total)
	for n := 1; n <= 20; n++ {
		if p.markets[n] > 0 {
			singles[n] = max(singles[n], minRegionVendors)
		}
		for range singles[n] {
			p.regionVendors[n] = append(p.regionVendors[n], int32(len(homes)))
			homes = append(homes, n)
		}
	}
	for range multi {
		k := 2
		switch x := rng.IntN(100); {
		case x < 8:
			k = 4
		case x < 30:
			k = 3
		}
		k = min(k, len(active))
		w := slices.Clone(weights)
		v := int32(len(homes))
		for j := 0; j < k; j++ {
			n := pickWeighted(rng, w)
			w[n] = 0
			if j == 0 {
				homes = append(homes, n)
			}
			p.regionVendors[n] = append(p.regionVendors[n], v)
		}
	}
	for n := range p.regionVendors {
		slices.Sort(p.regionVendors[n])
	}

	// Partite IVA are distinct because the registration number is an
	// affine bijection of the vendor number modulo 10^7.
	const mod = 10_000_000
	mul := int(derive(p.seed, streamVendors, 1) % mod)
	for mul%2 == 0 || mul%5 == 0 {
		mul = (mul + 1) % mod
	}
	add := int(derive(p.seed, streamVendors, 2) % mod)
	usedCF := map[string]bool{}
	p.vendors = make([]vendorIdent, len(homes))
	for v, home := range homes {
		code, _ := regions.CodeOf(home)
		ps, ws := p.provinceWeights(code)
		pp := ps[pickWeighted(rng, ws)]
		c := pp.comuni[rng.IntN(len(pp.comuni))]
		office := min(mustAtoi(pp.code), 100)
		vi := vendorIdent{
			partitaIVA: makePartitaIVA((v*mul+add)%mod, office),
			comune:     c.code,
			stato:      "ATTIVA",
		}
		switch x := rng.IntN(1000); {
		case x < 15:
			vi.stato = "CESSATA"
		case x < 50:
			vi.stato = "SOSPESA"
		}
		if rng.IntN(100) < 68 {
			for {
				per := randomPerson(rng, c.code)
				vi.codiceFiscale = per.codiceFiscale()
				if !usedCF[vi.codiceFiscale] {
					usedCF[vi.codiceFiscale] = true
					vi.denominazione = per.surname + " " + per.name
					break
				}
			}
		} else {
			vi.codiceFiscale = vi.partitaIVA
			vi.denominazione = companyName(rng)
		}
		p.vendors[v] = vi
	}
}

// randomPerson returns a person born 1955..2004, mostly in a place derived
// from comune (Belfiore codes here are synthetic), sometimes abroad (Z...).
func randomPerson(rng *rand.Rand, comune string) person {
	per := person{
		surname: pick(rng, surnames),
		female:  rng.IntN(100) < 38,
		year:    1955 + rng.IntN(50),
		month:   1 + rng.IntN(12),
		day:     1 + rng.IntN(28),
	}
	if per.female {
		per.name = pick(rng, femaleNames)
	} else {
		per.name = pick(rng, maleNames)
	}
	if rng.IntN(100) < 7 {
		per.place = "Z" + strconv.Itoa(100+rng.IntN(300))
	} else {
		h := derive(uint64(mustAtoi(comune)), 7)
		per.place = string(rune('A'+h%13)) + pad3d(int(h>>8%1000))
	}
	return per
}

func companyName(rng *rand.Rand) string {
	s1, s2, g := pick(rng, surnames), pick(rng, surnames), pick(rng, goods)
	switch rng.IntN(5) {
	case 0:
		return "F.lli " + s1 + pick(rng, companyForms)
	case 1:
		return s1 + " & " + s2 + pick(rng, companyForms)
	case 2:
		return g + " " + s1 + pick(rng, companyForms)
	default:
		return s1 + " " + g + pick(rng, companyForms)
	}
}

func pick(rng *rand.Rand, list []string) string { return list[rng.IntN(len(list))] }

// pickWeighted returns an index with probability proportional to its weight;
// at least one weight must be positive.
func pickWeighted(rng *rand.Rand, weights []int) int {
	sum := 0
	for _, w := range weights {
		sum += w
	}
	x := rng.IntN(sum)
	for i, w := range weights {
		if x < w {
			return i
		}
		x -= w
	}
	panic("unreachable")
}

func mustAtoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic("seed: not a number: " + s)
	}
	return n
}

// pad3d formats n (0..999) with three digits.
func pad3d(n int) string {
	return string([]byte{byte('0' + n/100), byte('0' + n/10%10), byte('0' + n%10)})
}
