// Package registry holds the domain queries of the regional databases:
// markets, stalls, vendors, concessions and presences, each read on one
// shard inside a scope that row-level security enforces too.
package registry

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

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

// query builds a WHERE clause and its arguments.
type query struct {
	conds []string
	args  []any
}

// arg adds v to the arguments and returns its placeholder.
func (q *query) arg(v any) string {
	q.args = append(q.args, v)
	return "$" + strconv.Itoa(len(q.args))
}

// where adds a condition; %s in cond is replaced by v's placeholder.
func (q *query) where(cond string, v any) {
	q.conds = append(q.conds, fmt.Sprintf(cond, q.arg(v)))
}

func (q *query) clause() string {
	if len(q.conds) == 0 {
		return "TRUE"
	}
	return strings.Join(q.conds, " AND ")
}

// scoped adds the scope's predicates for a table whose rows belong to a
// market (comune and market_id columns). Row-level security applies the same
// predicates; stating them keeps the router's queries correct on their own
// and lets the planner use them.
func (q *query) scoped(sc regions.Scope, alias, marketCol string) {
	q.where(alias+"region_id = %s", int16(sc.Region.Num()))
	if sc.Province != "" {
		q.where("left("+alias+"comune, 3) = %s", sc.Province)
	}
	if sc.Comune != "" {
		q.where(alias+"comune = %s", sc.Comune)
	}
	if sc.Market != 0 {
		q.where(alias+marketCol+" = %s", sc.Market)
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
