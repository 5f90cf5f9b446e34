package move

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/migrations"
)

// Check is one preflight check: what was checked, whether it passed, what
// was found, and for a failed check what to change.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
	Fix    string `json:"fix,omitempty"`
}

// Failed returns the checks of cs that did not pass.
func Failed(cs []Check) []Check {
	var out []Check
	for _, c := range cs {
		if !c.OK {
			out = append(out, c)
		}
	}
	return out
}

// PrintChecks writes one line per check to w ("ok" or "FAIL", the name and
// what was found), and under a failed one what to change.
func PrintChecks(w io.Writer, cs []Check) {
	for _, c := range cs {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
		}
		line := mark + " " + c.Name
		if c.Detail != "" {
			line += ": " + c.Detail
		}
		fmt.Fprintln(w, line)
		if !c.OK && c.Fix != "" {
			fmt.Fprintln(w, "     fix: "+c.Fix)
		}
	}
}

// Preflight checks, before anything is created, what plan p needs of its
// two shard databases, connecting to each with its admin DSN: both are
// reachable, migrated to this binary's newest regional version, and their
// admin roles are superusers (PostgreSQL 15's CREATE SUBSCRIPTION); both
// servers run with wal_level = logical (the target for the reverse stream
// after the switch); the source has free replication slots and WAL senders
// for the move's slot and the copy's table synchronisation (1 +
// max_sync_workers_per_subscription of the target), the target one of each
// for the reverse stream and free logical replication workers; every
// Table exists on both with its Key in its primary key and the default
// replica identity (a publication's row filter may use only those
// columns), and no table of the source with a region_id column or a
// foreign key to markets is missing from Tables; the source serves the
// region; the target holds none of its rows and does not own it.
//
// Every check is returned, each failed one naming what to change; when a
// side cannot be reached the checks that need it are left out. Checks of
// the control database (the region's assignment, other moves) are the
// caller's.
func Preflight(ctx context.Context, p Plan) []Check {
	src, cs := reach(ctx, "source", p.Source.Name, p.Source.AdminDSN())
	dst, c := reach(ctx, "target", p.Target.Name, p.Target.AdminDSN())
	cs = append(cs, c...)
	if src == nil || dst == nil {
		for _, conn := range []*pgx.Conn{src, dst} {
			if conn != nil {
				conn.Close(context.Background())
			}
		}
		return cs
	}
	defer src.Close(context.Background())
	defer dst.Close(context.Background())

	sides := []side{{"source", p.Source.Name, src}, {"target", p.Target.Name, dst}}
	latest, err := migrations.Latest()
	if err != nil {
		return append(cs, Check{Name: "schema version", Detail: err.Error(), Fix: "rebuild dmsrouter"})
	}
	for _, s := range sides {
		cs = append(cs, s.version(ctx, latest))
	}
	var set [2]settings
	read := true
	for i, s := range sides {
		if set[i], err = s.settings(ctx); err != nil {
			cs = append(cs, failure(s.role+" server settings", err))
			read = false
		}
	}
	if read {
		cs = append(cs, serverChecks(sides, set)...)
	}
	for _, s := range sides {
		cs = append(cs, s.tables(ctx))
	}
	cs = append(cs, catalog(ctx, sides[0]))
	cs = append(cs, sourceServes(ctx, sides[0], p), targetEmpty(ctx, sides[1], p), targetNotOwner(ctx, sides[1], p))
	return cs
}

// side is one of the move's two databases.
type side struct {
	role  string // source or target
	shard string
	conn  *pgx.Conn
}

func (s side) String() string { return fmt.Sprintf("%s (shard %s)", s.role, s.shard) }

func reach(ctx context.Context, role, shard, dsn string) (*pgx.Conn, []Check) {
	name := role + " reachable"
	conn, err := Connect(ctx, dsn)
	if err != nil {
		return nil, []Check{{Name: name, Detail: err.Error(),
			Fix: fmt.Sprintf("start the server of shard %s, or correct its admin DSN (shards[].admin) in the configuration file", shard)}}
	}
	return conn, []Check{{Name: name, OK: true, Detail: "shard " + shard}}
}

// failure is a check whose query failed.
func failure(name string, err error) Check {
	return Check{Name: name, Detail: err.Error(), Fix: "see the error; a database that is not migrated needs `dmsrouter migrate up --config F`"}
}

func (s side) version(ctx context.Context, latest int64) Check {
	name := s.role + " schema version"
	var v int64
	var migrated bool
	err := s.conn.QueryRow(ctx, `SELECT to_regclass('public.goose_db_version') IS NOT NULL`).Scan(&migrated)
	if err == nil && migrated {
		err = s.conn.QueryRow(ctx, `SELECT coalesce(max(version_id), 0) FROM public.goose_db_version WHERE is_applied`).Scan(&v)
	}
	if err != nil {
		return failure(name, err)
	}
	c := Check{Name: name, OK: v == latest, Detail: fmt.Sprintf("version %d, this dmsrouter's newest %d", v, latest)}
	switch {
	case v < latest:
		c.Fix = fmt.Sprintf("migrate shard %s: dmsrouter migrate up --config F", s.shard)
	case v > latest:
		c.Fix = fmt.Sprintf("shard %s is newer than this binary: run the move with the dmsrouter that migrated it", s.shard)
	}
	return c
}

// settings are what a server offers the move.
type settings struct {
	WalLevel                   string
	Superuser                  bool
	MaxSlots, Slots            int
	MaxSenders, Senders        int
	SyncWorkers                int
	MaxLogicalWorkers, Logical int
}

func (s side) settings(ctx context.Context) (settings, error) {
	var st settings
	err := s.conn.QueryRow(ctx, `SELECT current_setting('wal_level'),
	(SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
	current_setting('max_replication_slots')::int, (SELECT count(*) FROM pg_replication_slots)::int,
	current_setting('max_wal_senders')::int, (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender')::int,
	current_setting('max_sync_workers_per_subscription')::int,
	current_setting('max_logical_replication_workers')::int,
	(SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'logical replication%worker')::int`).Scan(
		&st.WalLevel, &st.Superuser, &st.MaxSlots, &st.Slots, &st.MaxSenders, &st.Senders,
		&st.SyncWorkers, &st.MaxLogicalWorkers, &st.Logical)
	if err != nil {
		return st, fmt.Errorf("read the settings of %s: %w", s, err)
	}
	return st, nil
}

// serverChecks are the checks of the two servers' settings: sides and set
// are the source's and the target's.
func serverChecks(sides []side, set [2]settings) []Check {
	var cs []Check
	for i, s := range sides {
		st := set[i]
		cs = append(cs, Check{Name: s.role + " admin is a superuser", OK: st.Superuser,
			Detail: fmt.Sprintf("superuser: %t", st.Superuser),
			Fix:    fmt.Sprintf("set shards[].admin of shard %s to a superuser's DSN (PostgreSQL 15's CREATE SUBSCRIPTION needs one)", s.shard)})
		why := "the copy"
		if s.role == "target" {
			why = "the reverse stream after the switch (rollback)"
		}
		cs = append(cs, Check{Name: s.role + " wal_level", OK: st.WalLevel == "logical",
			Detail: fmt.Sprintf("wal_level = %s, %s needs logical", st.WalLevel, why),
			Fix:    fmt.Sprintf("set wal_level = logical on the server of shard %s and restart it", s.shard)})
	}
	// The source serves the move's slot and a temporary slot and WAL sender
	// per table being synchronised; the target the reverse slot.
	need := 1 + set[1].SyncWorkers
	for i, s := range sides {
		st := set[i]
		n := 1
		if i == 0 {
			n = need
		}
		cs = append(cs, Check{Name: s.role + " free replication slots", OK: st.MaxSlots-st.Slots >= n,
			Detail: fmt.Sprintf("%d of max_replication_slots = %d in use, %d needed", st.Slots, st.MaxSlots, n),
			Fix: fmt.Sprintf("raise max_replication_slots on the server of shard %s to at least %d and restart it, or drop slots no longer used (dmsrouter region status lists orphaned ones)",
				s.shard, st.Slots+n)})
		cs = append(cs, Check{Name: s.role + " free WAL senders", OK: st.MaxSenders-st.Senders >= n,
			Detail: fmt.Sprintf("%d of max_wal_senders = %d in use, %d needed", st.Senders, st.MaxSenders, n),
			Fix:    fmt.Sprintf("raise max_wal_senders on the server of shard %s to at least %d and restart it", s.shard, st.Senders+n)})
	}
	tgt := set[1]
	cs = append(cs, Check{Name: "target free logical replication workers", OK: tgt.MaxLogicalWorkers-tgt.Logical >= need,
		Detail: fmt.Sprintf("%d of max_logical_replication_workers = %d in use, %d needed (the apply worker and max_sync_workers_per_subscription)",
			tgt.Logical, tgt.MaxLogicalWorkers, need),
		Fix: fmt.Sprintf("raise max_logical_replication_workers (and max_worker_processes) on the server of shard %s to at least %d and restart it",
			sides[1].shard, tgt.Logical+need)})
	return cs
}

// tables checks that every Table exists, with its Key in its primary key
// and the default replica identity (the primary key).
func (s side) tables(ctx context.Context) Check {
	name := s.role + " tables publishable"
	var problems []string
	for _, t := range Tables {
		var ident string
		var keyInPK bool
		err := s.conn.QueryRow(ctx, `SELECT c.relreplident::text, EXISTS (
	SELECT FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
	WHERE i.indrelid = c.oid AND i.indisprimary AND a.attname = $2)
FROM pg_class c WHERE c.oid = to_regclass($1)`, t.Name, t.Key).Scan(&ident, &keyInPK)
		switch {
		case err == pgx.ErrNoRows:
			problems = append(problems, t.Name+" does not exist")
		case err != nil:
			return failure(name, err)
		case !keyInPK:
			problems = append(problems, fmt.Sprintf("%s: %s is not in its primary key", t.Name, t.Key))
		case ident != "d":
			problems = append(problems, fmt.Sprintf("%s: replica identity is not the primary key (relreplident %s)", t.Name, ident))
		}
	}
	if len(problems) > 0 {
		return Check{Name: name, Detail: strings.Join(problems, "; "),
			Fix: fmt.Sprintf("migrate shard %s (dmsrouter migrate up --config F); keep each table's replica identity DEFAULT", s.shard)}
	}
	return Check{Name: name, OK: true, Detail: fmt.Sprintf("%d tables, each keyed in its primary key", len(Tables))}
}

// catalog checks that every table of s holding rows of a region (a
// region_id column or a foreign key to markets, in schemas public and
// dms) is one of Tables, so that the move leaves none behind.
func catalog(ctx context.Context, s side) Check {
	name := "every regional table is moved"
	rows, err := s.conn.Query(ctx, `SELECT n.nspname || '.' || c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname IN ('public', 'dms') AND c.relkind IN ('r', 'p') AND NOT c.relispartition
	AND (n.nspname, c.relname) <> ('dms', 'shard_regions')
	AND (EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'region_id' AND a.attnum > 0 AND NOT a.attisdropped)
		OR EXISTS (SELECT FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'f' AND k.confrelid = to_regclass('public.markets')))
ORDER BY 1`)
	if err != nil {
		return failure(name, err)
	}
	found, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return failure(name, err)
	}
	var missing []string
	for _, n := range found {
		if _, ok := tableNamed(n); !ok && !slices.Contains(Unmoved, n) {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return Check{Name: name, Detail: "not in move.Tables: " + strings.Join(missing, ", "),
			Fix: "add the tables to move.Tables (a dmsrouter built from the same migrations has them)"}
	}
	return Check{Name: name, OK: true, Detail: fmt.Sprintf("%d regional tables on the %s, all in move.Tables", len(found), s.role)}
}

// regionState reads the region's row of dms.shard_regions: whether it
// exists and is owned.
func regionState(ctx context.Context, s side, p Plan) (held, owned bool, err error) {
	err = s.conn.QueryRow(ctx, `SELECT true, owned FROM dms.shard_regions WHERE region_id = $1`, p.Region.Num()).Scan(&held, &owned)
	if err == pgx.ErrNoRows {
		return false, false, nil
	}
	return held, owned, err
}

func sourceServes(ctx context.Context, s side, p Plan) Check {
	name := "source serves region " + string(p.Region)
	_, owned, err := regionState(ctx, s, p)
	if err != nil {
		return failure(name, err)
	}
	if !owned {
		return Check{Name: name, Detail: fmt.Sprintf("shard %s does not own region %s (dms.shard_regions)", s.shard, p.Region),
			Fix: "move the region from the shard that serves it (dmsrouter region status shows it), or finish the move in progress"}
	}
	return Check{Name: name, OK: true, Detail: "owned by shard " + s.shard}
}

// everyRegionTable holds a row of every region in every shard database
// (a stamp of each region's set of partite IVA that any vendor write
// replaces, migration 00002), so a target holds its row of the region
// before any move: targetEmpty does not count it.
const everyRegionTable = "public.vendor_set_versions"

func targetEmpty(ctx context.Context, s side, p Plan) Check {
	name := fmt.Sprintf("target holds no row of region %s", p.Region)
	counts, err := RegionRows(ctx, s.conn, p.Region, nil)
	if err != nil {
		return failure(name, err)
	}
	var held []string
	for _, t := range Tables {
		if t.Name == everyRegionTable {
			continue
		}
		if n := counts[t.Name]; n > 0 {
			held = append(held, fmt.Sprintf("%s: %d", t.Name, n))
		}
	}
	if len(held) > 0 {
		return Check{Name: name, Detail: "rows of the region on shard " + s.shard + ": " + strings.Join(held, ", "),
			Fix: fmt.Sprintf("remove them: dmsrouter region abort --region %s if an earlier move left them, else delete them by hand; or choose another target", p.Region)}
	}
	return Check{Name: name, OK: true, Detail: fmt.Sprintf("%d tables empty for the region (%s not counted: every shard holds a row of every region)", len(Tables)-1, everyRegionTable)}
}

func targetNotOwner(ctx context.Context, s side, p Plan) Check {
	name := fmt.Sprintf("target does not own region %s", p.Region)
	held, owned, err := regionState(ctx, s, p)
	if err != nil {
		return failure(name, err)
	}
	if owned {
		return Check{Name: name, Detail: fmt.Sprintf("shard %s owns region %s (dms.shard_regions.owned)", s.shard, p.Region),
			Fix: "the target serves the region already: check the assignments (dmsrouter region status); choose another target"}
	}
	detail := "no dms.shard_regions row"
	if held {
		detail = "held unowned (an earlier move's copy)"
	}
	return Check{Name: name, OK: true, Detail: detail}
}
