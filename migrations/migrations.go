// Package migrations holds the regional schema and the control database's
// schema as embedded SQL and applies them with goose (the regional one to
// shard databases, the control one to the control database, each recorded
// in its own goose table), and defines once the names the regional schema
// gives to per-region sequences and monthly presence partitions.
//
// It may import regions and the database drivers; goose stays in here.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"sync"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed sql/*.sql control/*.sql
var embedded embed.FS

// schema is the directory of one schema's embedded migrations.
type schema string

// regional is the shards' schema; control is the control database's.
const (
	regional schema = "sql"
	control  schema = "control"
)

// table returns the goose table that records which migrations of s a
// database has: the control schema has its own, so that a control
// database can never be taken for a shard, nor the other way round.
func (s schema) table() string {
	if s == control {
		return "goose_control_version"
	}
	return goose.DefaultTablename
}

// Target is one database to migrate: a shard's name, its owner DSN and the
// regions it holds, which Up records with HoldRegions after migrating. With
// a control database, the regions are its current epoch's, never the
// file's: a file written before a move would make the shard that gave the
// region away hold it again.
type Target struct {
	Name    string
	DSN     string
	Regions []regions.Code
}

// Result is what happened to one Target.
type Result struct {
	Name    string
	Before  int64 // version before the run
	Version int64 // version after the run (for Status: the current version)
	Latest  int64 // newest version embedded in this binary
	Applied int   // migrations applied by this run
	Err     error
}

// Up applies every pending migration to each target, all targets in
// parallel, and returns one Result per target in the order given. A
// concurrent Up on the same database waits on goose's advisory lock, so
// running it twice, or from several processes, is a no-op the second time.
func Up(ctx context.Context, targets []Target) []Result {
	results := each(ctx, regional, targets, up)
	for i, t := range targets {
		if results[i].Err == nil {
			if err := HoldRegions(ctx, t.DSN, t.Regions); err != nil {
				results[i].Err = fmt.Errorf("migrate %s: %w", t.Name, err)
			}
		}
	}
	return results
}

// HoldRegions records in the migrated database at dsn (an owner's DSN)
// that it holds regions rs, so that rows of those regions may be written
// there (dms.shard_regions, migration 00010); rows of any other region are
// refused. A region it holds already keeps its state: a region that an
// online move marked not owned stays so. HoldRegions never releases a
// region: a database stops holding one only once its rows are gone.
func HoldRegions(ctx context.Context, dsn string, rs []regions.Code) error {
	if len(rs) == 0 {
		return nil
	}
	nums := make([]int16, len(rs))
	for i, r := range rs {
		n := r.Num()
		if n == 0 {
			return fmt.Errorf("hold regions: unknown region %q", r)
		}
		nums[i] = int16(n)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("hold regions: %w", err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, `INSERT INTO dms.shard_regions (region_id) SELECT unnest($1::smallint[]) ON CONFLICT DO NOTHING`, nums)
	if err != nil {
		return fmt.Errorf("hold regions: %w", err)
	}
	return nil
}

// Status reports each target's current version without changing anything.
func Status(ctx context.Context, targets []Target) []Result {
	return each(ctx, regional, targets, status)
}

// ControlUp applies every pending migration of the control database's
// schema to target, as Up does for shards.
func ControlUp(ctx context.Context, target Target) Result {
	return each(ctx, control, []Target{target}, up)[0]
}

// ControlStatus reports the control database's version, as Status does
// for shards.
func ControlStatus(ctx context.Context, target Target) Result {
	return each(ctx, control, []Target{target}, status)[0]
}

func up(ctx context.Context, p *goose.Provider, r *Result) error {
	before, err := p.GetDBVersion(ctx)
	if err != nil {
		return err
	}
	r.Before = before
	applied, err := p.Up(ctx)
	r.Applied = len(applied)
	if err != nil {
		return err
	}
	r.Version, err = p.GetDBVersion(ctx)
	return err
}

func status(ctx context.Context, p *goose.Provider, r *Result) error {
	v, err := p.GetDBVersion(ctx)
	r.Before, r.Version = v, v
	return err
}

func each(ctx context.Context, sch schema, targets []Target, fn func(context.Context, *goose.Provider, *Result) error) []Result {
	results := make([]Result, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &results[i]
			r.Name = t.Name
			r.Err = withProvider(ctx, sch, t.DSN, func(p *goose.Provider) error {
				sources := p.ListSources()
				if len(sources) > 0 {
					r.Latest = sources[len(sources)-1].Version
				}
				return fn(ctx, p, r)
			})
			if r.Err != nil {
				r.Err = fmt.Errorf("migrate %s: %w", t.Name, r.Err)
			}
		}()
	}
	wg.Wait()
	return results
}

func withProvider(ctx context.Context, sch schema, dsn string, fn func(*goose.Provider) error) error {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return fmt.Errorf("parse dsn: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		return err
	}
	p, err := newProvider(db, sch)
	if err != nil {
		return err
	}
	return fn(p)
}

func newProvider(db *sql.DB, sch schema) (*goose.Provider, error) {
	fsys, err := fs.Sub(embedded, string(sch))
	if err != nil {
		return nil, err
	}
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return nil, err
	}
	return goose.NewProvider(goose.DialectPostgres, db, fsys,
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
		goose.WithTableName(sch.table()))
}

// Latest returns the newest migration version embedded in this binary,
// without a database: what a shard's version is once Up has run.
func Latest() (int64, error) { return regional.latest() }

// ControlLatest returns the newest migration version of the control
// database's schema embedded in this binary.
func ControlLatest() (int64, error) { return control.latest() }

func (s schema) latest() (int64, error) {
	names, err := fs.Glob(embedded, string(s)+"/*.sql")
	if err != nil {
		return 0, err
	}
	var latest int64
	for _, name := range names {
		v, err := goose.NumericComponent(name)
		if err != nil {
			return 0, fmt.Errorf("migration %s: %w", name, err)
		}
		latest = max(latest, v)
	}
	return latest, nil
}
