package registry

import (
	"context"
	"errors"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// listSpec describes one list: how to select its rows, how to order them,
// and how a keyset cursor continues after the last row of a page.
type listSpec[T any] struct {
	name string // names the list inside its cursors
	from string // "FROM table alias" plus any joins
	cols string // the select list, with names matching T's db tags
	// where are the conditions of every page; filters those that apply
	// when the arguments they name are given (the scope's, a filter's).
	where, filters []string
	// key is the order column before id ("" for none), and id the unique
	// one that ends the order.
	key, id string
	// keyArg returns the cursor's value of key, or false when c cannot be
	// a position of this list.
	keyArg func(c cursor) (any, bool)
	cursor func(last T) cursor
	// generic, when set, reads a page on its statements' generic plans
	// (shardmap.Shard.ReadGeneric).
	generic bool
}

// collate returns s ordered by its key in collation coll.
func (s listSpec[T]) collate(coll string) listSpec[T] {
	s.key += ` COLLATE "` + coll + `"`
	return s
}

// list is a listSpec with its statements, built once for every combination
// of its filters.
type list[T any] struct {
	spec  listSpec[T]
	first variants // a page without a cursor, with the window count list_total
	page  variants // a page after the cursor's position when @after_id is given
	count variants // the list's total
}

// newList builds the statements of list s: a page orders by key and id
// and takes @limit rows from @offset.
func newList[T any](s listSpec[T]) list[T] {
	order, after := s.id, s.id+" > @after_id"
	if s.key != "" {
		order = s.key + ", " + s.id
		after = "(" + order + ") > (@after_key, @after_id)"
	}
	page := func(cols string) func([]string) string {
		return func(on []string) string {
			return "SELECT " + cols + " " + s.from + " WHERE " + where(slices.Concat(s.where, on)...) +
				" ORDER BY " + order + " LIMIT @limit OFFSET @offset"
		}
	}
	return list[T]{
		spec:  s,
		first: newVariants(s.filters, page(s.cols+", count(*) OVER () AS list_total")),
		page:  newVariants(append(slices.Clip(s.filters), after), page(s.cols)),
		count: newVariants(s.filters, func(on []string) string {
			return "SELECT count(*) " + s.from + " WHERE " + where(slices.Concat(s.where, on)...)
		}),
	}
}

// seek adds to a the arguments of the position after cursor cur, which must
// be one of this list's.
func (l list[T]) seek(a pgx.NamedArgs, cur string) error {
	c, err := decodeCursor(l.spec.name, cur)
	if err != nil {
		return err
	}
	a["after_id"] = c.ID
	if l.spec.key != "" {
		k, ok := l.spec.keyArg(c)
		if !ok {
			return ErrBadCursor
		}
		a["after_key"] = k
	}
	return nil
}

// run reads one page of the list with arguments a and its exact total in
// one round trip. guard, when its sql is not empty, is a statement (with
// the same arguments) that must return a row for the list to exist at all
// (the parent market of a stall list, say); without a row the result is
// ErrNotFound rather than an empty list.
//
// A page without a cursor carries its total in a window count over the
// same scan (one statement to plan and run instead of two); a keyset page
// counts the list without the cursor's condition in a second statement of
// the same batch. A page past the end has no row to carry the total, so it
// is counted separately, in a second round trip.
func (l list[T]) run(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, a pgx.NamedArgs, p Page, guard statement) (List[T], error) {
	out := List[T]{Items: []T{}, Limit: p.Limit, Offset: p.Offset}
	count := l.count.pick(a)
	a["limit"], a["offset"] = p.Limit+1, p.Offset
	windowed := p.Cursor == ""
	page := l.first.pick(a)
	if !windowed {
		if err := l.seek(a, p.Cursor); err != nil {
			return out, err
		}
		page = l.page.pick(a)
	}
	found := guard.sql == ""
	read := func(b *pgx.Batch) {
		if guard.sql != "" {
			guard.queueFound(b, a, &found)
		}
		page.queue(b, a).Query(func(rows pgx.Rows) error {
			scan := pgx.RowToStructByName[T]
			if windowed {
				scan = func(row pgx.CollectableRow) (T, error) {
					return pgx.RowToStructByName[T](totalRow{row, &out.Total})
				}
			}
			items, err := pgx.CollectRows(rows, scan)
			out.Items = items
			return err
		})
		if !windowed {
			count.queue(b, a).QueryRow(func(row pgx.Row) error { return row.Scan(&out.Total) })
		}
	}
	readPage := sh.Read
	if l.spec.generic {
		readPage = sh.ReadGeneric
	}
	if err := readPage(ctx, sc, read); err != nil {
		return out, err
	}
	if !found {
		return out, ErrNotFound
	}
	if windowed && len(out.Items) == 0 && p.Offset > 0 {
		err := sh.Read(ctx, sc, func(b *pgx.Batch) {
			count.queue(b, a).QueryRow(func(row pgx.Row) error { return row.Scan(&out.Total) })
		})
		if err != nil {
			return out, err
		}
	}
	if len(out.Items) > p.Limit {
		out.Items = out.Items[:p.Limit]
		out.NextCursor = l.spec.cursor(out.Items[len(out.Items)-1]).encode()
	}
	if out.Items == nil {
		out.Items = []T{}
	}
	return out, nil
}

// leg reads, for a national list, the first n items of the list with
// arguments a after the position of cursor cur ("" for the start), and the
// total of the list regardless of cur, in one round trip. The router merges
// the regions' legs, so it continues the list itself.
func (l list[T]) leg(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, a pgx.NamedArgs, cur string, n int) ([]T, int64, error) {
	count := l.count.pick(a)
	a["limit"], a["offset"] = n, 0
	if cur != "" {
		if err := l.seek(a, cur); err != nil {
			return nil, 0, err
		}
	}
	page := l.page.pick(a)
	var (
		items []T
		total int64
	)
	err := sh.Read(ctx, sc, func(b *pgx.Batch) {
		page.queue(b, a).Query(func(rows pgx.Rows) error {
			var err error
			items, err = pgx.CollectRows(rows, pgx.RowToStructByName[T])
			return err
		})
		count.queue(b, a).QueryRow(func(row pgx.Row) error { return row.Scan(&total) })
	})
	return items, total, err
}

// totalRow shows a page row without its last column, the window count
// list_total, which its Scan stores in total instead.
type totalRow struct {
	pgx.CollectableRow
	total *int64
}

func (r totalRow) FieldDescriptions() []pgconn.FieldDescription {
	fd := r.CollectableRow.FieldDescriptions()
	return fd[:len(fd)-1]
}

func (r totalRow) Scan(dest ...any) error {
	return r.CollectableRow.Scan(append(dest, r.total)...)
}

// getter reads one row by id in scope: a statement per combination of the
// scope's predicates.
type getter[T any] struct{ v variants }

// newGetter returns the getter that selects cols from from (a table and its
// alias) where the conditions cond hold (they name @id), and scope, the
// optional predicates of the scope, apply.
func newGetter[T any](cols, from string, scope []string, cond ...string) getter[T] {
	return getter[T]{newVariants(scope, func(on []string) string {
		return "SELECT " + cols + " " + from + " WHERE " + where(slices.Concat(cond, on)...)
	})}
}

// get reads row id in scope sc, or ErrNotFound.
func (g getter[T]) get(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, id int64) (T, error) {
	var out T
	a := scopeArgs(sc)
	a["id"] = id
	err := sh.Read(ctx, sc, func(b *pgx.Batch) {
		g.v.pick(a).queue(b, a).Query(func(rows pgx.Rows) error {
			var err error
			out, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[T])
			return err
		})
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return out, ErrNotFound
	}
	return out, err
}
