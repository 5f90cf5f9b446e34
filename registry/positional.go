package registry

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Every statement of this package is written with named arguments (@name)
// and rewritten to positional ones ($1, $2, ...) once, when the package is
// initialized. Passed pgx.NamedArgs, pgx rewrites the text on every
// execution: for the check-in statement, about 4 KB, that was 9% of the
// router's CPU per check-in.

// statement is SQL whose named arguments were rewritten to positional ones.
type statement struct {
	sql   string
	names []string // the names of $1, $2, ...
}

// named rewrites the named arguments of sql as pgx.NamedArgs would: an @
// followed by a letter or underscore starts a name, except inside string
// literals, quoted identifiers and comments.
func named(sql string) statement {
	var (
		b     strings.Builder
		s     statement
		index = map[string]int{}
	)
	b.Grow(len(sql))
	for i := 0; i < len(sql); {
		if j := strings.IndexAny(sql[i:], `'"-/@`); j != 0 {
			if j < 0 {
				j = len(sql) - i
			}
			b.WriteString(sql[i : i+j])
			i += j
			continue
		}
		c := sql[i]
		switch {
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(sql) && sql[j] != c {
				j++
			}
			j = min(j+1, len(sql)) // a doubled quote is two literals in a row
			b.WriteString(sql[i:j])
			i = j
		case strings.HasPrefix(sql[i:], "--"):
			j := strings.IndexByte(sql[i:], '\n')
			if j < 0 {
				j = len(sql) - i
			}
			b.WriteString(sql[i : i+j])
			i += j
		case strings.HasPrefix(sql[i:], "/*"):
			j := strings.Index(sql[i+2:], "*/")
			if j < 0 {
				panic(fmt.Sprintf("registry: unterminated comment in %q", sql))
			}
			b.WriteString(sql[i : i+2+j+2])
			i += 2 + j + 2
		case c == '@' && i+1 < len(sql) && isNameStart(sql[i+1]):
			j := i + 1
			for j < len(sql) && (isNameStart(sql[j]) || sql[j] >= '0' && sql[j] <= '9') {
				j++
			}
			name := sql[i+1 : j]
			n, ok := index[name]
			if !ok {
				s.names = append(s.names, name)
				n = len(s.names)
				index[name] = n
			}
			b.WriteString("$" + strconv.Itoa(n))
			i = j
		default:
			b.WriteByte(c)
			i++
		}
	}
	s.sql = b.String()
	return s
}

func isNameStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// args returns the values of a in s's order, nil for a name a lacks.
func (s statement) args(a pgx.NamedArgs) []any {
	out := make([]any, len(s.names))
	for i, n := range s.names {
		out[i] = a[n]
	}
	return out
}

// query runs s with arguments a in tx.
func (s statement) query(ctx context.Context, tx pgx.Tx, a pgx.NamedArgs) (pgx.Rows, error) {
	return tx.Query(ctx, s.sql, s.args(a)...)
}

// queryRow runs s with arguments a in tx and returns its one row.
func (s statement) queryRow(ctx context.Context, tx pgx.Tx, a pgx.NamedArgs) pgx.Row {
	return tx.QueryRow(ctx, s.sql, s.args(a)...)
}

// exec runs s with arguments a in tx.
func (s statement) exec(ctx context.Context, tx pgx.Tx, a pgx.NamedArgs) (pgconn.CommandTag, error) {
	return tx.Exec(ctx, s.sql, s.args(a)...)
}

// queue adds s with arguments a to batch b.
func (s statement) queue(b *pgx.Batch, a pgx.NamedArgs) *pgx.QueuedQuery {
	return b.Queue(s.sql, s.args(a)...)
}

// queueFound queues s, a guard such as marketGuard, in b and sets *found
// to whether it returned a row: whether what it guards is in scope.
func (s statement) queueFound(b *pgx.Batch, a pgx.NamedArgs, found *bool) {
	s.queue(b, a).Query(func(rows pgx.Rows) error {
		*found = rows.Next()
		rows.Close()
		return rows.Err()
	})
}

// variants is a statement with optional parts (conditions of a WHERE
// clause, assignments of a SET clause), built once for every combination
// of them. A part applies when every argument it names is given.
type variants struct {
	parts [][]string  // the argument names of each optional part
	stmts []statement // by the bit set of the parts that apply
}

// newVariants returns the variants of the statement build writes from the
// optional parts that apply (the others are left out of the slice it is
// given, which keeps their order).
func newVariants(parts []string, build func(parts []string) string) variants {
	v := variants{stmts: make([]statement, 1<<len(parts))}
	for _, p := range parts {
		v.parts = append(v.parts, named(p).names)
	}
	for set := range v.stmts {
		var on []string
		for i, p := range parts {
			if set&(1<<i) != 0 {
				on = append(on, p)
			}
		}
		v.stmts[set] = named(build(on))
	}
	return v
}

// pick returns the variant whose parts are those that a gives arguments for.
func (v variants) pick(a pgx.NamedArgs) statement {
	set := 0
	for i, names := range v.parts {
		given := true
		for _, n := range names {
			_, ok := a[n]
			given = given && ok
		}
		if given {
			set |= 1 << i
		}
	}
	return v.stmts[set]
}

// where joins conditions with AND, TRUE when there are none.
func where(conds ...string) string {
	if len(conds) == 0 {
		return "TRUE"
	}
	return strings.Join(conds, " AND ")
}

// given adds v to a as name unless it is the zero value, which the filters
// of this package read as "no filter".
func given[T comparable](a pgx.NamedArgs, name string, v T) {
	var zero T
	if v != zero {
		a[name] = v
	}
}
