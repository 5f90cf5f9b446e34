package shardmap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sony/gobreaker/v2"

	"github.com/dmshub/dmsrouter/regions"
)

// UnavailableError reports a shard that cannot serve: its breaker is open,
// or the database could not be reached or failed as infrastructure
// (connection refused, too many connections, shutdown). Clients may retry
// after RetryAfter.
type UnavailableError struct {
	Shard      string
	RetryAfter time.Duration
	Err        error
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("shard %s unavailable: %v", e.Shard, e.Err)
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// TimeoutError reports a shard query that ran out of time: the statement
// timeout, the request's deadline, or the acquire timeout of a busy pool.
type TimeoutError struct {
	Shard string
	Err   error
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("shard %s timed out: %v", e.Shard, e.Err)
}

func (e *TimeoutError) Unwrap() error { return e.Err }

// ErrOverloaded reports a call refused before it ran because its pool's
// connections were all in use and DatabaseConfig.MaxWaiting calls already
// waited for one: the router's own backlog, not a sick server, so it does
// not count against the breaker. Nothing was done; retry shortly.
var ErrOverloaded = errors.New("too many calls waiting for a connection")

// errPoolBusy marks a call that timed out waiting for a pooled connection
// (DatabaseConfig.AcquireTimeout): a *TimeoutError that the breaker does
// not count.
var errPoolBusy = errors.New("every connection of the pool in use")

// ErrReadOnly reports a write refused because the region's database is
// read-only (SQLSTATE 25006), as during a maintenance freeze.
var ErrReadOnly = errors.New("database is read-only")

// ErrSchema reports a statement that named a table, column, function or
// other object its database lacks (SQLSTATE 42P01, 42703, 42883, 42704),
// or a role the router switches to that its cluster lacks (22023, naming
// RegionReader or RowWriter), or the login role's right to read
// dms.shard_regions, which the read fence needs (42501): the shard's
// schema is not the one this router was built for, as when routers of a
// new version are rolled out before `dmsrouter migrate up`. The
// statement's transaction is rolled back, so nothing was written.
var ErrSchema = errors.New("the database's schema lacks an object this router uses")

func isSchemaMismatch(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "42P01", "42703", "42883", "42704": // undefined table, column, function, object
		return true
	case "22023": // invalid_parameter_value, as set_config('role', ...) reports a role that does not exist
		return strings.Contains(pgErr.Message, `"`+RowWriter+`"`) || strings.Contains(pgErr.Message, `"`+RegionReader+`"`)
	case "42501": // insufficient_privilege: the read fence reads dms.shard_regions, which migration 00010 lets the login role read
		return pgErr.Message == "permission denied for table shard_regions"
	}
	return false
}

// The fence's refusals (migration 00013, dms.fence): every scoped call
// checks, in the statement that sets its scope, that its database serves
// the region, so nothing of the call ran when it is refused. Both come
// wrapped in a *FenceError.
var (
	// ErrNotOwned reports a call refused because its database does not
	// serve the region (SQLSTATE DMF01): the region moved away, or has
	// not been switched there yet. The assignments this router holds are
	// stale; Holder.Run reloads them and tries the shard they then name.
	ErrNotOwned = errors.New("region not served by this database")
	// ErrFrozen reports a write refused because the region is frozen
	// for a move's switch (SQLSTATE DMF02); its reads go on. The freeze
	// lasts at most the move's --max-freeze.
	ErrFrozen = errors.New("region frozen for a move")
)

// FenceError is a scoped call refused by its database's fence: Err is
// ErrNotOwned or ErrFrozen. It is no infrastructure failure: a breaker
// does not count it.
type FenceError struct {
	Shard  string
	Region regions.Code
	Err    error // ErrNotOwned or ErrFrozen
	cause  error // the database's error
}

func (e *FenceError) Error() string {
	if e.cause == nil {
		return fmt.Sprintf("shard %s, region %s: %v", e.Shard, e.Region, e.Err)
	}
	return fmt.Sprintf("shard %s, region %s: %v: %v", e.Shard, e.Region, e.Err, e.cause)
}

// Unwrap returns the sentinel and the database's error.
func (e *FenceError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.Err}
	}
	return []error{e.Err, e.cause}
}

// fenceSentinel returns ErrNotOwned or ErrFrozen for an error of the
// fence, or nil.
func fenceSentinel(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return nil
	}
	switch pgErr.Code {
	case "DMF01":
		return ErrNotOwned
	case "DMF02":
		return ErrFrozen
	}
	return nil
}

// IsInfrastructure reports whether err is a failure of the database or the
// network rather than of the request: a connection that could not be
// established, a timeout, too many connections, a server shutting down.
// Only these trip a breaker. A canceled request, a missing row, a
// constraint violation, bad input and a read-only database are not
// infrastructure failures.
//
// A failure to connect is infrastructure whatever SQLSTATE the server sent
// with it: a login refused (28000, 28P01), a database that does not exist
// (3D000) or whose CONNECT right was revoked (42501) leave the region as
// unable to serve as a server that is down, so the connection error is
// looked at before the server's error inside it.
func IsInfrastructure(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	if isConnectFailure(err) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "57014": // query_canceled: the statement timeout
			return true
		case len(pgErr.Code) == 5 && (pgErr.Code[:2] == "08" || pgErr.Code[:2] == "53" || pgErr.Code[:2] == "58"):
			return true // connection exception, insufficient resources, system error
		case pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03":
			return true // admin_shutdown, crash_shutdown, cannot_connect_now
		}
		return false
	}
	var netErr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded),
		pgconn.Timeout(err),
		errors.As(err, &netErr),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed):
		return true
	}
	// pgx reports a connection lost mid-query with unexported error types;
	// SafeToRetry and a closed connection are the signals it exports.
	return pgconn.SafeToRetry(err)
}

// isConnectFailure reports whether err is a failure to establish a
// connection (pgx's *pgconn.ConnectError), not one of a canceled request.
func isConnectFailure(err error) bool {
	var connectErr *pgconn.ConnectError
	return errors.As(err, &connectErr) && !errors.Is(err, context.Canceled)
}

func isTimeout(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "57014"
	}
	return errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err)
}

func isReadOnly(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "25006"
}

// classify wraps an error returned by a shard operation in scope sc so
// that callers can tell infrastructure failures (UnavailableError,
// TimeoutError), a read-only database (ErrReadOnly), a schema that lacks
// what a statement names (ErrSchema) and the fence's
// refusals (FenceError) from the request's own errors, which pass through
// unchanged.
func (s *Shard) classify(err error, sc regions.Scope) error {
	switch {
	case err == nil:
		return nil
	case fenceSentinel(err) != nil:
		return &FenceError{Shard: s.name, Region: sc.Region, Err: fenceSentinel(err), cause: err}
	case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
		return &UnavailableError{Shard: s.name, RetryAfter: s.openTimeout, Err: err}
	case errors.Is(err, context.Canceled):
		return err
	case isConnectFailure(err):
		// Also a connection that timed out: the region cannot serve, and
		// the answer is 503 with Retry-After rather than a 504.
		return &UnavailableError{Shard: s.name, RetryAfter: s.openTimeout, Err: err}
	case isTimeout(err):
		return &TimeoutError{Shard: s.name, Err: err}
	case isReadOnly(err):
		return fmt.Errorf("shard %s: %w: %w", s.name, ErrReadOnly, err)
	case isSchemaMismatch(err):
		return fmt.Errorf("shard %s: %w: %w", s.name, ErrSchema, err)
	case IsInfrastructure(err):
		return &UnavailableError{Shard: s.name, RetryAfter: s.openTimeout, Err: err}
	}
	return err
}
