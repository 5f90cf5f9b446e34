package router

import (
	"slices"
	"strings"
)

// The API's deprecated spellings. Until issue 15 the markets' statuses and
// the stalls' types and statuses were lower case (active, libero, fisso),
// and a vendor's status was the body key stato. Requests may still use
// them until 2027-06-30 (the README's "Deprecated spellings"); answers
// never do, and the databases hold only the current spellings (migration
// 00012). Each enumerated field with old spellings has one function here
// that returns its current spelling; the handlers pass the field's query
// parameter and body values through it before checking them.

// marketStatus returns a market status in its current spelling: ACTIVE for
// the deprecated active, INACTIVE for inactive.
func marketStatus(s string) string { return respell(s, "active", "inactive") }

// stallType returns a stall type in its current spelling: FISSO for the
// deprecated fisso, and so on.
func stallType(s string) string { return respell(s, "fisso", "spunta", "straordinario") }

// stallStatus returns a stall status in its current spelling: LIBERO for
// the deprecated libero, and so on.
func stallStatus(s string) string { return respell(s, "libero", "occupato", "riservato") }

// respell returns s upper case when it is one of the deprecated lower-case
// spellings old, else s unchanged (a bad value stays bad).
func respell(s string, old ...string) string {
	if slices.Contains(old, s) {
		return strings.ToUpper(s)
	}
	return s
}

// respelled returns a create body's value v in the current spelling of
// spell, nil when the body leaves it out.
func respelled(v *string, spell func(string) string) *string {
	if v == nil {
		return nil
	}
	s := spell(*v)
	return &s
}

// respelled returns a PATCH body's field o with its value in the current
// spelling of spell.
func (o opt[T]) respelled(spell func(T) T) opt[T] {
	o.v = spell(o.v)
	return o
}

// renamedKey returns the key and value of a body's field key, or, when the
// body gives the field under its deprecated name old instead, old and that
// value; a body giving both is bad. given reports whether the body gives a
// value.
func renamedKey[F any](k *checks, key string, v F, old string, ov F, given func(F) bool) (string, F) {
	if !given(ov) {
		return key, v
	}
	if given(v) {
		k.bad(old, "the deprecated name of %s: give only %s", key, key)
	}
	return old, ov
}

// present reports whether a create body gives a field.
func present[T any](v *T) bool { return v != nil }

// present reports whether a PATCH body gives the field.
func (o opt[T]) present() bool { return o.set }
