package router

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dmshub/dmsrouter/auth"
	"github.com/dmshub/dmsrouter/registry"
	"github.com/dmshub/dmsrouter/shardmap"
)

// problemTypes is every problem type the API can answer, sorted: the list
// the OpenAPI contract carries. A new row of problemTable with a new type
// must be added here, and to the contract.
var problemTypes = []string{
	"/problems/bad-request",
	"/problems/batch-rejected",
	"/problems/client-closed-request",
	"/problems/conflict",
	"/problems/cross-origin",
	"/problems/forbidden",
	"/problems/idempotency-key-reused",
	"/problems/internal",
	"/problems/method-not-allowed",
	"/problems/not-found",
	"/problems/overloaded",
	"/problems/rate-limited",
	"/problems/region-frozen",
	"/problems/region-moved",
	"/problems/region-read-only",
	"/problems/region-unavailable",
	"/problems/regions-unavailable",
	"/problems/request-timeout",
	"/problems/schema-mismatch",
	"/problems/timeout",
	"/problems/too-large",
	"/problems/unauthenticated",
	"/problems/unprocessable",
	"/problems/unsupported-media-type",
}

// TestProblemTypes checks that the table answers exactly the golden list
// of problem types.
func TestProblemTypes(t *testing.T) {
	got := []string{internalProblem.Type}
	for _, row := range problemTable {
		got = append(got, row.problem.Type)
	}
	slices.Sort(got)
	got = slices.Compact(got)
	if !slices.Equal(got, problemTypes) {
		t.Errorf("problem types = %q,\nwant %q", got, problemTypes)
	}
}

// TestToProblem maps an example error of every row, and errors of no row,
// to its problem. Every example matches at most one row, so the order of
// the table decides nothing, and every row has an example.
func TestToProblem(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		typ    string
		status int
		header string // a header the answer must carry
		field  string // a field the problem must name
	}{
		{"bad field", fmt.Errorf("read: %w", badField("limit", "too big")), "/problems/bad-request", 400, "", "limit"},
		{"bad cursor", fmt.Errorf("list markets: %w", registry.ErrBadCursor), "/problems/bad-request", 400, "", "cursor"},
		{"text the database cannot store", fmt.Errorf("list markets: %w", &pgconn.PgError{Code: "22021"}), "/problems/bad-request", 400, "", ""},
		{"unauthenticated", fmt.Errorf("%w: token expired", auth.ErrUnauthenticated), "/problems/unauthenticated", 401, "WWW-Authenticate", ""},
		{"too large", tooLarge("the body is over %d bytes", 10), "/problems/too-large", 413, "", ""},
		{"media type", errMediaType, "/problems/unsupported-media-type", 415, "", ""},
		{"outside the territory", forbidden("region 12 is outside territory region:03"), "/problems/forbidden", 403, "", ""},
		{"reading role", errRoleReadOnly, "/problems/forbidden", 403, "", ""},
		{"not an operator", errNotOperator, "/problems/forbidden", 403, "", ""},
		{"cross-site write", fmt.Errorf("%w: %w", errCrossOrigin, errors.New("cross-origin request detected from Sec-Fetch-Site header")), "/problems/cross-origin", 403, "", ""},
		{"row outside the scope", fmt.Errorf("create market: %w", registry.ErrOutsideScope), "/problems/forbidden", 403, "", ""},
		{"missing id in a body", fmt.Errorf("check in: %w", &registry.MissingError{Field: "vendor_id"}), "/problems/not-found", 404, "", "vendor_id"},
		{"conflict", &registry.ConflictError{Reason: "the stall is taken"}, "/problems/conflict", 409, "", ""},
		{"key reused", registry.ErrKeyReused, "/problems/idempotency-key-reused", 422, "", "Idempotency-Key"},
		{"invalid", &registry.InvalidError{Field: "stall_id", Reason: "a stall of another market"}, "/problems/unprocessable", 422, "", "stall_id"},
		{"batch rejected", &registry.RejectedError{Rows: []registry.RowError{{Row: 3, Field: "vendor_id", Reason: "not found"}}},
			"/problems/batch-rejected", 422, "", "rows[3].vendor_id"},
		{"not found", fmt.Errorf("get market: %w", registry.ErrNotFound), "/problems/not-found", 404, "", ""},
		{"no route", &pathNotFoundError{what: "no route GET /v1/foo"}, "/problems/not-found", 404, "", ""},
		{"method not allowed", errMethodNotAllowed, "/problems/method-not-allowed", 405, "", ""},
		{"regions missing", &partialError{missing: []string{"12"}, retryAfter: 1500 * time.Millisecond}, "/problems/regions-unavailable", 503, "Retry-After", ""},
		{"rate limited", &rateLimitedError{retryAfter: 300 * time.Millisecond}, "/problems/rate-limited", 429, "Retry-After", ""},
		{"shard unavailable", &shardmap.UnavailableError{Shard: "nw", RetryAfter: 5 * time.Second, Err: io.EOF}, "/problems/region-unavailable", 503, "Retry-After", ""},
		{"router at capacity", errAtCapacity, "/problems/overloaded", 503, "Retry-After", ""},
		{"pool overloaded", fmt.Errorf("list markets: shard nw primary: 24 calls in progress: %w", shardmap.ErrOverloaded), "/problems/overloaded", 503, "Retry-After", ""},
		{"read-only region", fmt.Errorf("shard nw: %w: %w", shardmap.ErrReadOnly, errors.New("SQLSTATE 25006")), "/problems/region-read-only", 503, "Retry-After", ""},
		{"schema mismatch", fmt.Errorf("shard nw: %w: %w", shardmap.ErrSchema, errors.New("SQLSTATE 42703")), "/problems/schema-mismatch", 503, "Retry-After", ""},
		{"region moved", fmt.Errorf("list markets: %w", &shardmap.FenceError{Shard: "nw", Region: "03", Err: shardmap.ErrNotOwned}), "/problems/region-moved", 503, "Retry-After", ""},
		{"region frozen", &shardmap.FenceError{Shard: "nw", Region: "03", Err: shardmap.ErrFrozen}, "/problems/region-frozen", 503, "Retry-After", ""},
		{"client went away", fmt.Errorf("list: %w", context.Canceled), "/problems/client-closed-request", 499, "", ""},
		{"body cut short", fmt.Errorf("%w: read body: unexpected EOF", errBodyCut), "/problems/client-closed-request", 499, "", ""},
		{"body too slow", fmt.Errorf("%w: read body: i/o timeout", errBodyTimeout), "/problems/request-timeout", 408, "Connection", ""},
		{"canceled past the deadline", errors.Join(context.DeadlineExceeded, context.Canceled), "/problems/client-closed-request", 499, "", ""},
		{"shard timeout", &shardmap.TimeoutError{Shard: "nw", Err: errors.New("statement timeout")}, "/problems/timeout", 504, "", ""},
		{"deadline", fmt.Errorf("fan-out: %w", context.DeadlineExceeded), "/problems/timeout", 504, "", ""},
		{"unknown error", errors.New("pq: relation does not exist"), "/problems/internal", 500, "", ""},
	}
	hit := make([]bool, len(problemTable))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rows []int
			for i, row := range problemTable {
				if row.match(tt.err) {
					rows = append(rows, i)
					hit[i] = true
				}
			}
			if len(rows) > 1 {
				t.Errorf("%v matches rows %v; the rows must be disjoint", tt.err, rows)
			}
			p, h := toProblem(tt.err)
			if p.Type != tt.typ || p.Status != tt.status {
				t.Errorf("toProblem(%v) = %s %d, want %s %d", tt.err, p.Type, p.Status, tt.typ, tt.status)
			}
			if p.Title == "" {
				t.Errorf("toProblem(%v) has no title", tt.err)
			}
			if tt.header != "" && h.Get(tt.header) == "" {
				t.Errorf("toProblem(%v) headers = %v, want %s", tt.err, h, tt.header)
			}
			if tt.field != "" && !slices.ContainsFunc(p.Errors, func(f FieldError) bool { return f.Field == tt.field }) {
				t.Errorf("toProblem(%v) fields = %v, want %s", tt.err, p.Errors, tt.field)
			}
			if p.Status == 500 && strings.Contains(p.Detail+p.Title, "relation") {
				t.Errorf("toProblem(%v) tells the client the internal error: %+v", tt.err, p)
			}
		})
	}
	for i, ok := range hit {
		if !ok {
			t.Errorf("row %d (%s) has no example", i, problemTable[i].problem.Type)
		}
	}
}
