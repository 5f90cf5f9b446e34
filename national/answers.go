package national

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/registry"
	"github.com/dmshub/dmsrouter/shardmap"
)

// The national questions. Each method answers one from the cache, from a
// fan-out an identical request started, or from a new fan-out over
// req.Map, and reports which (SourceCache, SourceShared, SourceFanout). The
// answer's JSON is one of the *Response types below; it lists the regions
// missing from it, and the caller decides whether a partial answer will do.

// SummaryFigures are the summary's figures of a region or of the country.
type SummaryFigures struct {
	MarketsActive  int64            `json:"markets_active"`
	Stalls         map[string]int64 `json:"stalls"`
	Concessions    map[string]int64 `json:"concessions"`
	Vendors        int64            `json:"vendors"`
	PresencesDay   int64            `json:"presences_day"`
	PresencesMonth int64            `json:"presences_month"`
	// DecadenzaProposed counts the ATTIVA concessions proposed for
	// decadenza, awaiting an office's decision.
	DecadenzaProposed int64 `json:"decadenza_proposed"`
	// MarketDaysHeld and MarketDaysCancelled count the markets held and
	// cancelled on the day.
	MarketDaysHeld      int64 `json:"market_days_held"`
	MarketDaysCancelled int64 `json:"market_days_cancelled"`
}

// RegionFigures are one region's summary figures.
type RegionFigures struct {
	Region string `json:"region"`
	Name   string `json:"name"`
	SummaryFigures
}

// SummaryResponse is the answer of Summary.
type SummaryResponse struct {
	Date  string `json:"date"`
	Month string `json:"month"`
	Report
	Total    SummaryFigures  `json:"total"`
	ByRegion []RegionFigures `json:"by_region"`
}

// Summary answers the national summary of day: per region and in total,
// active markets, stalls and concessions by status, vendors (the total
// counts a partita IVA once however many regions know it) and the presences
// on day and in its month.
func (f *Fanout) Summary(ctx context.Context, req Request, day time.Time) (*Answer, string, error) {
	return f.answer(ctx, req, "summary "+day.Format(time.DateOnly), func(ctx context.Context) (*Answer, error) {
		l := fanOut(ctx, f, req, func(ctx context.Context, sh *shardmap.Shard, sc regions.Scope) (registry.RegionSummary, error) {
			key := sh.Name() + "/" + string(sc.Region)
			known := f.vendors.set(key)
			v, err := registry.Summary(ctx, sh, sc, day, known.version)
			switch {
			case err != nil:
			case v.VendorsUnchanged:
				v.PartiteIVA, v.Vendors = known.set, int64(len(known.set))
			case v.VendorsVersion != 0:
				f.vendors.remember(key, vendorSet{version: v.VendorsVersion, set: v.PartiteIVA})
			}
			return v, err
		})
		res := SummaryResponse{
			Date:     day.Format(time.DateOnly),
			Month:    day.Format("2006-01"),
			Report:   l.Report,
			Total:    SummaryFigures{Stalls: map[string]int64{}, Concessions: map[string]int64{}},
			ByRegion: []RegionFigures{},
		}
		var sets [][]int64
		var versions strings.Builder // region@version of each set merged; "" when one has no stamp
		stamped := true
		for _, o := range l.ok {
			v := o.value
			s := SummaryFigures{MarketsActive: v.MarketsActive, Stalls: v.Stalls, Concessions: v.Concessions,
				Vendors: v.Vendors, PresencesDay: v.PresencesDay, PresencesMonth: v.PresencesMonth,
				DecadenzaProposed: v.DecadenzaProposed, MarketDaysHeld: v.MarketDaysHeld, MarketDaysCancelled: v.MarketDaysCancelled}
			res.ByRegion = append(res.ByRegion, RegionFigures{Region: string(o.region), Name: o.region.Name(), SummaryFigures: s})
			t := &res.Total
			t.MarketsActive += s.MarketsActive
			t.PresencesDay += s.PresencesDay
			t.PresencesMonth += s.PresencesMonth
			t.DecadenzaProposed += s.DecadenzaProposed
			t.MarketDaysHeld += s.MarketDaysHeld
			t.MarketDaysCancelled += s.MarketDaysCancelled
			for k, n := range s.Stalls {
				t.Stalls[k] += n
			}
			for k, n := range s.Concessions {
				t.Concessions[k] += n
			}
			sets = append(sets, v.PartiteIVA)
			fmt.Fprintf(&versions, "%s@%d ", o.region, v.VendorsVersion)
			stamped = stamped && v.VendorsVersion != 0
		}
		if !stamped {
			versions.Reset()
		}
		res.Total.Vendors = f.vendors.countDistinct(versions.String(), sets)
		return finish(ctx, f, req, l, res)
	})
}

// KeyCount is a presence count under a key: a region code, a day or a month.
type KeyCount struct {
	Key string `json:"key"`
	N   int64  `json:"n"`
}

// PresencesResponse is the answer of Presences.
type PresencesResponse struct {
	From    string `json:"from"`
	To      string `json:"to"`
	GroupBy string `json:"group_by"`
	Report
	Total int64      `json:"total"`
	Items []KeyCount `json:"items"`
}

// Presences answers the presences from from to to inclusive grouped by
// groupBy: "region" (the regions that answered, in code order), "day" or
// "month" (every day or month of the range, zeros included).
func (f *Fanout) Presences(ctx context.Context, req Request, from, to time.Time, groupBy string) (*Answer, string, error) {
	key := "presences " + from.Format(time.DateOnly) + " " + to.Format(time.DateOnly) + " " + groupBy
	return f.answer(ctx, req, key, func(ctx context.Context) (*Answer, error) {
		l := fanOut(ctx, f, req, func(ctx context.Context, sh *shardmap.Shard, sc regions.Scope) ([]registry.DayCount, error) {
			if groupBy == "day" {
				return registry.PresencesByDay(ctx, sh, sc, from, to)
			}
			return registry.PresencesByMonth(ctx, sh, sc, from, to)
		})
		res := PresencesResponse{From: from.Format(time.DateOnly), To: to.Format(time.DateOnly), GroupBy: groupBy,
			Report: l.Report, Items: []KeyCount{}}
		// Every key of the range, zeros included, in order.
		index := map[string]int{}
		add := func(k string) {
			index[k] = len(res.Items)
			res.Items = append(res.Items, KeyCount{Key: k})
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
		return finish(ctx, f, req, l, res)
	})
}

// ListResponse is one page of a list merged across regions.
type ListResponse[T any] struct {
	registry.List[T]
	Report
}

// page is one region's page of a list and the region's total.
type page[T any] struct {
	items []T
	total int64
}

// rows returns the page's items, the rows its leg read.
func (p page[T]) rows() int { return len(p.items) }

// Expiring answers the ATTIVA concessions of every region whose effective
// end (valid_to, or the legal extension) falls from from to until, soonest
// first, ordered by (effective_to, id) and
// paged with next_cursor (pg.Offset is not used). A cursor the list did not
// issue is registry.ErrBadCursor.
func (f *Fanout) Expiring(ctx context.Context, req Request, from, until time.Time, pg registry.Page) (*Answer, string, error) {
	key := "expiring " + from.Format(time.DateOnly) + " " + until.Format(time.DateOnly) + " " + strconv.Itoa(pg.Limit) + " " + pg.Cursor
	return f.answer(ctx, req, key, func(ctx context.Context) (*Answer, error) {
		l := fanOut(ctx, f, req, func(ctx context.Context, sh *shardmap.Shard, sc regions.Scope) (page[registry.Concession], error) {
			items, total, err := registry.ExpiringConcessions(ctx, sh, sc, from, until, pg.Cursor, pg.Limit+1)
			return page[registry.Concession]{items, total}, err
		})
		if err := l.requestErr(); err != nil {
			return nil, err
		}
		res := ListResponse[registry.Concession]{List: registry.List[registry.Concession]{Limit: pg.Limit}, Report: l.Report}
		var lists [][]registry.Concession
		for _, o := range l.ok {
			lists = append(lists, o.value.items)
			res.Total += o.value.total
		}
		res.Items = mergeSorted(lists, func(a, b registry.Concession) int {
			return compareKey(a.EffectiveTo, a.ID, b.EffectiveTo, b.ID)
		}, pg.Limit+1)
		if len(res.Items) > pg.Limit {
			res.Items = res.Items[:pg.Limit]
			res.NextCursor = registry.ExpiringCursor(res.Items[pg.Limit-1])
		}
		if res.Items == nil {
			res.Items = []registry.Concession{}
		}
		return finish(ctx, f, req, l, res)
	})
}

// Markets answers every region's markets matching filter, merged in (name,
// id) order (names compared byte by byte), with an exact total. An offset
// costs offset+limit+1 rows from every region; next_cursor costs limit+1 at
// any depth. A cursor the list did not issue is registry.ErrBadCursor.
func (f *Fanout) Markets(ctx context.Context, req Request, filter registry.MarketFilter, pg registry.Page) (*Answer, string, error) {
	key := "markets " + filter.Status + "\x00" + filter.Q + "\x00" + strconv.Itoa(pg.Limit) + " " + strconv.Itoa(pg.Offset) + " " + pg.Cursor
	return f.answer(ctx, req, key, func(ctx context.Context) (*Answer, error) {
		want := pg.Offset + pg.Limit + 1
		l := fanOut(ctx, f, req, func(ctx context.Context, sh *shardmap.Shard, sc regions.Scope) (page[registry.Market], error) {
			items, total, err := registry.MarketsByName(ctx, sh, sc, filter, pg.Cursor, want)
			return page[registry.Market]{items, total}, err
		})
		if err := l.requestErr(); err != nil {
			return nil, err
		}
		res := ListResponse[registry.Market]{List: registry.List[registry.Market]{Limit: pg.Limit, Offset: pg.Offset}, Report: l.Report}
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
		return finish(ctx, f, req, l, res)
	})
}

// VendorAppearance is the vendor as one region knows it.
type VendorAppearance struct {
	Region string `json:"region"`
	registry.VendorRegion
}

// VendorResponse is the answer of Vendor.
type VendorResponse struct {
	PartitaIVA string `json:"partita_iva"`
	Report
	AppearsIn         []VendorAppearance `json:"appears_in"`
	ConcessionsTotal  int64              `json:"concessions_total"`
	PresencesThisYear int64              `json:"presences_this_year"`
}

// Vendor answers the vendor with partita IVA piva in every region that
// knows it, with its concessions there and its presences since yearStart,
// and the national totals. A vendor that no region knows is
// registry.ErrNotFound, unless some region did not answer: then the answer
// is partial and empty.
func (f *Fanout) Vendor(ctx context.Context, req Request, piva string, yearStart time.Time) (*Answer, string, error) {
	key := "vendor " + piva + " " + yearStart.Format(time.DateOnly)
	return f.answer(ctx, req, key, func(ctx context.Context) (*Answer, error) {
		l := fanOut(ctx, f, req, func(ctx context.Context, sh *shardmap.Shard, sc regions.Scope) (*registry.VendorRegion, error) {
			v, err := registry.VendorInRegion(ctx, sh, sc, piva, yearStart)
			if errors.Is(err, registry.ErrNotFound) {
				return nil, nil // the region does not know the vendor: an answer
			}
			if err != nil {
				return nil, err
			}
			return &v, nil
		})
		res := VendorResponse{PartitaIVA: piva, Report: l.Report, AppearsIn: []VendorAppearance{}}
		for _, o := range l.ok {
			if o.value == nil {
				continue
			}
			res.AppearsIn = append(res.AppearsIn, VendorAppearance{Region: string(o.region), VendorRegion: *o.value})
			res.ConcessionsTotal += o.value.ConcessionsTotal
			res.PresencesThisYear += o.value.PresencesThisYear
		}
		if len(res.AppearsIn) == 0 && !res.Partial {
			return nil, registry.ErrNotFound
		}
		return finish(ctx, f, req, l, res)
	})
}
