package router

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dmshub/dmsrouter/national"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/registry"
)

// The national endpoints: figures and lists over all 20 regions for
// national principals, each answered by package national (one fan-out,
// shared and cached). Every response carries "regions", the status of each
// region's leg, and "partial"; ?partial=false turns a partial answer into a
// 503 that names the missing regions.

// Limits of the national endpoints.
const (
	// maxNationalOffset caps ?offset= on the national market list. An offset
	// costs offset+limit+1 rows from every region (the merge cannot know in
	// advance which regions the skipped rows come from), so offset 1000 reads
	// up to 20 x 1101 rows; deeper pages continue with next_cursor, which
	// costs limit+1 rows per region at any depth.
	maxNationalOffset = 1000
	// maxPresenceDays bounds the range of /v1/national/presences and
	// /v1/national/market-days.
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

// dateRange returns the required parameters from and to, a range of at
// most maxPresenceDays days.
func dateRange(q *params) (from, to time.Time) {
	from, to = requiredDate(q, "from"), requiredDate(q, "to")
	if !from.IsZero() && !to.IsZero() {
		if to.Before(from) {
			q.bad("to", "must not be before from")
		} else if days := int(to.Sub(from).Hours()/24) + 1; days > maxPresenceDays {
			q.bad("to", "the range spans %d days, at most %d", days, maxPresenceDays)
		}
	}
	return from, to
}

// nationalRequest is what every national question of c carries: the one
// shard map snapshot all its legs read, the principal and the route.
func (s *Server) nationalRequest(c *gin.Context) national.Request {
	return national.Request{Map: s.shards.Map(), Holder: s.shards, Principal: principal(c), Route: c.FullPath()}
}

// partialError is a national answer that misses regions when the caller
// asked for all or nothing (?partial=false), or that no region answered.
type partialError struct {
	missing    []string
	retryAfter time.Duration
}

func (e *partialError) Error() string {
	return "regions did not answer: " + strings.Join(e.missing, ", ")
}

// writeNational writes the national answer a, which came from source. With
// complete set, an answer that misses regions is a *partialError; so is one
// that no region answered. A complete answer may be kept by the browser as
// long as the router's cache keeps it (national.cache_ttl); a partial one,
// which the router does not cache, may not.
func (s *Server) writeNational(c *gin.Context, complete bool, a *national.Answer, source string, err error) error {
	if err != nil {
		return err
	}
	if len(a.Missing) == len(regions.All()) || (complete && len(a.Missing) > 0) {
		return &partialError{missing: a.Missing, retryAfter: a.RetryAfter}
	}
	c.Header("X-Dms-National", source)
	if len(a.Missing) == 0 {
		c.Header("Cache-Control", cacheFor(s.national.CacheTTL()))
	}
	return writeBody(c, http.StatusOK, "application/json; charset=utf-8", a.Body)
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
	a, source, err := s.national.Summary(c.Request.Context(), s.nationalRequest(c), day)
	return s.writeNational(c, complete, a, source, err)
}

// nationalPresences serves GET /v1/national/presences?from=&to=&group_by=:
// the presences from from to to inclusive (at most 366 days) per region (in
// code order, the regions that answered), per day or per month (every day or
// month of the range, zeros included).
func (s *Server) nationalPresences(c *gin.Context) error {
	q := queryParams(c, "from", "to", "group_by", "partial")
	from, to := dateRange(q)
	groupBy := q.oneOf("group_by", "region", "day", "month")
	if groupBy == "" {
		groupBy = "region"
	}
	complete := completeParam(q)
	noPaging(q)
	if err := q.err(); err != nil {
		return err
	}
	a, source, err := s.national.Presences(c.Request.Context(), s.nationalRequest(c), from, to, groupBy)
	return s.writeNational(c, complete, a, source, err)
}

// nationalExpiring serves GET /v1/national/concessions/expiring
// ?within_days=90&limit=50&cursor=: the ATTIVA concessions of every region
// whose effective end (valid_to, or the legal extension) falls from today
// (in Rome) to within_days later, soonest first, ordered by (effective_to,
// id) and paged with next_cursor.
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
	from := s.today()
	a, source, err := s.national.Expiring(c.Request.Context(), s.nationalRequest(c), from, from.AddDate(0, 0, within), pg)
	return s.writeNational(c, complete, a, source, err)
}

// nationalMarkets serves GET /v1/markets without a region for a national
// principal: every region's markets matching f, merged in (name, id) order
// (names compared byte by byte), with an exact total. Offset works up to
// maxNationalOffset; next_cursor continues at any depth.
func (s *Server) nationalMarkets(c *gin.Context, f registry.MarketFilter, pg registry.Page, complete bool) error {
	if pg.Offset > maxNationalOffset {
		return badField("offset", "at most %d on the national list; continue with next_cursor", maxNationalOffset)
	}
	a, source, err := s.national.Markets(c.Request.Context(), s.nationalRequest(c), f, pg)
	return s.writeNational(c, complete, a, source, err)
}

// nationalVendor serves GET /v1/vendors?partita_iva= without a region for a
// national principal: the vendor in every region that knows it, with its
// concessions there and its presences this year (in Rome), and the national
// totals. A vendor that no region knows is not found, unless some region did
// not answer: then the answer is partial and empty.
func (s *Server) nationalVendor(c *gin.Context, piva string, complete bool) error {
	today := s.today()
	yearStart := time.Date(today.Year(), 1, 1, 0, 0, 0, 0, time.UTC)
	a, source, err := s.national.Vendor(c.Request.Context(), s.nationalRequest(c), piva, yearStart)
	return s.writeNational(c, complete, a, source, err)
}

// nationalDecadenza serves GET /v1/national/concessions/decadenza
// ?within_days=90: per region and in total, the ATTIVA concessions
// proposed for decadenza (awaiting an office), the ATTIVA or SOSPESA ones
// whose term, with its legal extension, ends from today (in Rome) to
// within_days later, and those running on a legal extension.
func (s *Server) nationalDecadenza(c *gin.Context) error {
	q := queryParams(c, "within_days", "partial")
	within := intParam(q, "within_days", 90, 0, maxWithinDays)
	complete := completeParam(q)
	noPaging(q)
	if err := q.err(); err != nil {
		return err
	}
	from := s.today()
	a, source, err := s.national.Decadenza(c.Request.Context(), s.nationalRequest(c), from, from.AddDate(0, 0, within))
	return s.writeNational(c, complete, a, source, err)
}

// nationalMarketDays serves GET /v1/national/market-days?from=&to=: per
// region and in total, the market days held (recorded, or with presences)
// and cancelled from from to to inclusive (at most 366 days), counted as
// (market, day) pairs.
func (s *Server) nationalMarketDays(c *gin.Context) error {
	q := queryParams(c, "from", "to", "partial")
	from, to := dateRange(q)
	complete := completeParam(q)
	noPaging(q)
	if err := q.err(); err != nil {
		return err
	}
	a, source, err := s.national.MarketDays(c.Request.Context(), s.nationalRequest(c), from, to)
	return s.writeNational(c, complete, a, source, err)
}
