package router

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/registry"
	"github.com/dmshub/dmsrouter/shardmap"
)

// The national endpoints: figures and lists over all 20 regions for
// national principals, each answered by one fan-out (fanout.go). Every
// response carries "regions", the status of each region's leg, and
// "partial"; ?partial=false turns a partial answer into a 503 that names the
// missing regions.

// Limits of the national endpoints.
const (
	// maxNationalOffset caps ?offset= on the national market list. An offset
	// costs offset+limit+1 rows from every region (the merge cannot know in
	// advance which regions the skipped rows come from), so offset 1000 reads
	// up to 20 x 1101 rows; deeper pages continue with next_cursor, which
	// costs limit+1 rows per region at any depth.
	maxNationalOffset = 1000
	// maxPresenceDays bounds the range of /v1/national/presences.
	maxPresenceDays = 366
	// maxWithinDays bounds within_days of the expiring concessions.
	maxWithinDays = 3650
)

// requireNational refuses principals whose territory is narrower than the
// whole country.
func (s *Server) requireNational(c *gin.Context) {
	if p := principal(c); p.Territory.Level != regions.National {
		s.writeProblem(c, forbidden("national figures need a national territory, not %s", p.Territory))
		return
	}
	c.Next()
}

// isNational reports whether the request's principal sees every region.
func isNational(c *gin.Context) bool { return principal(c).Territory.Level == regions.National }

// completeParam reads ?partial=: true (the default) accepts a partial
// answer, false demands every region. It reports whether the answer must be
// complete.
func completeParam(q *params) bool {
	switch q.str("partial") {
	case "", "true":
		return false
	case "false":
		return true
	}
	q.bad("partial", "must be true or false")
	return false
}

// noPaging refuses limit, offset and cursor on an endpoint that is not a list.
func noPaging(q *params) {
	for _, name := range []string{"limit", "offset", "cursor"} {
		if q.str(name) != "" {
			q.bad(name, "this endpoint is not a list")
		}
	}
}

// intParam returns the integer parameter name, def when absent; a value
// outside lo..hi is a bad field.
func intParam(q *params, name string, def, lo, hi int) int {
	v := q.str(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		q.bad(name, "must be an integer from %d to %d", lo, hi)
		return def
	}
	return n
}

// requiredDate returns the date parameter name, which must be present.
func requiredDate(q *params, name string) time.Time {
	if q.str(name) == "" {
		q.bad(name, "required: a date YYYY-MM-DD")
		return time.Time{}
	}
	return q.date(name, time.Time{})
}

// summaryFigures are the summary's figures of a region or of the country.
type summaryFigures struct {
	MarketsActive  int64            `json:"markets_active"`
	Stalls         map[string]int64 `json:"stalls"`
	Concessions    map[string]int64 `json:"concessions"`
	Vendors        int64            `json:"vendors"`
	PresencesDay   int64            `json:"presences_day"`
	PresencesMonth int64            `json:"presences_month"`
}

type regionFigures struct {
	Region string `json:"region"`
	Name   string `json:"name"`
	summaryFigures
}

type summaryResponse struct {
	Date     string          `json:"date"`
	Month    string          `json:"month"`
	Partial  bool            `json:"partial"`
	Regions  []legStatus     `json:"regions"`
	Total    summaryFigures  `json:"total"`
	ByRegion []regionFigures `json:"by_region"`
}

// nationalSummary serves GET /v1/national/summary[?date=]: per region and in
// total, active markets, stalls and concessions by status, vendors (the
// total counts a partita IVA once however many regions know it) and the
// presences on the date (default today in Rome) and in its month.
func (s *Server) nationalSummary(c *gin.Context) error {
	q := queryParams(c, "date", "partial")
	day := q.date("date", s.today())
	complete := completeParam(q)
	noPaging(q)
	if err := q.err(); err != nil {
		return err
	}
	p := principal(c)
	key := "summary " + day.Format(time.DateOnly)
	return s.national.serve(c, key, complete, func(ctx context.Context) (*answer, error) {
		l := sortLegs(fanOut(ctx, s.national, p, func(ctx context.Context, sh *shardmap.Shard, sc regions.Scope) (registry.RegionSummary, error) {
			key := sh.Name() + "/" + string(sc.Region)
			known := s.national.vendorSet(key)
			v, err := registry.Summary(ctx, sh, sc, day, known.version)
			switch {
			case err != nil:
			case v.VendorsUnchanged:
				v.PartiteIVA, v.Vendors = known.set, int64(len(known.set))
			case v.VendorsVersion != 0:
				s.national.rememberVendorSet(key, vendorSet{version: v.VendorsVersion, set: v.PartiteIVA})
			}
			return v, err
		}))
		res := summaryResponse{
			Date:     day.Format(time.DateOnly),
			Month:    day.Format("2006-01"),
			Partial:  len(l.missing) > 0,
			Regions:  l.statuses,
			Total:    summaryFigures{Stalls: map[string]int64{}, Concessions: map[string]int64{}},
			ByRegion: []regionFigures{},
		}
		var sets [][]int64
		var versions strings.Builder // region@version of each set merged; "" when one has no stamp
		stamped := true
		for _, o := range l.ok {
			v := o.value
			f := summaryFigures{MarketsActive: v.MarketsActive, Stalls: v.Stalls, Concessions: v.Concessions,
				Vendors: v.Vendors, PresencesDay: v.PresencesDay, PresencesMonth: v.PresencesMonth}
			res.ByRegion = append(res.ByRegion, regionFigures{Region: string(o.region), Name: o.region.Name(), summaryFigures: f})
			t := &res.Total
			t.MarketsActive += f.MarketsActive
			t.PresencesDay += f.PresencesDay
			t.PresencesMonth += f.PresencesMonth
			for k, n := range f.Stalls {
				t.Stalls[k] += n
			}
			for k, n := range f.Concessions {
				t.Concessions[k] += n
			}
			sets = append(sets, v.PartiteIVA)
			fmt.Fprintf(&versions, "%s@%d ", o.region, v.VendorsVersion)
			stamped = stamped && v.VendorsVersion != 0
		}
		if !stamped {
			versions.Reset()
		}
		res.Total.Vendors = s.national.countDistinct(versions.String(), sets)
		return finish(ctx, s.national, "/v1/national/summary", l, res)
	})
}

// vendorSet is a region's set of partite IVA, ascending, and the version
// stamp it was read with. A set is never modified once stored.
type vendorSet struct {
	version int64
	set     []int64
}

func (n *nationalState) vendorSet(key string) vendorSet {
	n.vendorMu.Lock()
	defer n.vendorMu.Unlock()
	return n.vendorSets[key]
}

// countDistinct returns the number of distinct partite IVA in sets, the
// regions' sets that versions names (each region's version stamp, in region
// order). Merging 40,000-odd numbers costs milliseconds, and a set with a
// stamp never changes, so the count of the same versions is remembered.
// Empty versions (some set has no stamp) are merged afresh every time.
func (n *nationalState) countDistinct(versions string, sets [][]int64) int64 {
	if versions != "" {
		n.vendorMu.Lock()
		d := n.distinct
		n.vendorMu.Unlock()
		if d.of == versions {
			return d.n
		}
	}
	c := countDistinct(sets)
	if versions != "" {
		n.vendorMu.Lock()
		n.distinct.of, n.distinct.n = versions, c
		n.vendorMu.Unlock()
	}
	return c
}

func (n *nationalState) rememberVendorSet(key string, v vendorSet) {
	n.vendorMu.Lock()
	defer n.vendorMu.Unlock()
	n.vendorSets[key] = v
}

// keyCount is a presence count under a key: a region code, a day or a month.
type keyCount struct {
	Key string `json:"key"`
	N   int64  `json:"n"`
}

type presencesResponse struct {
	From    string      `json:"from"`
	To      string      `json:"to"`
	GroupBy string      `json:"group_by"`
	Partial bool        `json:"partial"`
	Regions []legStatus `json:"regions"`
	Total   int64       `json:"total"`
	Items   []keyCount  `json:"items"`
}

// nationalPresences serves GET /v1/national/presences?from=&to=&group_by=:
// the presences from from to to inclusive (at most 366 days) per region (in
// code order, the regions that answered), per day or per month (every day or
// month of the range, zeros included).
func (s *Server) nationalPresences(c *gin.Context) error {
	q := queryParams(c, "from", "to", "group_by", "partial")
	from, to := requiredDate(q, "from"), requiredDate(q, "to")
	groupBy := q.oneOf("group_by", "region", "day", "month")
	if groupBy == "" {
		groupBy = "region"
	}
	complete := completeParam(q)
	noPaging(q)
	if !from.IsZero() && !to.IsZero() {
		if to.Before(from) {
			q.bad("to", "must not be before from")
		} else if days := int(to.Sub(from).Hours()/24) + 1; days > maxPresenceDays {
			q.bad("to", "the range spans %d days, at most %d", days, maxPresenceDays)
		}
	}
	if err := q.err(); err != nil {
		return err
	}
	p := principal(c)
	key := "presences " + from.Format(time.DateOnly) + " " + to.Format(time.DateOnly) + " " + groupBy
	return s.national.serve(c, key, complete, func(ctx context.Context) (*answer, error) {
		l := sortLegs(fanOut(ctx, s.national, p, func(ctx context.Context, sh *shardmap.Shard, sc regions.Scope) ([]registry.DayCount, error) {
			if groupBy == "day" {
				return registry.PresencesByDay(ctx, sh, sc, from, to)
			}
			return registry.PresencesByMonth(ctx, sh, sc, from, to)
		}))
		res := presencesResponse{From: from.Format(time.DateOnly), To: to.Format(time.DateOnly), GroupBy: groupBy,
			Partial: len(l.missing) > 0, Regions: l.statuses, Items: []keyCount{}}
		// Every key of the range, zeros included, in order.
		index := map[string]int{}
		add := func(k string) {
			index[k] = len(res.Items)
			res.Items = append(res.Items, keyCount{Key: k})
		}
		switch groupBy {
		case "region":
			for _, o := range l.ok {
				add(string(o.region))
			}
		case "day":
			for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
				add(d.Format(time.DateOnly))
			}
		case "month":
			for m := time.Date(from.Year(), from.Month(), 1, 0, 0, 0, 0, time.UTC); !m.After(to); m = m.AddDate(0, 1, 0) {
				add(m.Format("2006-01"))
			}
		}
		for _, o := range l.ok {
			for _, dc := range o.value {
				k := string(o.region)
				switch groupBy {
				case "day":
					k = dc.Date
				case "month":
					k = dc.Date[:7]
				}
				res.Items[index[k]].N += dc.N
				res.Total += dc.N
			}
		}
		return finish(ctx, s.national, "/v1/national/presences", l, res)
	})
}

// nationalList is one page of a list merged across regions.
type nationalList[T any] struct {
	registry.List[T]
	Partial bool        `json:"partial"`
	Regions []legStatus `json:"regions"`
}

// expiringPage is one region's page of expiring concessions.
type expiringPage struct {
	items []registry.Concession
	total int64
}

// nationalExpiring serves GET /v1/national/concessions/expiring
// ?within_days=90&limit=50&cursor=: the ATTIVA concessions of every region
// whose valid_to falls from today (in Rome) to within_days later, soonest
// first, ordered by (valid_to, id) and paged with next_cursor.
func (s *Server) nationalExpiring(c *gin.Context) error {
	q := queryParams(c, "within_days", "partial")
	within := intParam(q, "within_days", 90, 0, maxWithinDays)
	complete := completeParam(q)
	pg := q.page()
	if pg.Offset != 0 {
		q.bad("offset", "this list pages with next_cursor only")
	}
	if err := q.err(); err != nil {
		return err
	}
	p := principal(c)
	from := s.today()
	until := from.AddDate(0, 0, within)
	key := "expiring " + from.Format(time.DateOnly) + " " + strconv.Itoa(within) + " " + strconv.Itoa(pg.Limit) + " " + pg.Cursor
	return s.national.serve(c, key, complete, func(ctx context.Context) (*answer, error) {
		l := sortLegs(fanOut(ctx, s.national, p, func(ctx context.Context, sh *shardmap.Shard, sc regions.Scope) (expiringPage, error) {
			items, total, err := registry.ExpiringConcessions(ctx, sh, sc, from, until, pg.Cursor, pg.Limit+1)
			return expiringPage{items, total}, err
		}))
		if err := l.clientErr(); err != nil {
			return nil, err
		}
		res := nationalList[registry.Concession]{List: registry.List[registry.Concession]{Limit: pg.Limit},
			Partial: len(l.missing) > 0, Regions: l.statuses}
		var lists [][]registry.Concession
		for _, o := range l.ok {
			lists = append(lists, o.value.items)
			res.Total += o.value.total
		}
		res.Items = mergeSorted(lists, func(a, b registry.Concession) int {
			return compareKey(a.ValidTo, a.ID, b.ValidTo, b.ID)
		}, pg.Limit+1)
		if len(res.Items) > pg.Limit {
			res.Items = res.Items[:pg.Limit]
			res.NextCursor = registry.ExpiringCursor(res.Items[pg.Limit-1])
		}
		if res.Items == nil {
			res.Items = []registry.Concession{}
		}
		return finish(ctx, s.national, "/v1/national/concessions/expiring", l, res)
	})
}

// marketsPage is one region's page of markets.
type marketsPage struct {
	items []registry.Market
	total int64
}

// nationalMarkets serves GET /v1/markets without a region for a national
// principal: every region's markets matching f, merged in (name, id) order
// (names compared byte by byte), with an exact total. Offset works up to
// maxNationalOffset; next_cursor continues at any depth.
func (s *Server) nationalMarkets(c *gin.Context, f registry.MarketFilter, pg registry.Page, complete bool) error {
	if pg.Offset > maxNationalOffset {
		return badField("offset", "at most %d on the national list; continue with next_cursor", maxNationalOffset)
	}
	p := principal(c)
	key := "markets " + f.Status + "\x00" + f.Q + "\x00" + strconv.Itoa(pg.Limit) + " " + strconv.Itoa(pg.Offset) + " " + pg.Cursor
	return s.national.serve(c, key, complete, func(ctx context.Context) (*answer, error) {
		want := pg.Offset + pg.Limit + 1
		l := sortLegs(fanOut(ctx, s.national, p, func(ctx context.Context, sh *shardmap.Shard, sc regions.Scope) (marketsPage, error) {
			items, total, err := registry.MarketsByName(ctx, sh, sc, f, pg.Cursor, want)
			return marketsPage{items, total}, err
		}))
		if err := l.clientErr(); err != nil {
			return nil, err
		}
		res := nationalList[registry.Market]{List: registry.List[registry.Market]{Limit: pg.Limit, Offset: pg.Offset},
			Partial: len(l.missing) > 0, Regions: l.statuses}
		var lists [][]registry.Market
		for _, o := range l.ok {
			lists = append(lists, o.value.items)
			res.Total += o.value.total
		}
		merged := mergeSorted(lists, func(a, b registry.Market) int {
			return compareKey(a.Name, a.ID, b.Name, b.ID)
		}, want)
		merged = merged[min(pg.Offset, len(merged)):]
		if len(merged) > pg.Limit {
			merged = merged[:pg.Limit]
			res.NextCursor = registry.NationalMarketsCursor(merged[pg.Limit-1])
		}
		res.Items = append([]registry.Market{}, merged...)
		return finish(ctx, s.national, "/v1/markets", l, res)
	})
}

// vendorAppearance is the vendor as one region knows it.
type vendorAppearance struct {
	Region string `json:"region"`
	registry.VendorRegion
}

type vendorResponse struct {
	PartitaIVA        string             `json:"partita_iva"`
	Partial           bool               `json:"partial"`
	Regions           []legStatus        `json:"regions"`
	AppearsIn         []vendorAppearance `json:"appears_in"`
	ConcessionsTotal  int64              `json:"concessions_total"`
	PresencesThisYear int64              `json:"presences_this_year"`
}

// nationalVendor serves GET /v1/vendors?partita_iva= without a region for a
// national principal: the vendor in every region that knows it, with its
// concessions there and its presences this year (in Rome), and the national
// totals. A vendor that no region knows is not found, unless some region did
// not answer: then the answer is partial and empty.
func (s *Server) nationalVendor(c *gin.Context, piva string, complete bool) error {
	p := principal(c)
	today := s.today()
	yearStart := time.Date(today.Year(), 1, 1, 0, 0, 0, 0, time.UTC)
	key := "vendor " + piva + " " + yearStart.Format(time.DateOnly)
	return s.national.serve(c, key, complete, func(ctx context.Context) (*answer, error) {
		l := sortLegs(fanOut(ctx, s.national, p, func(ctx context.Context, sh *shardmap.Shard, sc regions.Scope) (*registry.VendorRegion, error) {
			v, err := registry.VendorInRegion(ctx, sh, sc, piva, yearStart)
			if errors.Is(err, registry.ErrNotFound) {
				return nil, nil // the region does not know the vendor: an answer
			}
			if err != nil {
				return nil, err
			}
			return &v, nil
		}))
		res := vendorResponse{PartitaIVA: piva, Partial: len(l.missing) > 0, Regions: l.statuses, AppearsIn: []vendorAppearance{}}
		for _, o := range l.ok {
			if o.value == nil {
				continue
			}
			res.AppearsIn = append(res.AppearsIn, vendorAppearance{Region: string(o.region), VendorRegion: *o.value})
			res.ConcessionsTotal += o.value.ConcessionsTotal
			res.PresencesThisYear += o.value.PresencesThisYear
		}
		if len(res.AppearsIn) == 0 && !res.Partial {
			return nil, registry.ErrNotFound
		}
		return finish(ctx, s.national, "/v1/vendors", l, res)
	})
}
