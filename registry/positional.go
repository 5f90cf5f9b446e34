package registry

import (
	"context"
	"fmt"
	"regexp"

	"github.com/jackc/pgx/v5"
)

// positional is a statement whose named arguments (@name) were rewritten
// to positional ones ($1, $2, ...) once. Passed pgx.NamedArgs, pgx rewrites
// the text on every execution: for the check-in statement, about 4 KB,
// that was 9% of the router's CPU per check-in.
type positional struct {
	sql   string
	names []string // the names of $1, $2, ...
}

// namedArg matches what pgx reads as a named argument; pgx's own lexer
// decides which matches are arguments (not in literals or comments).
var namedArg = regexp.MustCompile(`@([a-zA-Z_][a-zA-Z0-9_]*)`)

// rewriteNamed rewrites sql's named arguments as pgx.NamedArgs would.
func rewriteNamed(sql string) positional {
	names := pgx.NamedArgs{}
	for _, m := range namedArg.FindAllStringSubmatch(sql, -1) {
		names[m[1]] = m[1]
	}
	out, order, err := names.RewriteQuery(context.Background(), nil, sql, nil)
	if err != nil {
		// The statements are constants of this package: a test runs them all.
		panic(fmt.Sprintf("registry: rewrite named arguments: %v", err))
	}
	p := positional{sql: out}
	for _, n := range order {
		p.names = append(p.names, n.(string))
	}
	return p
}

// args returns the values of named in p's order, nil for a name it lacks.
func (p positional) args(named pgx.NamedArgs) []any {
	out := make([]any, len(p.names))
	for i, n := range p.names {
		out[i] = named[n]
	}
	return out
}
