// Package registry holds the domain queries of the regional databases:
// markets, stalls, vendors, concessions and presences, each read on one
// shard inside a scope that row-level security enforces too.
//
// It may import shardmap (the shards and their scoped transactions),
// regions, migrations (partition and sequence names) and pgx; it knows
// nothing of HTTP.
package registry

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/regions"
)

// ErrNotFound reports an id that does not exist inside the caller's scope.
// The two cases are deliberately indistinguishable.
var ErrNotFound = errors.New("not found")

// ErrBadCursor reports a pagination cursor this package did not issue for
// the list it is given to.
var ErrBadCursor = errors.New("bad cursor")

// Page asks for one page of a list: Limit items after Offset, or after the
// keyset Cursor returned as NextCursor by the previous page.
type Page struct {
	Limit  int
	Offset int
	Cursor string
}

// List is one page of items with the exact total of the filtered list.
type List[T any] struct {
	Items          []T    `json:"items"`
	Limit          int    `json:"limit"`
	Offset         int    `json:"offset"`
	Total          int64  `json:"total"`
	TotalEstimated bool   `json:"total_estimated"`
	NextCursor     string `json:"next_cursor,omitempty"`
}

// scopeArgs returns the named arguments of scope sc that the statements of
// this package take: @region always, and @scope_province, @scope_comune and
// @scope_market when sc narrows to them, which makes the conditions of
// marketScope and rowScope apply.
func scopeArgs(sc regions.Scope) pgx.NamedArgs {
	a := pgx.NamedArgs{"region": int16(sc.Region.Num())}
	given(a, "scope_province", sc.Province)
	given(a, "scope_comune", sc.Comune)
	given(a, "scope_market", sc.Market)
	return a
}

// marketScope are the scope's predicates on the markets table m, for the
// optional conditions of a statement; m.region_id = @region is not optional.
// Row-level security applies the same predicates; stating them keeps the
// router's queries correct on their own and lets the planner use them.
var marketScope = []string{"m.province = @scope_province", "m.comune = @scope_comune", "m.id = @scope_market"}

// rowScope returns the scope's predicates, as marketScope, on a table
// aliased alias whose rows belong to a market (comune and market_id columns).
func rowScope(alias string) []string {
	return []string{
		"left(" + alias + ".comune, 3) = @scope_province",
		alias + ".comune = @scope_comune",
		alias + ".market_id = @scope_market",
	}
}

// cursor is the keyset position after the last item of a page: the
// values of the list's order columns. A list name guards against a cursor
// of one list being used on another.
type cursor struct {
	List string `json:"l"`
	Text string `json:"t,omitempty"`
	Num  int64  `json:"n,omitempty"`
	ID   int64  `json:"i"`
}

func (c cursor) encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(list, s string) (cursor, error) {
	var c cursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	// A NUL in the text would reach PostgreSQL, which cannot store it.
	if err != nil || json.Unmarshal(b, &c) != nil || c.List != list || c.ID <= 0 || strings.IndexByte(c.Text, 0) >= 0 {
		return cursor{}, ErrBadCursor
	}
	return c, nil
}
