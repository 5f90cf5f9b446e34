package seed

import (
	"math/rand/v2"
	"slices"
	"time"

	"github.com/dmshub/dmsrouter/regions"
)

// Stall types and statuses, and concession statuses, as small integers; the
// tables hold their names.
const (
	stallFisso uint8 = iota
	stallSpunta
	stallStraordinario
)

var stallTypes = [...]string{"FISSO", "SPUNTA", "STRAORDINARIO"}

const (
	stallLibero uint8 = iota
	stallOccupato
	stallRiservato
)

var stallStatuses = [...]string{"LIBERO", "OCCUPATO", "RISERVATO"}

const (
	concAttiva uint8 = iota
	concSospesa
	concRevocata
	concCessata
	concScaduta
)

var concStatuses = [...]string{"ATTIVA", "SOSPESA", "REVOCATA", "CESSATA", "SCADUTA"}

// Presence behaviour.
const (
	holderAttendancePct = 82   // a concession holder comes on a market day, percent
	spuntaPoolShare     = 0.27 // spuntisti registered at a market, per stall
	spuntaTop           = 0.90 // the best-ranked spuntista comes this often,
	spuntaBottom        = 0.30 // the worst this often
)

// regionData is one region's generated rows, except the presences, which
// are streamed (see presenceGen). Row i of each table has sequence number
// i+1, so its id is regions.MakeID(region, i+1).
type regionData struct {
	code        regions.Code
	num         int
	markets     []market
	stalls      []stall
	vendors     []int32 // vendor number (plan.vendors) of each vendor row
	concessions []concession
	auths       []authorisation
	authSectors []uint8 // by vendor row: the sectors it holds an authorisation for

	midnights []int64      // Europe/Rome midnight of every day from firstDay, micros since pgEpoch
	days      []dayRow     // every market day of the window, as it is generated
	justified []absenceRow // the holders' justified absences, as they are generated

	firstDay, lastDay day          // span of the presences; firstDay > lastDay when none
	marketDays        int64        // number of (market, day) pairs with presences
	presences         int64        // presences written, once they all are
	daily             []dailyCount // presences per market day, as they are written
}

type market struct {
	code, name          string
	province, comune    string
	comuneName          string
	days                []int16 // ISO weekdays
	weekdays            uint8   // the same as a bit set: 1<<weekday
	active              bool
	costCents           int64
	created, updated    int64 // microseconds since pgEpoch
	firstStall, nStalls int32
	start, end          day     // presence window, start > end when empty
	spunta              []int32 // spuntisti (vendor rows), most assiduous first
	spuntaP             []uint32
	earned              []int32    // by spuntista: ranking presences earned in the window so far
	rng                 *rand.Rand // the market's presence stream
}

type stall struct {
	market             int32
	number             int32
	typ, status        uint8
	sector             uint8 // sectorFood or sectorNonFood
	reservedFor        uint8 // 0, catProduttore or catDisabile
	area, width, depth int64 // in hundredths: of m² for area, of m (cm) for width and depth
	cur, prev          int32 // concession rows, -1 for none
	free               bool  // offered at the call when nobody holds it that day: not RISERVATO
}

type concession struct {
	market, stall, vendor int32
	from, to              day
	extendedTo            day // the legal extension, noDay for none
	status                uint8
	suspended             day   // a SOSPESA concession cannot check in from this day
	title                 int32 // the concession row of its title: its own unless it follows one
	follows               int32 // the concession row it follows by subingresso, -1 for none
}

// end returns the last day of c's term: its legal extension, or valid_to.
func (c *concession) end() day {
	if c.extendedTo != noDay {
		return c.extendedTo
	}
	return c.to
}

// The legal extension of L. 214/2023 art. 11: titles in force on
// 2023-12-31 whose date came earlier run until 2025-12-31 (days since
// 2000-01-01; TestDays checks them).
const (
	extensionInForce day = 8765 // 2023-12-31
	extensionUntil   day = 9496 // 2025-12-31
)

// extension returns the legal extension of a live title that started on
// from and carries the date to, or noDay.
func extension(from, to day) day {
	if from <= extensionInForce && to >= extensionInForce && to < extensionUntil {
		return extensionUntil
	}
	return noDay
}

// expired returns the term (from, to, extension) of a title drawn to have
// expired on to, as the law leaves it: a title in force on 2023-12-31
// whose date came earlier ran until 2025-12-31, so it carries that
// extension if the extension ended before next (the day its stall was let
// again, or today); otherwise it cannot have expired on to, and it expired
// just before the law instead.
func expired(from, to, next day) (day, day, day) {
	ext := extension(from, to)
	switch {
	case ext == noDay:
		return from, to, noDay
	case ext < next:
		return from, to, ext
	}
	to = extensionInForce - 1
	return to.addYears(-10) + 1, to, noDay
}

// authorisation is a vendor row's licence: type A for a stall at a
// market's comune, type B itinerant, issued by its own comune.
type authorisation struct {
	vendor   int32
	typeB    bool
	sector   uint8
	comune   string
	issuedOn day
}

func (r *regionData) id(seq int) int64 { return regions.MakeID(r.code, int64(seq+1)) }

// generateRegion builds region code's markets, stalls, vendors and
// concessions. It depends only on the plan and the region, never on other
// regions, so regions can be generated in any order or in parallel.
func (p *plan) generateRegion(code regions.Code, rome *time.Location) *regionData {
	rd := &regionData{code: code, num: code.Num(), firstDay: p.today + 1, lastDay: p.today}
	rd.vendors = p.regionVendors[rd.num]
	n := p.markets[rd.num]
	if n == 0 {
		return rd
	}
	rng := newRand(p.seed, streamMarkets, uint64(rd.num))
	serial := map[string]int{}     // markets per province so far
	inComune := map[string]int{}   // markets per comune so far
	usedNames := map[string]bool{} // comune + name
	eligible := make([]int32, 0, len(rd.vendors))
	for i, v := range rd.vendors {
		if p.vendors[v].status != "CESSATA" {
			eligible = append(eligible, int32(i))
		}
	}
	all := make([]int32, len(rd.vendors))
	for i := range all {
		all[i] = int32(i)
	}
	holds := make([]bool, len(rd.vendors)) // vendor row acts here: holds a concession or is a spuntista
	for i := range n {
		c := p.comuni[rd.num].pick(rng)
		province := c.code[:3]
		serial[province]++
		m := market{
			code:       c.sigla + pad3dOrMore(serial[province]),
			province:   province,
			comune:     c.code,
			comuneName: c.name,
			days:       marketDays(rng),
			active:     rng.IntN(100) >= 2,
			costCents:  int64(40 + rng.IntN(211)),
		}
		if c.capoluogo {
			m.costCents = m.costCents * 3 / 2
		}
		for _, wd := range m.days {
			m.weekdays |= 1 << wd
		}
		m.name = marketName(rng, c, inComune[c.code], len(m.days), usedNames)
		inComune[c.code]++
		usedNames[c.code+m.name] = true

		end := p.today
		if !m.active {
			end -= day(30 + rng.IntN(335))
		}
		m.start, m.end = window(m.days, end, p.days)
		if m.start <= m.end {
			rd.firstDay = min(rd.firstDay, m.start)
			rd.lastDay = max(rd.lastDay, m.end)
			rd.marketDays += int64(p.days)
		}
		created := min(m.start, end) - day(30+rng.IntN(1500))
		m.created = localMicros(rome, created, 8*60+rng.IntN(9*60))
		upd := created + day(rng.IntN(int(p.today-created)+1))
		if !m.active {
			upd = end + 1
		}
		m.updated = max(m.created, localMicros(rome, upd, 8*60+rng.IntN(9*60)))

		mr := newRand(p.seed, streamMarket, uint64(rd.num), uint64(i))
		p.generateStalls(rd, int32(i), &m, mr, eligible, all, holds)
		m.rng = newRand(p.seed, streamPresences, uint64(rd.num), uint64(i))
		rd.markets = append(rd.markets, m)
	}
	p.spuntaPools(rd, eligible, holds)
	p.authorise(rd)
	return rd
}

// authorise gives the region's vendor rows their authorisations: type A,
// issued by the market's comune when the title began, in the sector of
// every concession they hold; type B, issued by their own comune after
// their registration, in the sectors they trade in, to every spuntista.
func (p *plan) authorise(rd *regionData) {
	type key struct {
		vendor int32
		typeB  bool
		sector uint8
		comune string
	}
	seen := map[key]bool{}
	grant := func(a authorisation) {
		k := key{a.vendor, a.typeB, a.sector, a.comune}
		if seen[k] {
			return
		}
		seen[k] = true
		rd.auths = append(rd.auths, a)
		rd.authSectors[a.vendor] |= a.sector
	}
	rd.authSectors = make([]uint8, len(rd.vendors))
	for _, s := range rd.stalls {
		if s.cur < 0 {
			continue
		}
		c := &rd.concessions[s.cur]
		grant(authorisation{vendor: c.vendor, sector: s.sector, comune: rd.markets[s.market].comune, issuedOn: c.from})
	}
	for _, m := range rd.markets {
		for _, v := range m.spunta {
			vi := &p.vendors[rd.vendors[v]]
			issued := vi.registeredOn // unknown (noDay) when the registration is
			if issued != noDay {
				issued += 30
			}
			for _, sector := range [...]uint8{sectorFood, sectorNonFood} {
				if vi.sectors&sector != 0 {
					grant(authorisation{vendor: v, typeB: true, sector: sector, comune: vi.comune, issuedOn: issued})
				}
			}
		}
	}
}

// pad3dOrMore formats n with at least three digits.
func pad3dOrMore(n int) string {
	if n < 1000 {
		return pad3d(n)
	}
	b := []byte{}
	for ; n > 0; n /= 10 {
		b = append(b, byte('0'+n%10))
	}
	slices.Reverse(b)
	return string(b)
}

// marketDays returns the ISO weekdays of a market: mostly one day a week,
// some two or three, a few every day but Sunday; Sunday is rare.
func marketDays(rng *rand.Rand) []int16 {
	weights := []int{0, 12, 17, 17, 17, 17, 17, 3}
	switch x := rng.IntN(100); {
	case x < 2:
		return []int16{1, 2, 3, 4, 5, 6}
	case x < 7:
		if rng.IntN(2) == 0 {
			return []int16{1, 3, 5}
		}
		return []int16{2, 4, 6}
	case x < 22:
		a := 1 + rng.IntN(3)
		return []int16{int16(a), int16(a + 3)}
	default:
		return []int16{int16(pickWeighted(rng, weights))}
	}
}

// marketName names the k-th market of comune c.
func marketName(rng *rand.Rand, c comune, k, nDays int, used map[string]bool) string {
	if famous := famousMarkets[c.name]; k < len(famous) {
		return famous[k]
	}
	if k == 0 {
		switch {
		case nDays >= 6:
			return "Mercato giornaliero di " + c.name
		case nDays > 1:
			return "Mercato di " + c.name
		case rng.IntN(20) == 0:
			return "Mercato contadino di " + c.name
		default:
			return "Mercato settimanale di " + c.name
		}
	}
	for try := 0; ; try++ {
		name := pick(rng, squareKinds) + pick(rng, squares)
		if try >= 10 {
			name += " " + pad3dOrMore(k)
		}
		if !used[c.code+name] {
			return name
		}
	}
}

// window returns the first and last of the last n market days (weekdays
// days) up to end; first > last when there are none.
func window(days []int16, end day, n int) (first, last day) {
	if n == 0 || len(days) == 0 {
		return end + 1, end
	}
	on := [8]bool{}
	for _, d := range days {
		on[d] = true
	}
	last = end
	for !on[last.weekday()] {
		last--
	}
	first = last
	for count := 1; count < n; {
		first--
		if on[first.weekday()] {
			count++
		}
	}
	return first, last
}

// localMicros returns minute minuteOfDay of day d in Europe/Rome as
// microseconds since pgEpoch.
func localMicros(rome *time.Location, d day, minuteOfDay int) int64 {
	y, m, dd := d.time().Date()
	return micros(time.Date(y, m, dd, minuteOfDay/60, minuteOfDay%60, 0, 0, rome))
}

// generateStalls makes market mi's stalls (5..60, 15 on average, skewed to
// small markets), their sectors (the food stalls together, as markets have
// a food area) and reservations, and their concessions, each on a title:
// a few titles passed to a buyer by subingresso, and titles in force on
// 2023-12-31 carry their legal extension.
func (p *plan) generateStalls(rd *regionData, mi int32, m *market, rng *rand.Rand, eligible, all []int32, holds []bool) {
	n := 5 + min(55, int(rng.ExpFloat64()*10.5))
	m.firstStall, m.nStalls = int32(len(rd.stalls)), int32(n)
	sr := newRand(p.seed, streamSectors, uint64(rd.num), uint64(mi))
	food := int(float64(n)*(0.2+0.2*sr.Float64()) + 0.5) // 20..40% of the stalls
	foodFrom := 0                                        // the food area is at the entrance, or further in
	if sr.IntN(2) == 0 {
		foodFrom = sr.IntN(n - food + 1)
	}
	var taken []int32 // vendor rows with a concession in this market
	// pickVendor draws a vendor row of pool that has no concession here
	// yet, mostly one that trades in sector.
	pickVendor := func(pool []int32, sector uint8) int32 {
		if len(pool) == 0 {
			return -1
		}
		for try := range 30 {
			v := pool[rng.IntN(len(pool))]
			if slices.Contains(taken, v) || try < 20 && p.vendors[rd.vendors[v]].sectors&sector == 0 {
				continue
			}
			taken = append(taken, v)
			holds[v] = true
			return v
		}
		return -1
	}
	add := func(c *concession) int32 {
		row := int32(len(rd.concessions))
		if c.follows < 0 {
			c.title = row
		}
		rd.concessions = append(rd.concessions, *c)
		return row
	}
	today := p.today
	for k := range n {
		s := stall{market: mi, number: int32(k + 1), cur: -1, prev: -1, sector: sectorNonFood}
		if k >= foodFrom && k < foodFrom+food {
			s.sector = sectorFood
		}
		switch x := rng.IntN(100); {
		case x < 80:
			s.typ = stallFisso
		case x < 96:
			s.typ = stallSpunta
		default:
			s.typ = stallStraordinario
		}
		w := int64(200 + 50*rng.IntN(13)) // 2.00 .. 8.00 m
		if rng.IntN(3) > 0 {
			w = int64(350 + 50*rng.IntN(6)) // most 3.50 .. 6.00 m
		}
		d := int64(200 + 50*rng.IntN(7)) // 2.00 .. 5.00 m
		s.width, s.depth, s.area = w, d, w*d/100
		si := int32(len(rd.stalls))

		if s.typ == stallFisso {
			var cur, prev *concession
			newConcession := func(status uint8) *concession {
				return &concession{market: mi, stall: si, status: status, extendedTo: noDay, follows: -1}
			}
			if rng.IntN(100) < 88 {
				cur = newConcession(concAttiva)
				if rng.IntN(100) < 8 {
					cur.status = concSospesa
				}
				if cur.status == concAttiva && rng.IntN(100) < 3 {
					// Expiring within 90 days.
					cur.to = today + day(1+rng.IntN(90))
					cur.from = cur.to.addYears(-10) + 1
				} else {
					cur.from = today - day(rng.IntN(3640))
					cur.to = cur.from.addYears(10) - 1
				}
				cur.suspended = max(cur.from, today-day(7+rng.IntN(174)))
				titleFrom := cur.from
				if rng.IntN(100) < 10 {
					prev = newConcession(concCessata)
					switch x := rng.IntN(100); {
					case x < 70 && today-cur.from > 180:
						// Subingresso: the holder sold the business, and the
						// buyer holds the rest of the title's term.
						prev.from, prev.to = cur.from, cur.from+day(180+rng.IntN(int(today-cur.from)-180))
						cur.from = prev.to + 1
						cur.follows = int32(len(rd.concessions)) // prev's row, appended first
						cur.suspended = max(cur.suspended, cur.from)
					case x < 90:
						// Expired, and let again to another vendor.
						prev.status = concScaduta
						to := cur.from - 1
						prev.from, prev.to, prev.extendedTo = expired(to.addYears(-10)+1, to, cur.from)
					default:
						prev.status = concRevocata
						prev.to = cur.from - 1
						prev.from = prev.to - day(365+rng.IntN(2920))
					}
				}
				cur.extendedTo = extension(titleFrom, cur.to)
			} else if rng.IntN(100) < 70 {
				prev = newConcession(concScaduta)
				if rng.IntN(100) < 55 {
					to := today - day(1+rng.IntN(730))
					prev.from, prev.to, prev.extendedTo = expired(to.addYears(-10)+1, to, today)
				} else {
					prev.status = concRevocata
					prev.to = today - day(1+rng.IntN(1095))
					prev.from = prev.to - day(365+rng.IntN(2920))
				}
			}
			if prev != nil {
				if prev.vendor = pickVendor(all, s.sector); prev.vendor >= 0 {
					s.prev = add(prev)
				} else if cur != nil && cur.follows >= 0 {
					// Nobody to have sold it: the buyer's title is its own.
					cur.follows = -1
				}
			}
			if cur != nil {
				if cur.follows >= 0 {
					cur.title = rd.concessions[cur.follows].title
				}
				if cur.vendor = pickVendor(eligible, s.sector); cur.vendor >= 0 {
					s.cur = add(cur)
				}
			}
		}
		switch {
		case s.cur >= 0:
			s.status = stallOccupato
		case s.typ == stallStraordinario && rng.IntN(2) == 0, s.typ == stallSpunta && rng.IntN(10) == 0:
			s.status = stallRiservato
		}
		if s.cur < 0 && s.status != stallRiservato {
			// Stalls nobody holds may be reserved: in the food area for
			// producers, anywhere for disabled operators.
			switch x := sr.IntN(100); {
			case s.sector == sectorFood && x < 25:
				s.reservedFor = catProduttore
			case x >= 96:
				s.reservedFor = catDisabile
			}
		}
		s.free = s.status != stallRiservato
		rd.stalls = append(rd.stalls, s)
	}
	// Spuntisti: vendors of the region without a concession in this market,
	// ranked; the best-ranked come most often.
	size := max(1, int(float64(n)*spuntaPoolShare+0.5))
	for range size * min(1, len(eligible)) {
		for range 30 {
			v := eligible[rng.IntN(len(eligible))]
			if !slices.Contains(taken, v) && !slices.Contains(m.spunta, v) {
				m.spunta = append(m.spunta, v)
				holds[v] = true
				break
			}
		}
	}
}

// spuntaPools gives every active vendor row of the region that neither holds
// a concession nor is a spuntista anywhere a place at the bottom of some
// market's ranking, so that every vendor of a region acts there; then fixes
// each market's presence probabilities by rank.
func (p *plan) spuntaPools(rd *regionData, eligible []int32, holds []bool) {
	rng := newRand(p.seed, streamSpunta, uint64(rd.num))
	for _, v := range eligible {
		if holds[v] {
			continue
		}
		for range 30 {
			mi := rng.IntN(len(rd.markets))
			m := &rd.markets[mi]
			if !p.holdsIn(rd, mi, v) {
				m.spunta = append(m.spunta, v)
				break
			}
		}
	}
	for i := range rd.markets {
		m := &rd.markets[i]
		m.spuntaP = make([]uint32, len(m.spunta))
		for k := range m.spunta {
			f := spuntaTop
			if len(m.spunta) > 1 {
				f -= (spuntaTop - spuntaBottom) * float64(k) / float64(len(m.spunta)-1)
			}
			m.spuntaP[k] = uint32(f * (1 << 32))
		}
	}
}

// holdsIn reports whether vendor row v holds a concession in market mi or
// is one of its spuntisti.
func (p *plan) holdsIn(rd *regionData, mi int, v int32) bool {
	m := &rd.markets[mi]
	if slices.Contains(m.spunta, v) {
		return true
	}
	for _, s := range rd.stalls[m.firstStall : m.firstStall+m.nStalls] {
		for _, c := range []int32{s.cur, s.prev} {
			if c >= 0 && rd.concessions[c].vendor == v {
				return true
			}
		}
	}
	return false
}
