package router

import (
	"context"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/registry"
	"github.com/dmshub/dmsrouter/shardmap"
)

// firstMarketDay is the earliest day a market day, or an absence, may
// name: the databases keep no earlier ones.
var firstMarketDay = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// marketDays is the answer of GET /v1/markets/{id}/days.
type marketDays struct {
	MarketID int64                `json:"market_id"`
	From     string               `json:"from"`
	To       string               `json:"to"`
	Items    []registry.MarketDay `json:"items"`
}

// listMarketDays is GET /v1/markets/{id}/days?from=&to=: the market's days
// from from to to (default: this calendar year in Europe/Rome, planned
// cancellations included), at most registry.MaxDayRange days. A day with
// presences and no record shows as HELD.
func (s *Server) listMarketDays(c *gin.Context) error {
	q := queryParams(c, "from", "to")
	today := s.today()
	from := q.date("from", time.Date(today.Year(), 1, 1, 0, 0, 0, 0, time.UTC))
	to := q.date("to", time.Date(today.Year(), 12, 31, 0, 0, 0, 0, time.UTC))
	switch {
	case to.Before(from):
		q.bad("to", "is before from")
	case to.Sub(from) >= registry.MaxDayRange*24*time.Hour:
		q.bad("to", "at most %d days after from", registry.MaxDayRange-1)
	}
	if err := q.err(); err != nil {
		return err
	}
	return readByID(s, c, func(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, id int64) (marketDays, error) {
		days, err := registry.ListMarketDays(ctx, sh, sc, id, from, to)
		if days == nil {
			days = []registry.MarketDay{}
		}
		return marketDays{MarketID: id, From: from.Format(time.DateOnly), To: to.Format(time.DateOnly), Items: days}, err
	})
}

// dayBody is the body of PUT /v1/markets/{id}/days/{date}, with the path's
// date.
type dayBody struct {
	Status *string `json:"status"`
	Reason *string `json:"reason"`
	date   string
}

// marketDay is a checked market-day write.
type marketDay struct {
	day            time.Time
	status, reason string
}

// setMarketDay is PUT /v1/markets/{id}/days/{date} {status, reason}: the
// office records that the market is held (HELD) or cancelled (CANCELLED,
// with a reason such as bad weather) that day, also ahead of time, up to a
// year. 201 when the day had no record, else 200.
func (s *Server) setMarketDay(c *gin.Context) error {
	return write(s, c, toPathID, withPathDate(readJSON[dayBody], func(b *dayBody) *string { return &b.date }),
		s.checkMarketDay,
		func(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, w registry.Write, id int64, in marketDay) (registry.Result[registry.MarketDay], error) {
			return registry.SetMarketDay(ctx, sh, sc, w, id, in.day, in.status, in.reason)
		})
}

func (s *Server) checkMarketDay(k *checks, req writeReq, b *dayBody) (marketDay, regions.Code, error) {
	in := marketDay{
		day:    pathDay(k, b.date),
		status: need(k, "status", b.Status, oneOf(registry.MarketDayStatuses...)),
		reason: optional(k, "reason", b.Reason, "", checkOptionalName),
	}
	if last := s.today().AddDate(1, 0, 0); in.day.After(last) {
		k.bad("date", "more than a year ahead: at most %s", last.Format(time.DateOnly))
	}
	if in.status == "CANCELLED" && checkName(in.reason) != "" {
		k.bad("reason", "required to cancel a market day: 1 to 200 characters, such as the weather alert")
	}
	return in, req.region, nil
}

// appelloBody is the body of POST /v1/markets/{id}/days/{date}/appello,
// with the path's date.
type appelloBody struct {
	At   *string `json:"at"`
	date string
}

// appello is a checked call.
type appello struct{ day, at time.Time }

// recordAppello is POST /v1/markets/{id}/days/{date}/appello {at}: the
// call of that market day, at time at (default now), which must be on that
// day in Europe/Rome and not in the future. From the call on, a
// spuntista's check-in is LATE. 201 with the day; 409 with rule
// market-day-cancelled on a cancelled day, call-made when the call was
// recorded already.
func (s *Server) recordAppello(c *gin.Context) error {
	return write(s, c, toPathID, withPathDate(readOptionalJSON[appelloBody], func(b *appelloBody) *string { return &b.date }),
		s.checkAppello,
		func(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, w registry.Write, id int64, in appello) (registry.Result[registry.MarketDay], error) {
			return registry.RecordAppello(ctx, sh, sc, w, id, in.day, in.at)
		})
}

func (s *Server) checkAppello(k *checks, req writeReq, b *appelloBody) (appello, regions.Code, error) {
	now := s.now()
	in := appello{day: s.pastPathDay(k, b.date), at: now}
	switch {
	case b.At != nil:
		t, err := time.Parse(time.RFC3339, *b.At)
		switch {
		case err != nil:
			k.bad("at", rfc3339Hint)
		case t.After(now):
			k.bad("at", "is in the future")
		case !in.day.IsZero() && !s.day(t).Equal(in.day):
			k.bad("at", "is not on the market day %s in Europe/Rome", b.date)
		default:
			in.at = t
		}
	case !in.day.IsZero() && !in.day.Equal(s.today()):
		k.bad("at", "required for a day other than today")
	}
	return in, req.region, nil
}

// pathDay returns the path's date, a day from 2000 on, or records it as
// the bad field "date" and returns the zero time.
func pathDay(k *checks, date string) time.Time {
	d, err := time.Parse(time.DateOnly, date)
	switch {
	case err != nil:
		k.bad("date", "want a date YYYY-MM-DD")
	case d.Before(firstMarketDay):
		k.bad("date", "before %s", firstMarketDay.Format(time.DateOnly))
	default:
		return d
	}
	return time.Time{}
}

// pastPathDay is pathDay for a day that is over or under way: not in the
// future.
func (s *Server) pastPathDay(k *checks, date string) time.Time {
	d := pathDay(k, date)
	if d.After(s.today()) {
		k.bad("date", "is in the future")
		return time.Time{}
	}
	return d
}

// withPathDate returns read, which also stores the path's :date in the
// body's field that date returns.
func withPathDate[B any](read func(*gin.Context, *B) (registry.Write, error), date func(*B) *string) func(*gin.Context, *B) (registry.Write, error) {
	return func(c *gin.Context, b *B) (registry.Write, error) {
		w, err := read(c, b)
		*date(b) = c.Param("date")
		return w, err
	}
}
