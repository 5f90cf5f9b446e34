// Package seed fills every shard of a deployment with deterministic
// synthetic data at national scale: markets spread over the regions by
// population and over the real comuni of each region (package regions) by
// their population, their stalls (with sectors and reservations), the
// vendors (some in several regions, with the same tax codes in each) and
// their authorisations, concessions on titles (a few passed by subingresso,
// some extended by law), and the last market days: held or cancelled, the
// presences with the spunta's outcomes, and the holders' justified
// absences, following the rules of docs/domain.md.
//
// The same Options give byte-identical rows: everything is drawn from
// PCG streams derived from Options.Seed and the region or market they
// belong to, so neither the number of shards nor the order in which regions
// are loaded changes a single value. Rows are written with binary COPY, the
// shards in parallel (the presences by a faster path, see presences.go);
// ids are region<<48 | a per-region sequence number, and the sequences are
// moved past the loaded ids afterwards.
//
// It is a dev tool (cmd/dmsdev seed and demo): it may import shardmap,
// migrations, regions and taxcode, and nothing shipped imports it.
package seed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/dmshub/dmsrouter/migrations"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// Options says what to seed.
type Options struct {
	Markets int       // markets nationally, spread over the regions by population
	Days    int       // market days with presences, per market, ending at Today
	Seed    int64     // the same Seed (and other options) gives the same rows
	Reset   bool      // empty the tables first; without it, shards holding data are refused
	Today   time.Time // the Europe/Rome calendar day the presences end at; zero means today in Europe/Rome
	// Progress receives progress lines (nil discards them).
	Progress io.Writer
	// Terminal draws progress bars redrawn in place (\r) instead of plain lines.
	Terminal bool
	// Parallel is how many COPY streams run at once over all shards; 0
	// means DefaultParallel.
	Parallel int
}

// DefaultParallel is the number of concurrent COPY streams when
// Options.Parallel is 0. Each stream keeps about one core busy, nearly all
// of it in the server backend (generating the rows costs little), so two
// streams fill a 2-core machine; on one, 8,000 markets and 300 days took
// 127 s with 2 streams, 134 s with 3 and 133 s with 4.
const DefaultParallel = 2

// Limits of Options.
const (
	MaxMarkets = 200_000 // market codes have at most five digits per province
	MaxDays    = 1_000
)

// TableStats is what Run loaded into one table over all shards.
type TableStats struct {
	Table   string
	Rows    int64
	Elapsed time.Duration
}

// ErrNotEmpty is returned by Run when a shard already holds data and
// Options.Reset is false. Nothing has been written then.
var ErrNotEmpty = errors.New("shards already hold data: pass --reset to delete it and seed again")

// ErrPrivilege is returned by Run when a shard's admin DSN connects as a
// role that row-level security binds.
var ErrPrivilege = errors.New("seed needs a superuser or BYPASSRLS role")

// loadedTables are the tables Run fills, in load order.
var loadedTables = []string{"markets", "stalls", "vendors", "authorisations", "concessions", "vendor_presences"}

// resetSQL empties what Reset replaces: the loaded tables, every table with
// a foreign key to them (CASCADE: authorisations, market_days,
// absence_justifications, spunta_runs...), and the audit log and the
// idempotency keys, whose entries describe rows that will no longer exist.
// The rollups (presence_daily, presence_monthly, region_status_counts) empty
// themselves through the TRUNCATE triggers of the tables they count. The
// presences are truncated by their own load (see presencesTx).
const resetSQL = "TRUNCATE markets, stalls, vendors, concessions, audit_log, idempotency_keys CASCADE"

// regionalTablesSQL lists the shard's regional tables, derived ones
// included: every table (not partition) of the public schema with a
// region_id column.
const regionalTablesSQL = `
	SELECT c.oid::regclass::text
	FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
	WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
	  AND NOT c.relispartition AND a.attname = 'region_id' AND NOT a.attisdropped
	ORDER BY 1`

// Run seeds every shard of cfg, connecting through each shard's AdminDSN,
// and returns the rows loaded per table in load order. COPY into a table
// with row-level security requires a role that bypasses it, so the admin
// role must be a superuser or have BYPASSRLS; otherwise Run returns an error
// wrapping ErrPrivilege. When a shard already holds markets, vendors or
// presences and opts.Reset is false, Run returns an error wrapping
// ErrNotEmpty and writes nothing; with Reset it first truncates the tables
// it loads and those that depend on them (see resetSQL). Every shard must be
// migrated to the newest schema this binary embeds.
// A failure part-way leaves the shards partly loaded: run again with Reset.
func Run(ctx context.Context, cfg shardmap.Config, opts Options) ([]TableStats, error) {
	if opts.Markets < 1 || opts.Markets > MaxMarkets {
		return nil, fmt.Errorf("seed: markets %d is outside 1..%d", opts.Markets, MaxMarkets)
	}
	if opts.Days < 0 || opts.Days > MaxDays {
		return nil, fmt.Errorf("seed: days %d is outside 0..%d", opts.Days, MaxDays)
	}
	if opts.Parallel <= 0 {
		opts.Parallel = DefaultParallel
	}
	rome, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		return nil, fmt.Errorf("seed: load time zone: %w", err)
	}
	t := opts.Today
	if t.IsZero() {
		t = time.Now().In(rome)
	}
	today := dayOf(t.Date())
	shards, err := shardsOf(cfg, opts.Parallel)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, sh := range shards {
			sh.pool.Close()
		}
	}()
	pr := &progress{w: opts.Progress, terminal: opts.Terminal}
	if pr.w == nil {
		pr.w = io.Discard
	}

	if err := preflight(ctx, shards, opts.Reset); err != nil {
		return nil, err
	}

	begin := time.Now()
	g := newGenerator(newPlan(opts, today), rome)
	g.generate()
	pr.logf("%d markets in 20 regions, %d market days each up to %s, seed %d, shards: %d (planned in %s)",
		opts.Markets, opts.Days, today.time().Format(time.DateOnly), opts.Seed, len(shards),
		time.Since(begin).Round(time.Millisecond))

	if opts.Reset {
		if err := eachShard(ctx, shards, len(shards), func(ctx context.Context, conn *pgx.Conn, _ *shard) error {
			_, err := conn.Exec(ctx, resetSQL)
			return err
		}); err != nil {
			return nil, fmt.Errorf("seed: reset: %w", err)
		}
	}
	if err := eachShard(ctx, shards, len(shards), func(ctx context.Context, conn *pgx.Conn, sh *shard) error {
		first, last := g.presenceSpan(sh.regions)
		if first > last {
			return nil
		}
		_, err := conn.Exec(ctx, "SELECT dms.ensure_presence_partitions($1, $2)", first.time(), last.time())
		return err
	}); err != nil {
		return nil, fmt.Errorf("seed: presence partitions: %w", err)
	}

	var stats []TableStats
	for _, tb := range tables {
		st, err := g.load(ctx, shards, tb, opts.Parallel, pr)
		if err != nil {
			return stats, fmt.Errorf("seed: %s: %w (rerun with --reset)", tb.name, err)
		}
		stats = append(stats, st)
	}
	st, err := g.loadPresences(ctx, shards, opts.Parallel, opts.Reset, pr)
	if err != nil {
		return stats, fmt.Errorf("seed: vendor_presences: %w (rerun with --reset)", err)
	}
	stats = append(stats, st)
	for _, t := range []*dayTable{&g.days, &g.absences} {
		stats = append(stats, TableStats{Table: t.name, Rows: t.rows.Load(), Elapsed: time.Duration(t.elapsed.Load())})
		pr.logf("%-18s %10d rows (loaded with the presences, %s of COPY)", t.name, t.rows.Load(), time.Duration(t.elapsed.Load()).Round(time.Millisecond))
	}

	return stats, nil
}

// shard is one database of the deployment and the regions it holds.
type shard struct {
	name    string
	dsn     string
	regions []regions.Code
	pool    *pgxpool.Pool // admin connections, as many as the shard's concurrent COPYs
}

// shardsOf returns the shards of cfg that hold a region, each with a pool
// of admin connections (connected on first use) for at most parallel
// concurrent COPY streams.
func shardsOf(cfg shardmap.Config, parallel int) ([]*shard, error) {
	byName := map[string]*shard{}
	var shards []*shard
	for _, sc := range cfg.Shards {
		sh := &shard{name: sc.Name, dsn: sc.AdminDSN()}
		byName[sc.Name] = sh
		shards = append(shards, sh)
	}
	for _, r := range regions.All() {
		name, ok := cfg.Regions[string(r.Code)]
		if !ok {
			return nil, fmt.Errorf("seed: region %s (%s) is not mapped to a shard", r.Code, r.Name)
		}
		sh := byName[name]
		if sh == nil {
			return nil, fmt.Errorf("seed: region %s is mapped to unknown shard %q", r.Code, name)
		}
		sh.regions = append(sh.regions, r.Code)
	}
	shards = slices.DeleteFunc(shards, func(sh *shard) bool { return len(sh.regions) == 0 })
	for i, sh := range shards {
		pc, err := pgxpool.ParseConfig(sh.dsn)
		if err == nil {
			pc.MaxConns = int32(max(1, min(parallel, len(sh.regions))))
			sh.pool, err = pgxpool.NewWithConfig(context.Background(), pc)
		}
		if err != nil {
			for _, prev := range shards[:i] {
				prev.pool.Close()
			}
			return nil, fmt.Errorf("seed: shard %s: %w", sh.name, err)
		}
	}
	return shards, nil
}

// eachShard runs fn on an admin connection to every shard, at most limit at
// a time, and returns the errors joined, each naming its shard.
func eachShard(ctx context.Context, shards []*shard, limit int, fn func(context.Context, *pgx.Conn, *shard) error) error {
	var (
		mu   sync.Mutex
		errs []error
		eg   errgroup.Group
	)
	eg.SetLimit(limit)
	for _, sh := range shards {
		eg.Go(func() error {
			err := withConn(ctx, sh, func(conn *pgx.Conn) error { return fn(ctx, conn, sh) })
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("shard %s: %w", sh.name, err))
				mu.Unlock()
			}
			return nil
		})
	}
	eg.Wait()
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}

// withConn runs fn on one of the shard's admin connections.
func withConn(ctx context.Context, sh *shard, fn func(*pgx.Conn) error) error {
	return sh.pool.AcquireFunc(ctx, func(c *pgxpool.Conn) error { return fn(c.Conn()) })
}

// preflight checks, before anything is written, that every shard's admin
// role may COPY past row-level security, that the shard is migrated to the
// newest schema and, unless reset, that it holds no data.
func preflight(ctx context.Context, shards []*shard, reset bool) error {
	var (
		mu       sync.Mutex
		nonEmpty []string
	)
	err := eachShard(ctx, shards, len(shards), func(ctx context.Context, conn *pgx.Conn, sh *shard) error {
		var role string
		var bypass bool
		err := conn.QueryRow(ctx, "SELECT current_user, rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user").Scan(&role, &bypass)
		if err != nil {
			return err
		}
		if !bypass {
			return fmt.Errorf("%w: the admin DSN connects as %q, which is neither superuser nor BYPASSRLS, and COPY cannot load tables under row-level security; set shards[].admin to a superuser (or BYPASSRLS) DSN", ErrPrivilege, role)
		}
		st := migrations.Status(ctx, []migrations.Target{{Name: sh.name, DSN: sh.dsn}})[0]
		if st.Err != nil {
			return st.Err
		}
		if st.Version != st.Latest {
			return fmt.Errorf("the schema is at version %d, this binary's is %d: run dmsrouter migrate first", st.Version, st.Latest)
		}
		if reset {
			return nil
		}
		var has bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM markets) OR EXISTS (SELECT FROM vendors)
			OR EXISTS (SELECT FROM vendor_presences)`).Scan(&has); err != nil {
			return err
		}
		if has {
			mu.Lock()
			nonEmpty = append(nonEmpty, sh.name)
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	if len(nonEmpty) > 0 {
		slices.Sort(nonEmpty)
		return fmt.Errorf("seed: %s: %w", strings.Join(nonEmpty, ", "), ErrNotEmpty)
	}
	return nil
}

// generator holds the plan and every region's generated rows.
type generator struct {
	plan    *plan
	rome    *time.Location
	regions [21]*regionData // by region number

	// The tables the presences' transactions fill besides the presences.
	days, absences dayTable
}

// dayTable counts what the presences' transactions loaded into a table
// generated with the presences, over all shards.
type dayTable struct {
	name    string
	rows    atomic.Int64
	elapsed atomic.Int64 // nanoseconds of COPY, summed over the shards
}

func newGenerator(p *plan, rome *time.Location) *generator {
	g := &generator{plan: p, rome: rome}
	g.days.name, g.absences.name = "market_days", "absence_justifications"
	return g
}

// generate builds all regions, in parallel: each depends only on the plan.
func (g *generator) generate() {
	var eg errgroup.Group
	eg.SetLimit(runtime.GOMAXPROCS(0))
	for _, r := range regions.All() {
		eg.Go(func() error {
			g.regions[r.Code.Num()] = g.plan.generateRegion(r.Code, g.rome)
			return nil
		})
	}
	eg.Wait()
}

// presenceSpan returns the first and last presence day over regions rs.
func (g *generator) presenceSpan(rs []regions.Code) (first, last day) {
	first, last = g.plan.today+1, g.plan.today
	for _, r := range rs {
		rd := g.regions[r.Num()]
		if rd.firstDay <= rd.lastDay {
			first, last = min(first, rd.firstDay), max(last, rd.lastDay)
		}
	}
	return first, last
}

// load copies every region's rows of table tb into its shard, at most
// parallel COPY streams at a time, the biggest regions first so that the
// last to finish is a small one.
func (g *generator) load(ctx context.Context, shards []*shard, tb table, parallel int, pr *progress) (TableStats, error) {
	var jobs []loadJob
	for _, sh := range shards {
		for _, r := range sh.regions {
			rd := g.regions[r.Num()]
			n := tb.units(rd)
			if n == 0 {
				continue
			}
			jobs = append(jobs, loadJob{sh: sh, units: n, what: fmt.Sprintf("region %s on shard %s", rd.code, sh.name),
				run: func(ctx context.Context, conn *pgx.Conn) (int64, error) {
					src := newCopySource(tb.source(ctx, g, rd, pr.add))
					tag, err := conn.PgConn().CopyFrom(ctx, src, tb.copy)
					return tag.RowsAffected(), err
				}})
		}
	}
	return runJobs(ctx, tb.name, jobs, parallel, pr)
}

// loadJob is one connection's share of loading a table.
type loadJob struct {
	sh    *shard
	units int64  // the job's size, in the units pr counts
	what  string // what it loads, for its error
	run   func(ctx context.Context, conn *pgx.Conn) (rows int64, err error)
}

// runJobs runs jobs, each on a connection of its own to its shard, at most
// parallel at a time and the biggest first so that the last to finish is a
// small one; it reports their progress to pr as table and returns the rows
// they wrote. The first error cancels the jobs still running.
func runJobs(ctx context.Context, table string, jobs []loadJob, parallel int, pr *progress) (TableStats, error) {
	var total int64
	for _, j := range jobs {
		total += j.units
	}
	slices.SortStableFunc(jobs, func(a, b loadJob) int { return int(b.units - a.units) })

	begin := time.Now()
	pr.begin(table, total)
	var rows atomic.Int64
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(parallel)
	for _, j := range jobs {
		eg.Go(func() error {
			err := withConn(ctx, j.sh, func(conn *pgx.Conn) error {
				n, err := j.run(ctx, conn)
				rows.Add(n)
				return err
			})
			if err != nil {
				return fmt.Errorf("%s: %w", j.what, err)
			}
			return nil
		})
	}
	err := eg.Wait()
	elapsed := time.Since(begin)
	pr.end(rows.Load(), elapsed, err)
	return TableStats{Table: table, Rows: rows.Load(), Elapsed: elapsed}, err
}

// finish moves every sequence of the shard's regions past the ids loaded,
// so that later inserts (dms.next_id) never collide with seeded rows, and
// collects planner statistics on every regional table. Run right after the
// shard's presences are in, it gets there before autovacuum, which would
// otherwise analyze some eighty new partitions per shard itself while the
// other shards load and the data is first used.
func (g *generator) finish(ctx context.Context, conn *pgx.Conn, sh *shard) error {
	var names []string
	var last []int64
	for _, r := range sh.regions {
		rd := g.regions[r.Num()]
		for _, tb := range loadedTables {
			names = append(names, fmt.Sprintf("dms.%s_id_%s", tb, r))
			last = append(last, rd.rows(tb))
		}
	}
	if _, err := conn.Exec(ctx, `
		SELECT setval(seq::regclass, greatest(n, 1), n > 0)
		FROM unnest($1::text[], $2::bigint[]) AS s(seq, n)`, names, last); err != nil {
		return fmt.Errorf("set sequences: %w", err)
	}
	rows, _ := conn.Query(ctx, regionalTablesSQL)
	regional, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("list tables: %w", err)
	}
	if _, err := conn.Exec(ctx, "ANALYZE "+strings.Join(regional, ", ")); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	return uncountEmptyPartitions(ctx, conn)
}

// uncountEmptyPartitions returns the shard's empty partitions, which the
// ANALYZE of their partitioned table has just recorded as empty
// (pg_class.reltuples 0), to never counted (-1), as a database that only
// autovacuum analyzes keeps the months created ahead until their first
// rows. The planner takes a partition recorded empty for one row, and the
// generic plans a connection builds while it is so read it by a
// sequential scan or any index for every market day long after it fills,
// until autovacuum analyzes it again; a partition never counted is planned
// as ten pages of rows (BENCHMARKS.md, "The batch statement looks rows up
// by key"; move.VacuumAnalyze does the same for a region move). ANALYZE of
// the partitioned tables is kept for their own statistics, which
// PostgreSQL 15 collects only through every partition. TRUNCATE gives a
// partition a new, empty file, which PostgreSQL records as never counted;
// it runs only on a partition found empty under its exclusive lock.
func uncountEmptyPartitions(ctx context.Context, conn *pgx.Conn) error {
	rows, _ := conn.Query(ctx, `SELECT c.oid::regclass::text FROM pg_class c
		WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND c.relispartition AND c.reltuples = 0
		ORDER BY 1`)
	empty, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("list empty partitions: %w", err)
	}
	for _, name := range empty {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "LOCK TABLE "+name+" IN ACCESS EXCLUSIVE MODE"); err != nil {
				return err
			}
			var holds bool
			if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT FROM "+name+")").Scan(&holds); err != nil || holds {
				return err
			}
			_, err := tx.Exec(ctx, "TRUNCATE "+name)
			return err
		})
		if err != nil {
			return fmt.Errorf("uncount the empty %s: %w", name, err)
		}
	}
	return nil
}

// rows returns how many rows region rd loaded into table tb.
func (rd *regionData) rows(tb string) int64 {
	switch tb {
	case "markets":
		return int64(len(rd.markets))
	case "stalls":
		return int64(len(rd.stalls))
	case "vendors":
		return int64(len(rd.vendors))
	case "authorisations":
		return int64(len(rd.auths))
	case "concessions":
		return int64(len(rd.concessions))
	case "vendor_presences":
		return rd.presences
	}
	panic("seed: unknown table " + tb)
}
