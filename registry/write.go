package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// Actor is who makes a write: the audit log records its User and Role, and
// an Idempotency-Key belongs to all three, so that only the same principal
// replays it.
type Actor struct {
	User      string // the principal's subject
	Role      string
	Territory string // the principal's territory, as regions.Territory.String gives it
}

// Write describes one write request: who makes it and, when the client sent
// an Idempotency-Key, the key and a fingerprint of the request (method, path
// and body) that a retry must match.
type Write struct {
	Actor       Actor
	Key         string
	Fingerprint []byte
}

// Result is the outcome of a write: the value written or found, whether the
// request created something, and whether it is the stored outcome of an
// earlier request with the same Idempotency-Key, replayed.
type Result[T any] struct {
	Value    T
	Created  bool
	Replayed bool
}

// Errors of the write paths. Each is returned before anything is written,
// or rolls back everything the transaction wrote.
var (
	// ErrKeyReused reports an Idempotency-Key already used by the same
	// principal in the same region for a different request.
	ErrKeyReused = errors.New("idempotency key already used for a different request")
	// ErrOutsideScope reports a row that row-level security refused to
	// write: the router let through a write outside the caller's scope,
	// and the database caught it.
	ErrOutsideScope = errors.New("row outside the caller's scope")
)

// ConflictError reports a write that the current state refuses: a
// duplicate code, an overlapping concession, a suspended concession holder
// checking in, a transition that the status does not allow. Reason is meant
// for the client.
type ConflictError struct {
	Reason string
	// Rule names the market-day rule that refused the write (such as
	// "concession-cap" or "market-day-cancelled"), for clients that act on
	// it; empty for the other conflicts. docs/domain.md lists the rules.
	Rule string
}

func (e *ConflictError) Error() string { return "conflict: " + e.Reason }

func conflict(format string, args ...any) error {
	return &ConflictError{Reason: fmt.Sprintf(format, args...)}
}

// ruleConflict is a conflict with a market-day rule named rule.
func ruleConflict(rule, format string, args ...any) error {
	return &ConflictError{Reason: fmt.Sprintf(format, args...), Rule: rule}
}

// MissingError reports an id named in a request body that does not exist
// inside the caller's scope. It wraps ErrNotFound.
type MissingError struct {
	Field string
}

func (e *MissingError) Error() string { return e.Field + ": not found" }
func (e *MissingError) Unwrap() error { return ErrNotFound }

// InvalidError reports a request whose fields are well-formed but do not fit
// the data they refer to, such as a stall of another market. Field names
// the field; Reason is meant for the client.
type InvalidError struct {
	Field  string
	Reason string
}

func (e *InvalidError) Error() string { return e.Field + ": " + e.Reason }

// writeMode is the access mode of write transactions: the database's
// default. An explicit READ WRITE would override default_transaction_read_only
// and so write through a region frozen for maintenance; with the default,
// a frozen region refuses the write with SQLSTATE 25006.
const writeMode pgx.TxAccessMode = ""

// maxAttempts bounds how often a write transaction that lost a race
// (a deadlock, a serialization failure, a batch overtaken by a concurrent
// insert) is run again.
const maxAttempts = 3

// errRetry makes write run its transaction again.
var errRetry = errors.New("transaction lost a race; run it again")

// write runs fn in one write transaction on sh in scope sc. With an
// Idempotency-Key, the key is claimed first in the same transaction: a key
// already stored with the same fingerprint returns the stored outcome
// (Replayed) without calling fn, a key stored with another fingerprint is
// ErrKeyReused, and a key that a concurrent request holds waits for it. The
// outcome of fn is stored with the key before the commit, so the write and
// its key land together or not at all; a failed write leaves no key, and a
// retry runs again.
func write[T any](ctx context.Context, sh *shardmap.Shard, sc regions.Scope, w Write, fn func(tx pgx.Tx) (T, bool, error)) (Result[T], error) {
	var res Result[T]
	var err error
	for attempt := 1; ; attempt++ {
		err = sh.Tx(ctx, sc, writeMode, func(tx pgx.Tx) error {
			res = Result[T]{}
			if w.Key != "" {
				replayed, err := claimKey(ctx, tx, sc, w, &res)
				if err != nil || replayed {
					return err
				}
			}
			v, created, err := fn(tx)
			if err != nil {
				return err
			}
			res.Value, res.Created = v, created
			if w.Key == "" {
				return nil
			}
			body, err := marshal(v)
			if err != nil {
				return err
			}
			_, err = keepKeySQL.exec(ctx, tx, keyArgs(sc, w, pgx.NamedArgs{"created": created, "response": string(body)}))
			return err
		})
		if attempt < maxAttempts && (errors.Is(err, errRetry) || isPgCode(err, "40001", "40P01")) {
			continue
		}
		break
	}
	return res, mapError(err)
}

// The statements of an Idempotency-Key (see keyArgs): claimKeySQL stores
// it before the write, with no response yet, unless it is stored already;
// readKeySQL reads it; keepKeySQL stores the outcome of the write with it.
// A key belongs to a region and a whole principal (keyMatchSQL), and
// row-level security shows it only in the scope it was stored in
// (migration 00011), so another principal's key is another key, never a
// replay.
var (
	claimKeySQL = named(`INSERT INTO idempotency_keys (region_id, user_sub, role, territory, key, fingerprint, created, response)
		VALUES (@region, @key_user, @key_role, @key_territory, @key, @fingerprint, false, 'null') ON CONFLICT DO NOTHING`)
	readKeySQL = named(`SELECT fingerprint, created, response::text FROM idempotency_keys WHERE ` + keyMatchSQL)
	keepKeySQL = named(`UPDATE idempotency_keys SET created = @created, response = @response WHERE ` + keyMatchSQL)
)

// keyMatchSQL matches the stored key of keyArgs.
const keyMatchSQL = `region_id = @region AND user_sub = @key_user AND role = @key_role
	AND territory = @key_territory AND key = @key`

// keyArgs returns the arguments of w's key in scope sc, and more: @region,
// the principal it belongs to (@key_user, @key_role, @key_territory), the
// @key and the request's @fingerprint.
func keyArgs(sc regions.Scope, w Write, more pgx.NamedArgs) pgx.NamedArgs {
	a := pgx.NamedArgs{"region": int16(sc.Region.Num()), "key_user": sc.User, "key_role": w.Actor.Role,
		"key_territory": w.Actor.Territory, "key": w.Key, "fingerprint": w.Fingerprint}
	for k, v := range more {
		a[k] = v
	}
	return a
}

// claimKey inserts w's key, or reads the outcome stored with it into res and
// reports true.
func claimKey[T any](ctx context.Context, tx pgx.Tx, sc regions.Scope, w Write, res *Result[T]) (bool, error) {
	a := keyArgs(sc, w, nil)
	tag, err := claimKeySQL.exec(ctx, tx, a)
	if err != nil || tag.RowsAffected() == 1 {
		return false, err
	}
	var (
		fp       []byte
		created  bool
		response string
	)
	err = readKeySQL.queryRow(ctx, tx, a).Scan(&fp, &created, &response)
	if err != nil {
		return false, fmt.Errorf("read idempotency key: %w", err)
	}
	if !bytes.Equal(fp, w.Fingerprint) {
		return false, ErrKeyReused
	}
	if err := json.Unmarshal([]byte(response), &res.Value); err != nil {
		return false, fmt.Errorf("replay idempotency key: %w", err)
	}
	res.Created, res.Replayed = created, true
	return true, nil
}

// marshal encodes v as the router writes it (no HTML escaping), so that a
// replayed body is byte for byte the first one.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// constraintConflicts are the client-facing reasons of unique and exclusion
// violations, by constraint.
var constraintConflicts = map[string]string{
	"markets_code_key":                    "a market with this code exists",
	"stalls_market_number":                "the market has a stall with this number",
	"vendors_partita_iva":                 "the region has a vendor with this partita IVA",
	"vendors_codice_fiscale":              "the region has a vendor with this codice fiscale",
	"concessions_one_active":              "another ATTIVA concession on this stall overlaps these dates",
	"vendor_presences_market_date_vendor": "the vendor has already checked in at this market on this day",
	"vendor_presences_market_date_stall":  "the stall is already taken on this day",
}

// scopeChecks are the triggers that refuse a row to a scope as row-level
// security would, naming themselves as the error's constraint.
var scopeChecks = map[string]bool{
	"vendors_stato_scope": true, // migration 00011
}

// mapError turns database errors that a request causes into this package's
// errors; everything else passes through unchanged.
func mapError(err error) error {
	var pgErr *pgconn.PgError
	if err == nil || errors.Is(err, shardmap.ErrReadOnly) || !errors.As(err, &pgErr) {
		return err
	}
	switch pgErr.Code {
	case "23505", "23P01": // unique_violation, exclusion_violation
		reason, ok := constraintConflicts[pgErr.ConstraintName]
		if !ok {
			reason = "the write conflicts with existing data"
		}
		return &ConflictError{Reason: reason}
	case "23503": // foreign_key_violation
		return &ConflictError{Reason: "a referenced row does not exist"}
	case "23514": // check_violation
		return &InvalidError{Field: checkField(pgErr.ConstraintName), Reason: "value out of range"}
	case "42501": // insufficient_privilege: row-level security or a scope check refused the row, or a missing grant
		if strings.Contains(pgErr.Message, "row-level security") || scopeChecks[pgErr.ConstraintName] {
			return fmt.Errorf("%w: %w", ErrOutsideScope, err)
		}
	}
	return err
}

// checkField guesses the field of a check constraint from its name, such as
// "stalls_area_mq_check".
func checkField(constraint string) string {
	for _, t := range []string{"markets_", "stalls_", "vendors_", "concessions_", "vendor_presences_"} {
		if rest, ok := strings.CutPrefix(constraint, t); ok {
			if f, ok := strings.CutSuffix(rest, "_check"); ok && f != "" {
				return f
			}
		}
	}
	return "body"
}

// isPgConstraint reports whether err is a PostgreSQL error about constraint name.
func isPgConstraint(err error, name string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.ConstraintName == name
}

func isPgCode(err error, codes ...string) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	for _, c := range codes {
		if pgErr.Code == c {
			return true
		}
	}
	return false
}

// writeArgs returns the named arguments every write statement uses: the
// region, and the user and role its audit rows record.
func writeArgs(sc regions.Scope, w Write, more pgx.NamedArgs) pgx.NamedArgs {
	args := pgx.NamedArgs{"region": int16(sc.Region.Num()), "user": w.Actor.User, "role": w.Actor.Role}
	for k, v := range more {
		args[k] = v
	}
	return args
}

// auditCTE returns a common table expression called name that records one
// audit_log row per row of from, which must select entity_id, before and
// after (jsonb) in that order, as in "n.id, NULL, to_jsonb(n) FROM ins n".
// Its statement needs the named arguments of writeArgs.
func auditCTE(name, action, entity, from string) string {
	return name + ` AS (
		INSERT INTO audit_log (id, region_id, user_sub, role, action, entity, entity_id, before, after)
		SELECT dms.next_id('audit_log', @region::smallint), @region::smallint, @user, @role, '` + action + `', '` + entity + `', ` + from + `
	)`
}

// collectOne reads the single row of rows into a T, or ErrNotFound.
func collectOne[T any](rows pgx.Rows, err error) (T, error) {
	var zero T
	if err != nil {
		return zero, err
	}
	v, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[T])
	if errors.Is(err, pgx.ErrNoRows) {
		return zero, ErrNotFound
	}
	return v, err
}
