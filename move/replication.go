package move

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dmshub/dmsrouter/regions"
)

// The statements a move runs in the shard databases. Each one checks the
// catalog first (pg_publication, pg_replication_slots, pg_subscription,
// dms.shard_regions) so that running it again changes nothing: a move
// interrupted anywhere is continued or undone by running its steps again.

// createPublication creates publication name on conn, publishing region
// r's rows of every Table (partitioned ones through their root, so each
// row is sent once), inserts, updates and deletes but no TRUNCATE, unless
// it exists.
func createPublication(ctx context.Context, conn *pgx.Conn, name string, r regions.Code) error {
	if ok, err := exists(ctx, conn, `SELECT EXISTS (SELECT FROM pg_publication WHERE pubname = $1)`, name); ok || err != nil {
		return err
	}
	tables := make([]string, len(Tables))
	for i, t := range Tables {
		tables[i] = t.Name + " WHERE " + t.Filter(r)
	}
	_, err := conn.Exec(ctx, fmt.Sprintf(`CREATE PUBLICATION %s FOR TABLE %s
		WITH (publish = 'insert, update, delete', publish_via_partition_root = true)`,
		ident(name), strings.Join(tables, ", ")))
	if err != nil {
		return fmt.Errorf("create publication %s: %w", name, err)
	}
	return nil
}

// dropPublication drops publication name on conn if it exists.
func dropPublication(ctx context.Context, conn *pgx.Conn, name string) error {
	if _, err := conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+ident(name)); err != nil {
		return fmt.Errorf("drop publication %s: %w", name, err)
	}
	return nil
}

// createSlot creates the logical replication slot name (pgoutput) on
// conn's server unless it exists. The move creates its slots itself: a
// subscription that creates its own slot on the server it runs on hangs.
// The caller holds no open transaction on that server, which the slot's
// creation would wait for.
func createSlot(ctx context.Context, conn *pgx.Conn, name string) error {
	if ok, err := exists(ctx, conn, `SELECT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = $1)`, name); ok || err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, name); err != nil {
		return fmt.Errorf("create replication slot %s: %w", name, err)
	}
	return nil
}

// dropSlot drops the replication slot name on conn's server if it exists.
// A slot still in use (a subscription just disabled, whose sender has not
// exited yet) is waited for up to slotRelease, then its sender ended.
func dropSlot(ctx context.Context, conn *pgx.Conn, name string) error {
	if err := releaseSlot(ctx, conn, name); err != nil {
		return err
	}
	_, err := conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, name)
	if err != nil {
		return fmt.Errorf("drop replication slot %s: %w", name, err)
	}
	return nil
}

// slotRelease is how long dropSlot waits for a slot's sender to exit on
// its own before ending it.
const slotRelease = 5 * time.Second

// releaseSlot waits until no sender uses slot name, ending the sender when
// it is still there after slotRelease.
func releaseSlot(ctx context.Context, conn *pgx.Conn, name string) error {
	deadline := time.Now().Add(slotRelease)
	for {
		var active bool
		err := conn.QueryRow(ctx, `SELECT coalesce(bool_or(active), false) FROM pg_replication_slots WHERE slot_name = $1`, name).Scan(&active)
		if err != nil || !active {
			return err
		}
		if time.Now().After(deadline) {
			_, err := conn.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active`, name)
			return err
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}

// createSubscription creates subscription name on conn, the subscriber,
// streaming publication pub from the server at dsn through slot (which
// exists already), unless it exists. copyData copies the rows the
// publication holds before streaming (the forward stream); the reverse
// stream only streams.
func createSubscription(ctx context.Context, conn *pgx.Conn, name, dsn, pub, slot string, copyData bool) error {
	if ok, err := exists(ctx, conn, `SELECT EXISTS (SELECT FROM pg_subscription WHERE subname = $1)`, name); ok || err != nil {
		return err
	}
	_, err := conn.Exec(ctx, fmt.Sprintf(`CREATE SUBSCRIPTION %s CONNECTION %s PUBLICATION %s
		WITH (create_slot = false, slot_name = %s, copy_data = %t)`,
		ident(name), literal(dsn), ident(pub), literal(slot), copyData))
	if err != nil {
		return fmt.Errorf("create subscription %s: %w", name, err)
	}
	return nil
}

// setSubscription enables or disables subscription name on conn, if it
// exists. A disabled subscription's worker exits and applies nothing more.
func setSubscription(ctx context.Context, conn *pgx.Conn, name string, enabled bool) error {
	ok, err := exists(ctx, conn, `SELECT EXISTS (SELECT FROM pg_subscription WHERE subname = $1 AND subenabled <> $2)`, name, enabled)
	if !ok || err != nil {
		return err
	}
	verb := "DISABLE"
	if enabled {
		verb = "ENABLE"
	}
	if _, err := conn.Exec(ctx, "ALTER SUBSCRIPTION "+ident(name)+" "+verb); err != nil {
		return fmt.Errorf("%s subscription %s: %w", strings.ToLower(verb), name, err)
	}
	return nil
}

// dropSubscription drops subscription name on conn, the subscriber, if it
// exists, and its slot on publisher, the server it streams from: it
// disables the subscription, waits until its sender has left the slot and
// drops the subscription with its slot (and the slots of tables still
// being copied). When the publisher cannot drop the slot that way, the
// subscription is dropped alone and the slot directly.
func dropSubscription(ctx context.Context, conn, publisher *pgx.Conn, name, slot string) error {
	ok, err := exists(ctx, conn, `SELECT EXISTS (SELECT FROM pg_subscription WHERE subname = $1)`, name)
	if err != nil || !ok {
		return err
	}
	if err := setSubscription(ctx, conn, name, false); err != nil {
		return err
	}
	if err := releaseSlot(ctx, publisher, slot); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "DROP SUBSCRIPTION "+ident(name)); err == nil {
		return nil
	}
	if _, err := conn.Exec(ctx, "ALTER SUBSCRIPTION "+ident(name)+" SET (slot_name = NONE)"); err != nil {
		return fmt.Errorf("drop subscription %s: %w", name, err)
	}
	if _, err := conn.Exec(ctx, "DROP SUBSCRIPTION "+ident(name)); err != nil {
		return fmt.Errorf("drop subscription %s: %w", name, err)
	}
	return dropSlot(ctx, publisher, slot)
}

// holdUnowned records in conn's database that it holds region r without
// serving it, so that the region's rows may arrive there: a move's target
// while the copy runs. A region held already keeps its state.
func holdUnowned(ctx context.Context, conn *pgx.Conn, r regions.Code) error {
	_, err := conn.Exec(ctx, `INSERT INTO dms.shard_regions (region_id, owned) VALUES ($1, false) ON CONFLICT (region_id) DO NOTHING`, r.Num())
	if err != nil {
		return fmt.Errorf("hold region %s: %w", r, err)
	}
	return nil
}

// setOwned sets whether conn's database serves region r, and unfreezes
// it. It fails when the database does not hold the region.
func setOwned(ctx context.Context, conn *pgx.Conn, r regions.Code, owned bool) error {
	tag, err := conn.Exec(ctx, `UPDATE dms.shard_regions SET owned = $2, frozen = false WHERE region_id = $1`, r.Num(), owned)
	if err == nil && tag.RowsAffected() != 1 {
		err = errors.New("the database does not hold the region")
	}
	if err != nil {
		return fmt.Errorf("set region %s owned = %t: %w", r, owned, err)
	}
	return nil
}

// freeze freezes region r in conn's database, which serves it: it waits,
// at most within (lock_timeout), for the region's write transactions
// running there, and refuses the ones that start after it.
func freeze(ctx context.Context, conn *pgx.Conn, r regions.Code, within time.Duration) error {
	b := &pgx.Batch{}
	b.Queue(`SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $1, true)`, millis(within))
	b.Queue(`UPDATE dms.shard_regions SET frozen = true WHERE region_id = $1 AND owned`, r.Num()).Exec(func(tag pgconn.CommandTag) error {
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("the database does not serve region %s", r)
		}
		return nil
	})
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("freeze region %s: %w", r, err)
	}
	return nil
}

// serving returns whether conn's database holds region r and whether it
// serves it.
func serving(ctx context.Context, conn *pgx.Conn, r regions.Code) (held, owned bool, err error) {
	err = conn.QueryRow(ctx, `SELECT count(*) > 0, coalesce(bool_or(owned), false) FROM dms.shard_regions WHERE region_id = $1`, r.Num()).Scan(&held, &owned)
	return held, owned, err
}

// writeMark writes a new mark of region r in conn's database, the side
// replicated from, and returns it. It commits with synchronous_commit on,
// so that the WAL up to the mark is flushed, and so sent, at once: a
// server running with synchronous_commit off would otherwise send it only
// at its WAL writer's next round (wal_writer_delay, 200 ms by default).
func writeMark(ctx context.Context, conn *pgx.Conn, r regions.Code) (int64, error) {
	var mark int64
	b := &pgx.Batch{}
	b.Queue(`SELECT set_config('synchronous_commit', 'on', true)`)
	b.Queue(`
		INSERT INTO dms.move_marks AS m (region_id, mark) VALUES ($1, 1)
		ON CONFLICT (region_id) DO UPDATE SET mark = m.mark + 1, marked_at = now()
		RETURNING mark`, r.Num()).QueryRow(func(row pgx.Row) error { return row.Scan(&mark) })
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return 0, fmt.Errorf("write a mark of region %s: %w", r, err)
	}
	return mark, nil
}

// awaitMark waits until conn's database, the side replicated to, shows
// region r's mark (or a later one), until deadline: then every change
// committed on the other side before the mark is applied here.
func awaitMark(ctx context.Context, conn *pgx.Conn, r regions.Code, mark int64, deadline time.Time) error {
	for {
		var got int64
		err := conn.QueryRow(ctx, `SELECT coalesce(max(mark), 0) FROM dms.move_marks WHERE region_id = $1`, r.Num()).Scan(&got)
		switch {
		case err != nil:
			return fmt.Errorf("read the mark of region %s: %w", r, err)
		case got >= mark:
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("the mark of region %s did not arrive in time (have %d, want %d)", r, got, mark)
		}
		if err := sleep(ctx, 2*time.Millisecond); err != nil {
			return err
		}
	}
}

// settle writes a mark on from and waits until to shows it, so that to
// has applied everything from committed before.
func settle(ctx context.Context, from, to *pgx.Conn, r regions.Code, within time.Duration) error {
	mark, err := writeMark(ctx, from, r)
	if err != nil {
		return err
	}
	return awaitMark(ctx, to, r, mark, time.Now().Add(within))
}

// sequencesPast sets every per-region sequence of region r in to's
// database (dms.<table>_id_<rr>) to from's value where from's is greater,
// so that ids to draws next were never drawn in from.
func sequencesPast(ctx context.Context, from, to *pgx.Conn, r regions.Code) error {
	suffix := fmt.Sprintf("_id_%02d", r.Num())
	rows, _ := from.Query(ctx, `SELECT sequencename::text, last_value FROM pg_sequences
		WHERE schemaname = 'dms' AND right(sequencename, 6) = $1 AND last_value IS NOT NULL`, suffix)
	type seq struct {
		Name  string `db:"sequencename"`
		Value int64  `db:"last_value"`
	}
	seqs, err := pgx.CollectRows(rows, pgx.RowToStructByName[seq])
	if err != nil {
		return fmt.Errorf("read the sequences of region %s: %w", r, err)
	}
	names := make([]string, len(seqs))
	values := make([]int64, len(seqs))
	for i, s := range seqs {
		names[i], values[i] = s.Name, s.Value
	}
	_, err = to.Exec(ctx, `
		SELECT setval(format('dms.%I', s.name)::regclass, s.value, true)
		FROM unnest($1::text[], $2::bigint[]) AS s(name, value)
		JOIN pg_sequences p ON p.schemaname = 'dms' AND p.sequencename = s.name
		WHERE p.last_value IS NULL OR p.last_value < s.value`, names, values)
	if err != nil {
		return fmt.Errorf("set the sequences of region %s: %w", r, err)
	}
	return nil
}

// copyPartitions creates in to's database the monthly partitions of
// vendor_presences from the first to the last month from has, so that
// every presence copied finds its partition.
func copyPartitions(ctx context.Context, from, to *pgx.Conn) error {
	var first, last *time.Time
	err := from.QueryRow(ctx, `
		SELECT min(to_date(right(c.relname, 7), 'YYYY_MM')), max(to_date(right(c.relname, 7), 'YYYY_MM'))
		FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'public.vendor_presences'::regclass AND c.relname ~ '_[0-9]{4}_[0-9]{2}$'`).Scan(&first, &last)
	if err != nil || first == nil {
		return err
	}
	if _, err := to.Exec(ctx, `SELECT dms.ensure_presence_partitions($1, $2)`, *first, *last); err != nil {
		return fmt.Errorf("create presence partitions: %w", err)
	}
	return nil
}

// Removed is what deleting a region's rows removed from one table.
type Removed struct {
	Table string `json:"table"`
	Rows  int64  `json:"rows"`
	// Truncated lists the partitions emptied whole, which held only the
	// region's rows.
	Truncated []string `json:"truncated,omitempty"`
}

// deleteBatch is how many rows one statement of deleteRegion deletes.
const deleteBatch = 10_000

// deleteRegion deletes region r's rows from every Table of conn's
// database, which no longer serves the region, and then its row in
// dms.shard_regions. It deletes in batches of deleteBatch rows, each its
// own transaction, with session_replication_role = replica so that no
// trigger fires (the rollups' rows of the region go as rows of their own
// tables), and truncates whole partitions that hold only the region's
// rows.
func deleteRegion(ctx context.Context, conn *pgx.Conn, r regions.Code) ([]Removed, error) {
	if _, err := conn.Exec(ctx, `SET session_replication_role = replica`); err != nil {
		return nil, err
	}
	defer conn.Exec(context.WithoutCancel(ctx), `RESET session_replication_role`)
	var out []Removed
	for _, t := range Tables {
		rm := Removed{Table: t.Name}
		parts := []string{t.Name}
		if t.Partitioned {
			rows, _ := conn.Query(ctx, `SELECT i.inhrelid::regclass::text FROM pg_inherits i WHERE i.inhparent = $1::regclass ORDER BY 1`, t.Name)
			var err error
			if parts, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
				return out, fmt.Errorf("partitions of %s: %w", t.Name, err)
			}
		}
		for _, p := range parts {
			n, truncated, err := deleteRows(ctx, conn, p, t.Filter(r), t.Partitioned)
			if err != nil {
				return out, fmt.Errorf("delete region %s from %s: %w", r, p, err)
			}
			rm.Rows += n
			if truncated {
				rm.Truncated = append(rm.Truncated, p)
			}
		}
		out = append(out, rm)
	}
	if _, err := conn.Exec(ctx, `DELETE FROM dms.shard_regions WHERE region_id = $1 AND NOT owned`, r.Num()); err != nil {
		return out, fmt.Errorf("release region %s: %w", r, err)
	}
	return out, nil
}

// deleteRows deletes the rows of table that match filter and returns how
// many. A partition (mayTruncate) whose rows all match is truncated.
func deleteRows(ctx context.Context, conn *pgx.Conn, table, filter string, mayTruncate bool) (int64, bool, error) {
	if mayTruncate {
		var n int64
		var others bool
		err := conn.QueryRow(ctx, fmt.Sprintf(`SELECT (SELECT count(*) FROM %[1]s WHERE %[2]s), EXISTS (SELECT FROM %[1]s WHERE NOT %[2]s)`, table, filter)).Scan(&n, &others)
		if err != nil {
			return 0, false, err
		}
		if n == 0 {
			return 0, false, nil
		}
		if !others {
			_, err := conn.Exec(ctx, "TRUNCATE "+table)
			return n, err == nil, err
		}
	}
	var total int64
	for {
		tag, err := conn.Exec(ctx, fmt.Sprintf(`DELETE FROM %[1]s WHERE ctid = ANY (ARRAY(SELECT ctid FROM %[1]s WHERE %[2]s LIMIT %[3]d))`, table, filter, deleteBatch))
		if err != nil {
			return total, false, err
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < deleteBatch {
			return total, false, nil
		}
	}
}

// exists runs sql, a query of one boolean, on conn.
func exists(ctx context.Context, conn *pgx.Conn, sql string, args ...any) (bool, error) {
	var ok bool
	if err := conn.QueryRow(ctx, sql, args...).Scan(&ok); err != nil {
		return false, err
	}
	return ok, nil
}

func ident(s string) string { return pgx.Identifier{s}.Sanitize() }

// literal quotes s as an SQL string literal (standard_conforming_strings
// is on since PostgreSQL 9.1).
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// millis formats d for a setting in milliseconds, at least 1.
func millis(d time.Duration) string { return fmt.Sprint(max(d.Milliseconds(), 1)) }

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
