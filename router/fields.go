package router

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/dmshub/dmsrouter/auth"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/registry"
)

// checks collects what is wrong with a write request's body: every bad
// field, so one response names them all, and a refusal of a well-formed
// body (such as a comune outside the territory), answered only when no
// field is bad.
type checks struct {
	errs    []FieldError
	refusal error
}

func (k *checks) bad(field, format string, args ...any) {
	k.errs = append(k.errs, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// refuse records err as the answer to the request when no field is bad.
func (k *checks) refuse(err error) {
	if k.refusal == nil {
		k.refusal = err
	}
}

// someChange records a PATCH body that sets none of its fields, unless a
// field is already bad.
func (k *checks) someChange(set ...bool) {
	if !slices.Contains(set, true) && len(k.errs) == 0 {
		k.bad("body", "names no field to change")
	}
}

// err returns the bad fields as one bad request, else the refusal, else nil.
func (k *checks) err() error {
	if len(k.errs) > 0 {
		return &badRequestError{fields: k.errs}
	}
	return k.refusal
}

// checkField records field as bad when check finds v wrong; a nil check
// accepts every value.
func checkField[T any](k *checks, field string, v T, check func(T) string) {
	if check == nil {
		return
	}
	if msg := check(v); msg != "" {
		k.bad(field, "%s", msg)
	}
}

// need returns a create body's required field v, checked by check; a
// missing field is bad, and its value the zero value.
func need[T any](k *checks, field string, v *T, check func(T) string) T {
	if v == nil {
		k.bad(field, "required")
		var zero T
		return zero
	}
	checkField(k, field, *v, check)
	return *v
}

// optional returns a create body's optional field v, checked by check, or
// def when the body leaves it out.
func optional[T any](k *checks, field string, v *T, def T, check func(T) string) T {
	if v := optionalPtr(k, field, v, check); v != nil {
		return *v
	}
	return def
}

// optionalPtr is optional for a field that the registry takes as a
// pointer, nil when the body leaves it out.
func optionalPtr[T any](k *checks, field string, v *T, check func(T) string) *T {
	if v != nil {
		checkField(k, field, *v, check)
	}
	return v
}

// opt is a field of a PATCH body: set when the body names it, null when
// its value is null.
type opt[T any] struct {
	set, null bool
	v         T
}

func (o *opt[T]) UnmarshalJSON(b []byte) error {
	o.set = true
	if string(b) == "null" {
		o.null = true
		return nil
	}
	return json.Unmarshal(b, &o.v)
}

// patchField turns a PATCH body's field into a registry field, refusing
// null for a field that cannot be empty; check validates a value.
func patchField[T any](k *checks, field string, o opt[T], check func(T) string) registry.Field[T] {
	switch {
	case !o.set:
		return registry.Field[T]{}
	case o.null:
		k.bad(field, "cannot be null")
		return registry.Field[T]{}
	}
	checkField(k, field, o.v, check)
	return registry.Field[T]{Set: true, V: o.v}
}

// nullableField is patchField for a field that may be set to null.
func nullableField[T any](k *checks, field string, o opt[T], check func(T) string) registry.Field[*T] {
	if !o.set {
		return registry.Field[*T]{}
	}
	if o.null {
		return registry.Field[*T]{Set: true}
	}
	checkField(k, field, o.v, check)
	v := o.v
	return registry.Field[*T]{Set: true, V: &v}
}

// Validators return "" for a good value, else what is wrong with it.

func checkName(s string) string {
	if strings.TrimSpace(s) == "" || len(s) > 200 {
		return "want 1 to 200 characters"
	}
	return ""
}

func checkOptionalName(s string) string {
	if len(s) > 200 {
		return "want at most 200 characters"
	}
	return ""
}

// checkAmount returns a validator of a non-negative (positive when
// positive) decimal with two decimals and at most max.
func checkAmount(positive bool, max float64) func(float64) string {
	return func(v float64) string {
		if math.IsNaN(v) || v < 0 || (positive && v == 0) || v > max {
			if positive {
				return fmt.Sprintf("want a number above 0 and at most %.2f", max)
			}
			return fmt.Sprintf("want a number from 0 to %.2f", max)
		}
		return ""
	}
}

// oneOf returns a validator of a value from a list, such as a status.
func oneOf(values ...string) func(string) string {
	return func(v string) string {
		for _, ok := range values {
			if v == ok {
				return ""
			}
		}
		return "must be one of " + strings.Join(values, ", ")
	}
}

// checkComune validates a comune's six-digit ISTAT code.
func checkComune(code string) string {
	if comuneRegion(code) == "" {
		return fmt.Sprintf("unknown comune %q: want the six-digit ISTAT code of a comune", code)
	}
	return ""
}

// comuneRegion returns the region of a comune, or "" for no comune.
func comuneRegion(code string) regions.Code { return orNone(regions.ComuneRegion(code)) }

// checkID validates an id named in a body.
func checkID(id int64) string {
	if idRegion(id) == "" {
		return "not an id"
	}
	return ""
}

// idRegion returns the region an id carries, or "" for no id.
func idRegion(id int64) regions.Code { return orNone(regions.IDRegion(id)) }

// orNone returns r, or "" when err says there is no region.
func orNone(r regions.Code, err error) regions.Code {
	if err != nil {
		return ""
	}
	return r
}

// checkDate validates a calendar day YYYY-MM-DD.
func checkDate(s string) string {
	if _, err := time.Parse(time.DateOnly, s); err != nil {
		return "want a date YYYY-MM-DD"
	}
	return ""
}

// calendarDay returns the day YYYY-MM-DD as UTC midnight, or the zero time
// when s is not a day (checkDate says why).
func calendarDay(s string) time.Time {
	d, _ := time.Parse(time.DateOnly, s)
	return d
}

// checkRegion validates a two-digit ISTAT region code.
func checkRegion(s string) string {
	if _, err := regions.ParseCode(s); err != nil {
		return fmt.Sprintf("unknown region %q: want a two-digit ISTAT code 01..20", s)
	}
	return ""
}

// sameRegion checks that an id named in a body lies in region r, the
// region the request writes: an id of a region outside the territory is
// forbidden, one of another region inside it is bad input.
func sameRegion(k *checks, p auth.Principal, r regions.Code, field string, id regions.Code) error {
	switch {
	case id == "":
		return nil
	case !p.Territory.Covers(id):
		return forbidden("%s names region %s, outside territory %s", field, id, p.Territory)
	case id != r:
		k.bad(field, "names region %s; this request writes region %s", id, r)
	}
	return nil
}
