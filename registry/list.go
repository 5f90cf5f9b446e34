package registry

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// listSpec describes one list: how to select its rows, how to order them,
// and how a keyset cursor continues after the last row of a page.
type listSpec[T any] struct {
	name   string // names the list inside its cursors
	from   string // "FROM table alias" plus any joins
	cols   string // the select list, with names matching T's db tags
	order  string // ORDER BY columns; the last one is the unique id
	after  func(q *query, c cursor)
	cursor func(last T) cursor
	// prelude, when set, is a statement without arguments that the batch
	// runs before the list's own (a transaction-local setting, say).
	prelude string
}

// run reads one page of the list and its exact total in one round trip.
// guard, when not empty, is a query that must return a row for the list to
// exist at all (the parent market of a stall list, say); without a row the
// result is ErrNotFound rather than an empty list.
//
// A page without a cursor carries its total in a window count over the
// same scan (one statement to plan and run instead of two); a keyset page
// counts the list without the cursor's condition in a second statement of
// the same batch. A page past the end has no row to carry the total, so it
// is counted separately, in a second round trip.
func (s listSpec[T]) run(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, q query, p Page, guard string, guardArgs ...any) (List[T], error) {
	out := List[T]{Items: []T{}, Limit: p.Limit, Offset: p.Offset}
	countSQL := "SELECT count(*) " + s.from + " WHERE " + q.clause()
	countArgs := append([]any(nil), q.args...)
	windowed := p.Cursor == ""
	if !windowed {
		c, err := decodeCursor(s.name, p.Cursor)
		if err != nil {
			return out, err
		}
		s.after(&q, c)
	}
	cols := s.cols
	if windowed {
		cols += ", count(*) OVER () AS list_total"
	}
	pageSQL := "SELECT " + cols + " " + s.from + " WHERE " + q.clause() +
		" ORDER BY " + s.order + " LIMIT " + q.arg(p.Limit+1) + " OFFSET " + q.arg(p.Offset)
	found := guard == ""
	read := func(b *pgx.Batch) {
		if s.prelude != "" {
			b.Queue(s.prelude)
		}
		if guard != "" {
			b.Queue(guard, guardArgs...).Query(func(rows pgx.Rows) error {
				found = rows.Next()
				rows.Close()
				return rows.Err()
			})
		}
		b.Queue(pageSQL, q.args...).Query(func(rows pgx.Rows) error {
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
			b.Queue(countSQL, countArgs...).QueryRow(func(row pgx.Row) error {
				return row.Scan(&out.Total)
			})
		}
	}
	if err := sh.Read(ctx, sc, read); err != nil {
		return out, err
	}
	if !found {
		return out, ErrNotFound
	}
	if windowed && len(out.Items) == 0 && p.Offset > 0 {
		err := sh.Read(ctx, sc, func(b *pgx.Batch) {
			b.Queue(countSQL, countArgs...).QueryRow(func(row pgx.Row) error {
				return row.Scan(&out.Total)
			})
		})
		if err != nil {
			return out, err
		}
	}
	if len(out.Items) > p.Limit {
		out.Items = out.Items[:p.Limit]
		out.NextCursor = s.cursor(out.Items[len(out.Items)-1]).encode()
	}
	if out.Items == nil {
		out.Items = []T{}
	}
	return out, nil
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

// getOne reads the single row of sql in scope sc, or ErrNotFound.
func getOne[T any](ctx context.Context, sh *shardmap.Shard, sc regions.Scope, sql string, args ...any) (T, error) {
	var out T
	err := sh.Read(ctx, sc, func(b *pgx.Batch) {
		b.Queue(sql, args...).Query(func(rows pgx.Rows) error {
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
