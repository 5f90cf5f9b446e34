package registry

import (
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestRewriteNamed(t *testing.T) {
	p := rewriteNamed(`SELECT @b::int, '@a in a literal', @a, @b -- @c in a comment`)
	if want := `SELECT $1::int, '@a in a literal', $2, $1 -- @c in a comment`; p.sql != want {
		t.Errorf("sql = %q, want %q", p.sql, want)
	}
	if want := []string{"b", "a"}; !slices.Equal(p.names, want) {
		t.Errorf("names = %v, want %v", p.names, want)
	}
	args := p.args(pgx.NamedArgs{"a": 1, "b": 2, "unused": 3})
	if !slices.Equal(args, []any{2, 1}) {
		t.Errorf("args = %v, want [2 1]", args)
	}
	// The check-in statements name every argument CheckInVendor gives.
	for _, s := range []positional{checkInSQL, checkInKeptSQL} {
		for _, n := range s.names {
			if !slices.Contains([]string{"market", "vendor", "stall", "date", "kind", "checkin", "region", "user", "role",
				"key_user", "key", "fingerprint"}, n) {
				t.Errorf("check-in statement names @%s, which CheckInVendor does not give", n)
			}
		}
	}
}
