package registry

import (
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestNamed(t *testing.T) {
	tests := []struct {
		in, sql string
		names   []string
	}{
		{`SELECT @b::int, '@a in a literal', @a, @b -- @c in a comment`,
			`SELECT $1::int, '@a in a literal', $2, $1 -- @c in a comment`, []string{"b", "a"}},
		{`SELECT 'it''s @x', "@y", /* @z */ @w_1`, `SELECT 'it''s @x', "@y", /* @z */ $1`, []string{"w_1"}},
		{`SELECT @1, a@b`, `SELECT @1, a$1`, []string{"b"}},
		{`SELECT 1`, `SELECT 1`, nil},
	}
	for _, tt := range tests {
		s := named(tt.in)
		if s.sql != tt.sql || !slices.Equal(s.names, tt.names) {
			t.Errorf("named(%q) = %q %v, want %q %v", tt.in, s.sql, s.names, tt.sql, tt.names)
		}
	}
	s := named(`SELECT @b, @a`)
	if args := s.args(pgx.NamedArgs{"a": 1, "b": 2, "unused": 3}); !slices.Equal(args, []any{2, 1}) {
		t.Errorf("args = %v, want [2 1]", args)
	}
}

func TestVariants(t *testing.T) {
	v := newVariants([]string{"a = @a", "b = @b AND c = @c"}, func(on []string) string {
		return "SELECT 1 WHERE " + where(append([]string{"r = @r"}, on...)...)
	})
	tests := []struct {
		args pgx.NamedArgs
		sql  string
	}{
		{pgx.NamedArgs{"r": 1}, "SELECT 1 WHERE r = $1"},
		{pgx.NamedArgs{"r": 1, "a": nil}, "SELECT 1 WHERE r = $1 AND a = $2"},
		{pgx.NamedArgs{"r": 1, "b": 2}, "SELECT 1 WHERE r = $1"}, // c missing
		{pgx.NamedArgs{"r": 1, "b": 2, "c": 3, "a": 4}, "SELECT 1 WHERE r = $1 AND a = $2 AND b = $3 AND c = $4"},
	}
	for _, tt := range tests {
		if got := v.pick(tt.args).sql; got != tt.sql {
			t.Errorf("pick(%v) = %q, want %q", tt.args, got, tt.sql)
		}
	}
}
