package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
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
	// Result is what a refused request would have done, such as the
	// counts of a rejected presence batch.
	Result any `json:"result,omitempty"`
}

// FieldError names one bad input field and what is wrong with it.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
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

// Sentinel errors of the HTTP layer.
var (
	// errForbidden is a request that names something outside the caller's territory.
	errForbidden = errors.New("outside your territory")
	// errNotFound is a route or resource that does not exist.
	errNotFound = errors.New("not found")
)

// forbidden wraps errForbidden with what was asked for.
func forbidden(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errForbidden, fmt.Sprintf(format, args...))
}

// statusClientClosedRequest is the status logged for a request whose
// client disconnected before the answer (nginx's 499).
const statusClientClosedRequest = 499

// toProblem is the one table that maps errors to statuses. Client-facing
// text comes from the error only for client errors; anything unknown is a
// 500 whose detail stays in the log.
func toProblem(err error) (Problem, http.Header) {
	h := http.Header{}
	var bad *badRequestError
	var unavailable *shardmap.UnavailableError
	var timeout *shardmap.TimeoutError
	var partial *partialError
	var missing *registry.MissingError
	var conflict *registry.ConflictError
	var invalid *registry.InvalidError
	var rejected *registry.RejectedError
	switch {
	case errors.As(err, &bad):
		return Problem{Type: "/problems/bad-request", Title: "Bad request", Status: http.StatusBadRequest,
			Detail: "the request has invalid fields", Errors: bad.fields}, h
	case errors.Is(err, registry.ErrBadCursor):
		return Problem{Type: "/problems/bad-request", Title: "Bad request", Status: http.StatusBadRequest,
			Detail: "the cursor is not valid for this list", Errors: []FieldError{{Field: "cursor", Message: "not a cursor this list issued"}}}, h
	case errors.Is(err, auth.ErrUnauthenticated):
		h.Set("WWW-Authenticate", `Bearer realm="dmsrouter"`)
		return Problem{Type: "/problems/unauthenticated", Title: "Unauthenticated", Status: http.StatusUnauthorized,
			Detail: "a valid bearer token is required"}, h
	case errors.Is(err, errTooLarge):
		return Problem{Type: "/problems/too-large", Title: "Request too large", Status: http.StatusRequestEntityTooLarge,
			Detail: strings.TrimPrefix(err.Error(), errTooLarge.Error()+": ")}, h
	case errors.Is(err, errMediaType):
		return Problem{Type: "/problems/unsupported-media-type", Title: "Unsupported media type", Status: http.StatusUnsupportedMediaType,
			Detail: "send the body as application/json"}, h
	case errors.Is(err, errRoleReadOnly):
		return Problem{Type: "/problems/forbidden", Title: "Forbidden", Status: http.StatusForbidden, Detail: err.Error()}, h
	case errors.Is(err, registry.ErrOutsideScope):
		return Problem{Type: "/problems/forbidden", Title: "Forbidden", Status: http.StatusForbidden,
			Detail: "the row lies outside your territory"}, h
	case errors.As(err, &missing):
		return Problem{Type: "/problems/not-found", Title: "Not found", Status: http.StatusNotFound,
			Detail: "the body names something that does not exist in your territory",
			Errors: []FieldError{{Field: missing.Field, Message: "not found in your territory"}}}, h
	case errors.As(err, &conflict):
		return Problem{Type: "/problems/conflict", Title: "Conflict", Status: http.StatusConflict, Detail: conflict.Reason}, h
	case errors.Is(err, registry.ErrKeyReused):
		return Problem{Type: "/problems/idempotency-key-reused", Title: "Idempotency key reused", Status: http.StatusUnprocessableEntity,
			Detail: "this Idempotency-Key was used for a different request",
			Errors: []FieldError{{Field: "Idempotency-Key", Message: "already used for a different request"}}}, h
	case errors.As(err, &invalid):
		return Problem{Type: "/problems/unprocessable", Title: "Unprocessable request", Status: http.StatusUnprocessableEntity,
			Detail: "the request does not fit the data it names", Errors: []FieldError{{Field: invalid.Field, Message: invalid.Reason}}}, h
	case errors.As(err, &rejected):
		fields := make([]FieldError, len(rejected.Rows))
		for i, r := range rejected.Rows {
			fields[i] = FieldError{Field: fmt.Sprintf("rows[%d].%s", r.Row, r.Field), Message: r.Reason}
		}
		return Problem{Type: "/problems/batch-rejected", Title: "Batch rejected", Status: http.StatusUnprocessableEntity,
			Detail: "some rows were rejected, so none was written", Errors: fields, Result: rejected.Outcome}, h
	case errors.Is(err, errForbidden):
		return Problem{Type: "/problems/forbidden", Title: "Forbidden", Status: http.StatusForbidden, Detail: err.Error()}, h
	case errors.Is(err, registry.ErrNotFound), errors.Is(err, errNotFound):
		return Problem{Type: "/problems/not-found", Title: "Not found", Status: http.StatusNotFound}, h
	case errors.As(err, &partial):
		h.Set("Retry-After", retryAfter(partial.retryAfter))
		return Problem{Type: "/problems/regions-unavailable", Title: "Regions unavailable", Status: http.StatusServiceUnavailable,
			Detail: "these regions did not answer; retry later, or accept a partial answer", Regions: partial.missing}, h
	case errors.As(err, &unavailable):
		h.Set("Retry-After", retryAfter(unavailable.RetryAfter))
		return Problem{Type: "/problems/region-unavailable", Title: "Region unavailable", Status: http.StatusServiceUnavailable,
			Detail: "the database serving this region is unavailable; retry later"}, h
	case errors.Is(err, shardmap.ErrReadOnly):
		h.Set("Retry-After", "30")
		return Problem{Type: "/problems/region-read-only", Title: "Region read-only", Status: http.StatusServiceUnavailable,
			Detail: "the region is frozen for maintenance; retry later"}, h
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads this, but it is not our failure.
		return Problem{Type: "/problems/client-closed-request", Title: "Client closed request", Status: statusClientClosedRequest}, h
	case errors.As(err, &timeout), errors.Is(err, context.DeadlineExceeded):
		return Problem{Type: "/problems/timeout", Title: "Gateway timeout", Status: http.StatusGatewayTimeout,
			Detail: "the region's database did not answer in time"}, h
	}
	return Problem{Type: "/problems/internal", Title: "Internal server error", Status: http.StatusInternalServerError}, h
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
		if p.Status == http.StatusInternalServerError {
			level = slog.LevelError
		}
		s.log.LogAttrs(c.Request.Context(), level, "request failed",
			slog.String("request_id", c.GetString(ctxRequestID)), slog.String("error", err.Error()))
	}
	for k, v := range h {
		c.Writer.Header()[k] = v
	}
	c.Header("Content-Type", "application/problem+json")
	c.Status(p.Status)
	c.Writer.WriteHeaderNow()
	_ = jsonEncode(c.Writer, p)
	c.Abort()
}
