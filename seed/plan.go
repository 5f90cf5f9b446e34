package seed

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/dmshub/dmsrouter/regions"
)

// marketShares are the regions' shares of the markets in docs/domain.md (Scale to design for), in
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
// region, and the vendors with the regions they operate in. It is a pure
// function of the options.
type plan struct {
	seed    uint64
	today   day
	days    int
	markets [21]int // by region number

	comuni  [21]comunePool // by region number
	vendors []vendorIdent  // national registry, by vendor number
	// regionVendors lists, by region number, the vendor numbers that have a
	// row in that region, ascending.
	regionVendors [21][]int32
}

// comunePool is the comuni of a region, from the ISTAT list, each with a
// weight: its population, or unknownPopulation when the dataset has none.
// Markets and vendors' offices are drawn from it in proportion to the weights.
type comunePool struct {
	comuni []comune
	cum    []int64 // cum[i] is the sum of the weights of comuni[:i+1]
}

type comune struct {
	code, name string
	sigla      string // of its province, which prefixes market codes
	capoluogo  bool   // the seat of its province
}

// unknownPopulation is the weight of a comune created since the population
// data (2011 census, list of 2020): about the median comune.
const unknownPopulation = 2_500

// newComunePool returns the comuni of the plain provinces of region r.
func newComunePool(r regions.Code) comunePool {
	var (
		pool comunePool
		sum  int64
	)
	for _, p := range regions.Provinces(r) {
		info := provinceTable[p]
		for _, c := range regions.ProvinceComuni(p) {
			w := int64(c.Population)
			if w == 0 {
				w = unknownPopulation
			}
			sum += w
			pool.comuni = append(pool.comuni, comune{
				code:      c.Code,
				name:      c.Name,
				sigla:     info.sigla,
				capoluogo: c.Code == p+pad3d(info.serial),
			})
			pool.cum = append(pool.cum, sum)
		}
	}
	return pool
}

// pick returns a comune of the pool drawn in proportion to its weight.
func (cp *comunePool) pick(rng *rand.Rand) comune {
	i, _ := slices.BinarySearch(cp.cum, 1+rng.Int64N(cp.cum[len(cp.cum)-1]))
	return cp.comuni[i]
}

// vendorIdent is a vendor as the national registry knows it: the same in
// every region where it has a row.
type vendorIdent struct {
	partitaIVA    string
	codiceFiscale string
	denominazione string
	comune        string // registered office, in the home region
	status        string
	registeredOn  day   // registration in the registro imprese; noDay when unknown
	categories    uint8 // catProduttore | catDisabile
	sectors       uint8 // what it trades: sectorFood | sectorNonFood (both rarely)
}

// Vendor categories and sectors as bits; the tables hold their names.
const (
	catProduttore uint8 = 1 << iota
	catDisabile
)

const (
	sectorFood uint8 = 1 << iota
	sectorNonFood
)

// noDay marks a date that is NULL.
const noDay = day(-1 << 31)

// Shares of the vendors' traits (issue 13), in tenths of a percent.
const (
	produttorePermille  = 40 // producers (agricoltori), who trade food
	disabilePermille    = 10
	foodPermille        = 300 // trading food only
	bothSectorsPermille = 40  // authorised in both sectors
	unknownRegPermille  = 5   // registration date not on file (migrated data)
)

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
	streamVendors
	streamMarkets
	streamMarket
	streamPresences
	streamSpunta
	streamTraits  // a vendor's registration, categories and sectors
	streamSectors // a market's food area and reserved stalls
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
		seed:  uint64(opts.Seed),
		today: today,
		days:  opts.Days,
	}
	counts := largestRemainder(opts.Markets, marketShares[1:])
	copy(p.markets[1:], counts)
	for _, r := range regions.All() {
		p.comuni[r.Code.Num()] = newComunePool(r.Code)
	}
	p.planVendors(opts.Markets)
	return p
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
		c := p.comuni[home].pick(rng)
		office := min(mustAtoi(c.code[:3]), 100)
		vi := vendorIdent{
			partitaIVA: makePartitaIVA((v*mul+add)%mod, office),
			comune:     c.code,
			status:     "ATTIVA",
		}
		switch x := rng.IntN(1000); {
		case x < 15:
			vi.status = "CESSATA"
		case x < 50:
			vi.status = "SOSPESA"
		}
		born := 0 // a person's birth year
		if rng.IntN(100) < 68 {
			for {
				per := randomPerson(rng, c.code)
				born = per.year
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
		vi.traits(newRand(p.seed, streamTraits, uint64(v)), born)
		p.vendors[v] = vi
	}
}

// traits draws vi's registration date (1975..2024, never before a person
// turned 18: most businesses are recent), its categories and the sectors
// it trades in, from its own stream so that the older fields keep their
// values.
func (vi *vendorIdent) traits(rng *rand.Rand, born int) {
	first := max(1975, born+18)
	// The later of two uniform years leans toward recent registrations.
	y := first + max(rng.IntN(2025-first), rng.IntN(2025-first))
	vi.registeredOn = dayOf(y, time.Month(1+rng.IntN(12)), 1+rng.IntN(28))
	if rng.IntN(1000) < unknownRegPermille {
		vi.registeredOn = noDay
	}
	switch x := rng.IntN(1000); {
	case x < produttorePermille:
		vi.categories = catProduttore
	case x < produttorePermille+disabilePermille:
		vi.categories = catDisabile
	}
	switch x := rng.IntN(1000); {
	case vi.categories&catProduttore != 0 || x < foodPermille:
		vi.sectors = sectorFood
	case x < foodPermille+bothSectorsPermille:
		vi.sectors = sectorFood | sectorNonFood
	default:
		vi.sectors = sectorNonFood
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
