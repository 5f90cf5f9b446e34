package router

import (
	"context"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/dmshub/dmsrouter/auth"
	"github.com/dmshub/dmsrouter/registry"
	"github.com/dmshub/dmsrouter/shardmap"
)

// Problem is an RFC 9457 problem detail, the body of every error response.
type Problem struct {
	Type    string       `json:"type"`
	Title   string       `json:"title"`
	Status  int          `json:"status"`
	Detail  string       `json:"detail,omitempty"`
	Errors  []FieldError `json:"errors,omitempty"`
	Regions []string     `json:"regions,omitempty"`
	// Rule names the market-day rule a 409 broke (docs/domain.md).
	Rule string `json:"rule,omitempty"`
	// Result is what a refused request would have done, such as the
	// counts of a rejected presence batch.
	Result any `json:"result,omitempty"`
}

// FieldError names one bad input field and what is wrong with it, and the
// market-day rule that refused it when one did (a batch row on a
// cancelled day).
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
	Rule    string `json:"rule,omitempty"`
}

// badRequestError is bad input: one or more fields that do not parse or
// are not allowed.
type badRequestError struct{ fields []FieldError }

func (e *badRequestError) Error() string {
	return fmt.Sprintf("bad request: %v", e.fields)
}

func badField(field, format string, args ...any) error {
	return &badRequestError{fields: []FieldError{{Field: field, Message: fmt.Sprintf(format, args...)}}}
}

// Sentinel errors of the HTTP layer. A route or row that does not exist is
// registry.ErrNotFound, the one not-found sentinel.
var (
	// errForbidden is a request that names something outside the caller's territory.
	errForbidden = errors.New("outside your territory")
	// errMethodNotAllowed is a known route asked with a method it does not serve.
	errMethodNotAllowed = errors.New("method not allowed")
)

// pathNotFoundError is a path that names nothing: no route, no problem
// type. Its text, written for the client, says what; it wraps
// registry.ErrNotFound.
type pathNotFoundError struct{ what string }

func (e *pathNotFoundError) Error() string { return e.what }
func (e *pathNotFoundError) Unwrap() error { return registry.ErrNotFound }

// noRoute is the error of a request that no route serves.
func noRoute(c *gin.Context) error {
	return &pathNotFoundError{what: "no route " + clip(c.Request.Method, 20) + " " + clip(c.Request.URL.Path, 200)}
}

// clip returns s cut to at most n bytes, on a character boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "..."
}

// forbidden wraps errForbidden with what was asked for.
func forbidden(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errForbidden, fmt.Sprintf(format, args...))
}

// statusClientClosedRequest is the status logged for a request whose
// client disconnected before the answer (nginx's 499).
const statusClientClosedRequest = 499

// problemRow answers the errors match accepts with problem, completed by
// fill from the error when the answer depends on it.
type problemRow struct {
	match   func(error) bool
	problem Problem
	fill    func(err error, p *Problem, h http.Header)
}

// is matches errors that wrap one of targets.
func is(targets ...error) func(error) bool {
	return func(err error) bool {
		for _, t := range targets {
			if errors.Is(err, t) {
				return true
			}
		}
		return false
	}
}

// as matches errors that wrap a T.
func as[T error]() func(error) bool {
	return func(err error) bool {
		var t T
		return errors.As(err, &t)
	}
}

// sqlState matches database errors with one of the SQLSTATE codes, through
// the SQLState method of the driver's error, so no pgx type reaches the
// router.
func sqlState(codes ...string) func(error) bool {
	return func(err error) bool {
		var db interface{ SQLState() string }
		return errors.As(err, &db) && slices.Contains(codes, db.SQLState())
	}
}

// fillAs adapts a fill of the T its row matches.
func fillAs[T error](fill func(t T, p *Problem, h http.Header)) func(error, *Problem, http.Header) {
	return func(err error, p *Problem, h http.Header) {
		var t T
		errors.As(err, &t)
		fill(t, p, h)
	}
}

// detailFromError puts the error's text in the detail: only for errors
// whose text is written for the client.
func detailFromError(err error, p *Problem, _ http.Header) { p.Detail = err.Error() }

// problemTable is the one table that maps errors to statuses; it is never
// modified. The first row that matches answers, but the matches are
// disjoint, so the order decides nothing: a *registry.MissingError wraps
// registry.ErrNotFound and is left out of the plain not-found row, and a
// canceled request is never a timeout. Client-facing text comes from the
// error only for client errors; an error no row matches is a 500 whose
// detail stays in the log (see writeProblem).
var problemTable = []problemRow{
	{match: as[*badRequestError](),
		problem: Problem{Type: "/problems/bad-request", Title: "Bad request", Status: http.StatusBadRequest, Detail: "the request has invalid fields"},
		fill:    fillAs(func(bad *badRequestError, p *Problem, _ http.Header) { p.Errors = bad.fields })},
	{match: is(registry.ErrBadCursor),
		problem: Problem{Type: "/problems/bad-request", Title: "Bad request", Status: http.StatusBadRequest,
			Detail: "the cursor is not valid for this list", Errors: []FieldError{{Field: "cursor", Message: "not a cursor this list issued"}}}},
	{match: sqlState("22021", "22P05"), // character_not_in_repertoire, untranslatable_character
		// The edge refuses such text first (checkText, bodyText); this row
		// keeps text that slips past it a client error.
		problem: Problem{Type: "/problems/bad-request", Title: "Bad request", Status: http.StatusBadRequest,
			Detail: "the request holds text the database cannot store, such as a NUL character or invalid UTF-8"}},
	{match: is(auth.ErrUnauthenticated),
		problem: Problem{Type: "/problems/unauthenticated", Title: "Unauthenticated", Status: http.StatusUnauthorized, Detail: "a valid bearer token is required"},
		fill:    func(_ error, _ *Problem, h http.Header) { h.Set("WWW-Authenticate", `Bearer realm="dmsrouter"`) }},
	{match: is(errTooLarge),
		problem: Problem{Type: "/problems/too-large", Title: "Request too large", Status: http.StatusRequestEntityTooLarge},
		fill: func(err error, p *Problem, _ http.Header) {
			p.Detail = strings.TrimPrefix(err.Error(), errTooLarge.Error()+": ")
		}},
	{match: is(errMediaType),
		problem: Problem{Type: "/problems/unsupported-media-type", Title: "Unsupported media type", Status: http.StatusUnsupportedMediaType,
			Detail: "send the body as application/json"},
		fill: func(err error, p *Problem, _ http.Header) {
			if d, ok := strings.CutPrefix(err.Error(), errMediaType.Error()+": "); ok {
				p.Detail = d // the batch endpoint also takes text/csv
			}
		}},
	{match: is(errForbidden, errRoleReadOnly, errNotOperator, errVendorStatus, errRegolamentoScope),
		problem: Problem{Type: "/problems/forbidden", Title: "Forbidden", Status: http.StatusForbidden},
		fill:    detailFromError},
	{match: is(errCrossOrigin),
		problem: Problem{Type: "/problems/cross-origin", Title: "Cross-origin request refused", Status: http.StatusForbidden,
			Detail: "a browser sent this write from another site; only the API's own origin and the configured dashboards may write"}},
	{match: is(registry.ErrOutsideScope),
		problem: Problem{Type: "/problems/forbidden", Title: "Forbidden", Status: http.StatusForbidden, Detail: "the row lies outside your territory"}},
	{match: as[*registry.MissingError](),
		problem: Problem{Type: "/problems/not-found", Title: "Not found", Status: http.StatusNotFound,
			Detail: "the body names something that does not exist in your territory"},
		fill: fillAs(func(missing *registry.MissingError, p *Problem, _ http.Header) {
			p.Errors = []FieldError{{Field: missing.Field, Message: "not found in your territory"}}
		})},
	{match: as[*registry.ConflictError](),
		problem: Problem{Type: "/problems/conflict", Title: "Conflict", Status: http.StatusConflict},
		fill: fillAs(func(conflict *registry.ConflictError, p *Problem, _ http.Header) {
			p.Detail, p.Rule = conflict.Reason, conflict.Rule
		})},
	{match: is(registry.ErrKeyReused),
		problem: Problem{Type: "/problems/idempotency-key-reused", Title: "Idempotency key reused", Status: http.StatusUnprocessableEntity,
			Detail: "this Idempotency-Key was used for a different request",
			Errors: []FieldError{{Field: "Idempotency-Key", Message: "already used for a different request"}}}},
	{match: as[*registry.InvalidError](),
		problem: Problem{Type: "/problems/unprocessable", Title: "Unprocessable request", Status: http.StatusUnprocessableEntity,
			Detail: "the request does not fit the data it names"},
		fill: fillAs(func(invalid *registry.InvalidError, p *Problem, _ http.Header) {
			p.Errors = []FieldError{{Field: invalid.Field, Message: invalid.Reason}}
		})},
	{match: as[*registry.RejectedError](),
		problem: Problem{Type: "/problems/batch-rejected", Title: "Batch rejected", Status: http.StatusUnprocessableEntity,
			Detail: "some rows were rejected, so none was written"},
		fill: func(err error, p *Problem, _ http.Header) {
			var (
				rejected *registry.RejectedError
				csv      *linesError
			)
			errors.As(err, &rejected)
			errors.As(err, &csv)
			p.Errors = make([]FieldError, len(rejected.Rows))
			for i, r := range rejected.Rows {
				p.Errors[i] = FieldError{Field: fmt.Sprintf("rows[%d].%s", r.Row, r.Field), Message: r.Reason, Rule: r.Rule}
				if csv != nil {
					p.Errors[i].Field = csvField(csv.lines[r.Row], r.Field)
					if r.Earlier >= 0 {
						p.Errors[i].Message = strings.Replace(r.Reason, fmt.Sprintf("row %d ", r.Earlier),
							fmt.Sprintf("line %d ", csv.lines[r.Earlier]), 1)
					}
				}
			}
			p.Result = rejected.Outcome
		}},
	{match: notFound,
		problem: Problem{Type: "/problems/not-found", Title: "Not found", Status: http.StatusNotFound,
			Detail: "nothing with this id exists in your territory"},
		fill: func(err error, p *Problem, _ http.Header) {
			var path *pathNotFoundError
			if errors.As(err, &path) {
				p.Detail = path.Error()
			}
		}},
	{match: is(errMethodNotAllowed),
		problem: Problem{Type: "/problems/method-not-allowed", Title: "Method not allowed", Status: http.StatusMethodNotAllowed}},
	{match: as[*partialError](),
		problem: Problem{Type: "/problems/regions-unavailable", Title: "Regions unavailable", Status: http.StatusServiceUnavailable,
			Detail: "these regions did not answer; retry later, or accept a partial answer"},
		fill: fillAs(func(partial *partialError, p *Problem, h http.Header) {
			h.Set("Retry-After", retryAfter(partial.retryAfter))
			p.Regions = partial.missing
		})},
	{match: as[*rateLimitedError](),
		problem: Problem{Type: "/problems/rate-limited", Title: "Too many requests", Status: http.StatusTooManyRequests,
			Detail: "too many national requests from this principal; retry after Retry-After seconds"},
		fill: fillAs(func(limited *rateLimitedError, _ *Problem, h http.Header) {
			h.Set("Retry-After", retryAfter(limited.retryAfter))
		})},
	{match: is(errAtCapacity),
		problem: Problem{Type: "/problems/overloaded", Title: "Overloaded", Status: http.StatusServiceUnavailable,
			Detail: "the router is serving as many requests as it takes at once; nothing was done; retry after Retry-After seconds"},
		fill: func(_ error, _ *Problem, h http.Header) { h.Set("Retry-After", "1") }},
	{match: is(shardmap.ErrOverloaded),
		problem: Problem{Type: "/problems/overloaded", Title: "Overloaded", Status: http.StatusServiceUnavailable,
			Detail: "too many requests are waiting for the region's database; nothing was done; retry after Retry-After seconds"},
		fill: func(_ error, _ *Problem, h http.Header) { h.Set("Retry-After", "1") }},
	{match: as[*shardmap.UnavailableError](),
		problem: Problem{Type: "/problems/region-unavailable", Title: "Region unavailable", Status: http.StatusServiceUnavailable,
			Detail: "the database serving this region is unavailable; retry later"},
		fill: fillAs(func(unavailable *shardmap.UnavailableError, _ *Problem, h http.Header) {
			h.Set("Retry-After", retryAfter(unavailable.RetryAfter))
		})},
	{match: is(shardmap.ErrNotOwned),
		problem: Problem{Type: "/problems/region-moved", Title: "Region moved", Status: http.StatusServiceUnavailable,
			Detail: "the region moved to another database, which this router cannot reach yet; nothing was done; retry after Retry-After seconds"},
		fill: func(_ error, _ *Problem, h http.Header) { h.Set("Retry-After", "1") }},
	{match: is(shardmap.ErrFrozen),
		problem: Problem{Type: "/problems/region-frozen", Title: "Region frozen", Status: http.StatusServiceUnavailable,
			Detail: "the region is being switched to another database and refuses writes for at most a few seconds; nothing was written; retry after Retry-After seconds"},
		fill: func(_ error, _ *Problem, h http.Header) { h.Set("Retry-After", "1") }},
	{match: is(shardmap.ErrSchema),
		problem: Problem{Type: "/problems/schema-mismatch", Title: "Schema mismatch", Status: http.StatusServiceUnavailable,
			Detail: "the database serving this region lacks a table, column, function, role or right this router uses: its schema is not the one this router was built for (run dmsrouter migrate up); nothing was written"},
		fill: func(_ error, _ *Problem, h http.Header) { h.Set("Retry-After", "30") }},
	{match: is(shardmap.ErrReadOnly),
		problem: Problem{Type: "/problems/region-read-only", Title: "Region read-only", Status: http.StatusServiceUnavailable,
			Detail: "the region is frozen for maintenance; retry later"},
		fill: func(_ error, _ *Problem, h http.Header) { h.Set("Retry-After", "30") }},
	{match: is(errBodyTimeout),
		problem: Problem{Type: "/problems/request-timeout", Title: "Request timeout", Status: http.StatusRequestTimeout,
			Detail: "the request's body did not arrive in time"},
		// What is left of the body would be read as the next request.
		fill: func(_ error, _ *Problem, h http.Header) { h.Set("Connection", "close") }},
	{match: is(context.Canceled, errBodyCut),
		// The client went away; nobody reads this, but it is not our failure.
		problem: Problem{Type: "/problems/client-closed-request", Title: "Client closed request", Status: statusClientClosedRequest}},
	{match: timedOut,
		problem: Problem{Type: "/problems/timeout", Title: "Gateway timeout", Status: http.StatusGatewayTimeout,
			Detail: "the region's database did not answer in time"}},
}

// internalProblem answers an error that no row of problemTable matches.
var internalProblem = Problem{Type: "/problems/internal", Title: "Internal server error", Status: http.StatusInternalServerError}

// notFound matches a route or row that does not exist, but not an id named
// in a body (*registry.MissingError, which wraps registry.ErrNotFound and
// has a row of its own).
func notFound(err error) bool {
	var missing *registry.MissingError
	return errors.Is(err, registry.ErrNotFound) && !errors.As(err, &missing)
}

// timedOut matches a shard that ran out of time or a request past its
// deadline, but not a request its client canceled.
func timedOut(err error) bool {
	var timeout *shardmap.TimeoutError
	return (errors.As(err, &timeout) || errors.Is(err, context.DeadlineExceeded)) && !errors.Is(err, context.Canceled)
}

// toProblem answers err with the first row of problemTable that matches
// it, or with a 500.
func toProblem(err error) (Problem, http.Header) {
	h := http.Header{}
	for _, row := range problemTable {
		if row.match(err) {
			p := row.problem
			if row.fill != nil {
				row.fill(err, &p, h)
			}
			return p, h
		}
	}
	return internalProblem, h
}

func retryAfter(d interface{ Seconds() float64 }) string {
	s := int(math.Ceil(d.Seconds()))
	if s < 1 {
		s = 1
	}
	return strconv.Itoa(s)
}

// writeProblem writes err as problem+json, logging it when it is a server error.
func (s *Server) writeProblem(c *gin.Context, err error) {
	p, h := toProblem(err)
	if p.Status >= 500 {
		level := slog.LevelWarn
		if p.Status == http.StatusInternalServerError || errors.Is(err, shardmap.ErrSchema) {
			level = slog.LevelError // an operator must act
		}
		s.log.LogAttrs(c.Request.Context(), level, "request failed",
			slog.String("request_id", c.GetString(ctxRequestID)), slog.String("error", err.Error()))
	}
	for k, v := range h {
		c.Writer.Header()[k] = v
	}
	c.Header("Content-Type", "application/problem+json")
	c.Header("Cache-Control", cacheNoStore)
	c.Status(p.Status)
	c.Writer.WriteHeaderNow()
	_ = jsonEncode(c.Writer, p)
	c.Abort()
}

// problemAbout says what each problem type of problemTable means, for its
// page (problemPage). Every type the table answers has an entry.
var problemAbout = map[string]string{
	"/problems/bad-request":            "The request has invalid input: a path id, query parameter or body field that does not parse or is not allowed, or text holding a NUL character or invalid UTF-8. The errors list names each bad field; fix them and send the request again.",
	"/problems/batch-rejected":         "Some rows of a presence batch were rejected, so none was written. The errors list names each rejected row and field; result holds the counts.",
	"/problems/client-closed-request":  "The client closed the connection, or stopped sending the body, before the answer. Nobody reads this answer; it is logged with status 499.",
	"/problems/conflict":               "The write conflicts with stored data, such as a code or tax code already registered, or an overlapping ATTIVA concession. The detail says which.",
	"/problems/cross-origin":           "A browser sent a write (POST, PUT, PATCH, DELETE) from another site than the API's own and the configured dashboards (server.cors.allowed_origins), as its Sec-Fetch-Site or Origin header says: it may be a forged request riding on the dms_token cookie. Nothing was done. Send writes from the dashboard's own origin, or from a client that is not a browser.",
	"/problems/forbidden":              "The request names something outside the caller's territory, or the caller's role may not do it.",
	"/problems/idempotency-key-reused": "This Idempotency-Key was used before for a different request. Use a new key for a new request.",
	"/problems/internal":               "The server failed. The request id (X-Request-ID) finds the logged cause.",
	"/problems/method-not-allowed":     "The route exists, but not with this HTTP method.",
	"/problems/not-found":              "No route serves the path, or nothing with the id exists in the caller's territory (whether it exists elsewhere is not revealed).",
	"/problems/overloaded":             "The router refused the request at once, before doing anything: either it already served as many requests as it takes at once (server.max_in_flight), or as many were waiting for a connection to the region's database as it lets wait (database.max_waiting, beyond the pool's max_conns running), rather than let this one wait out database.acquire_timeout. Nothing was done: retry after Retry-After seconds (a write with the same Idempotency-Key).",
	"/problems/rate-limited":           "The caller made more national requests than its limit allows (national.rate_limit per second per principal, in bursts of national.rate_burst): each costs a query on every region's database. Retry after Retry-After seconds; regional routes are not limited.",
	"/problems/region-frozen":          "The region is being switched to another database by an online move and refuses writes, for at most the move's freeze (a few seconds); its reads go on. Nothing was written: retry after Retry-After seconds (with the same Idempotency-Key).",
	"/problems/region-moved":           "The region moved to another database and the router could not reach the one that serves it now, even after reloading the assignments. Nothing was written: retry after Retry-After seconds.",
	"/problems/region-read-only":       "The region's database is frozen for maintenance and refuses writes. Retry after Retry-After seconds.",
	"/problems/schema-mismatch":        "The region's database lacks a table, column, function, role or right this router uses: its schema is not the one the router was built for, usually because routers of a new version were rolled out before `dmsrouter migrate up`. Nothing was written. Operators: migrate the shards; clients: retry after Retry-After seconds.",
	"/problems/region-unavailable":     "The database serving the region is unavailable, or its circuit breaker is open. Retry after Retry-After seconds; other regions keep answering.",
	"/problems/regions-unavailable":    "Some regions of a national answer did not answer, and the request demanded every region (partial=false). The regions list names them; retry after Retry-After seconds.",
	"/problems/request-timeout":        "The request's body did not arrive within the server's read timeout. Send it again, faster.",
	"/problems/timeout":                "The region's database did not answer in time.",
	"/problems/too-large":              "The body is over its limit (4 MiB for a presence batch, 1 MiB for every other body), or the batch is over 10,000 rows.",
	"/problems/unauthenticated":        "A valid bearer token is required: Authorization: Bearer <jwt>, or the dms_token cookie.",
	"/problems/unprocessable":          "The request is well formed but does not fit the data it names, such as a stall of another market. The errors list names the field.",
	"/problems/unsupported-media-type": "A POST or PATCH must send Content-Type: application/json (charset utf-8, if any), even with an empty body.",
}

// problemPageOf returns the problem of type typ as problemTable (or
// internalProblem) answers it, and whether there is such a documented type.
func problemPageOf(typ string) (Problem, bool) {
	if _, ok := problemAbout[typ]; !ok {
		return Problem{}, false
	}
	if typ == internalProblem.Type {
		return internalProblem, true
	}
	for _, row := range problemTable {
		if row.problem.Type == typ {
			return row.problem, true
		}
	}
	return Problem{}, false
}

// problemPage is GET /problems/{name}: a short page saying what a problem
// type means, so that the type URIs of problem+json answers resolve. It
// needs no token.
func (s *Server) problemPage(c *gin.Context) error {
	typ := "/problems/" + c.Param("name")
	p, ok := problemPageOf(typ)
	if !ok {
		return &pathNotFoundError{what: "no problem type " + clip(typ, 100)}
	}
	title := html.EscapeString(p.Title)
	page := fmt.Sprintf("<!doctype html>\n<html lang=\"en\">\n<meta charset=\"utf-8\">\n<title>%s</title>\n<h1>%d %s</h1>\n<p>%s</p>\n<p>Answered as <code>application/problem+json</code> with <code>\"type\": \"%s\"</code>.</p>\n",
		title, p.Status, title, html.EscapeString(problemAbout[typ]), html.EscapeString(typ))
	c.Header("Cache-Control", "public, max-age=86400") // the same for everyone, changed only by a release
	return writeBody(c, http.StatusOK, "text/html; charset=utf-8", []byte(page))
}
