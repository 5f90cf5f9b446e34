package control

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dmshub/dmsrouter/migrations"
)

// Channel is the channel control.write_epoch notifies with the new epoch
// as payload.
const Channel = "dms_assignments"

// ErrNotSeeded reports a control database that holds no epoch yet:
// dmsrouter migrate up seeds epoch 1 from the file's regions.
var ErrNotSeeded = errors.New("the control database holds no assignments yet: run dmsrouter migrate up")

// ErrEpochChanged reports that a new epoch was not written because the
// current one is no longer the one its author read.
var ErrEpochChanged = errors.New("the assignments changed meanwhile")

// Querier is what the functions here run their SQL on: a pool, a
// connection, or a transaction (the region move writes its epoch in the
// transaction that records its phase).
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Assignments is one epoch: which shard serves each region code.
type Assignments struct {
	Epoch     int64             `db:"epoch"`
	CreatedAt time.Time         `db:"created_at"`
	Note      string            `db:"note"`
	Regions   map[string]string `db:"regions"`
}

// Current returns the newest epoch, read in one query, or ErrNotSeeded.
func Current(ctx context.Context, q Querier) (Assignments, error) {
	rows, _ := q.Query(ctx, `SELECT epoch, created_at, note, regions FROM control.current`)
	a, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Assignments])
	if errors.Is(err, pgx.ErrNoRows) {
		return Assignments{}, ErrNotSeeded
	}
	if err != nil {
		return Assignments{}, fmt.Errorf("read the current epoch: %w", err)
	}
	return a, nil
}

// WriteEpoch writes regions as the epoch after expected and notifies
// Channel when q's transaction commits; it returns the new epoch. It
// returns ErrEpochChanged when the current epoch is not expected. The
// caller validates regions against the configuration's shards first.
func WriteEpoch(ctx context.Context, q Querier, expected int64, regions map[string]string, note string) (int64, error) {
	var epoch int64
	err := q.QueryRow(ctx, `SELECT control.write_epoch($1, $2, $3)`, expected, regions, note).Scan(&epoch)
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == "DMC01" {
		return 0, fmt.Errorf("%w: %s", ErrEpochChanged, pgErr.Message)
	}
	if err != nil {
		return 0, fmt.Errorf("write epoch %d: %w", expected+1, err)
	}
	return epoch, nil
}

// Result is what Migrate or Status found in the control database: its
// schema version (as for a shard) and its current epoch.
type Result struct {
	migrations.Result
	Epoch   int64             // the current epoch; 0 when none
	Regions map[string]string // its assignments
	Seeded  bool              // Migrate wrote epoch 1 from the file's regions
}

// Migrate applies the control schema to the database at dsn and, when it
// holds no epoch yet, seeds epoch 1 from regions (the file's). Running it
// again, or from several processes at once, changes nothing more.
func Migrate(ctx context.Context, dsn string, regions map[string]string) Result {
	r := Result{Result: migrations.ControlUp(ctx, migrations.Target{Name: "control", DSN: dsn})}
	if r.Err != nil {
		return r
	}
	r.Err = withConn(ctx, dsn, func(conn *pgx.Conn) error {
		cur, err := Current(ctx, conn)
		if errors.Is(err, ErrNotSeeded) {
			if _, err = WriteEpoch(ctx, conn, 0, regions, "seeded from the configuration file's regions"); err == nil {
				r.Seeded = true
			} else if !errors.Is(err, ErrEpochChanged) { // another migrate seeded it: fine
				return err
			}
			cur, err = Current(ctx, conn)
		}
		r.Epoch, r.Regions = cur.Epoch, cur.Regions
		return err
	})
	return r
}

// Status returns the control database's schema version and current
// epoch without changing anything.
func Status(ctx context.Context, dsn string) Result {
	r := Result{Result: migrations.ControlStatus(ctx, migrations.Target{Name: "control", DSN: dsn})}
	if r.Err != nil || r.Version == 0 {
		return r
	}
	r.Err = withConn(ctx, dsn, func(conn *pgx.Conn) error {
		cur, err := Current(ctx, conn)
		if errors.Is(err, ErrNotSeeded) {
			return nil
		}
		r.Epoch, r.Regions = cur.Epoch, cur.Regions
		return err
	})
	return r
}

func withConn(ctx context.Context, dsn string, fn func(*pgx.Conn) error) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("control database: %w", err)
	}
	defer conn.Close(context.Background())
	return fn(conn)
}

// Router is a router process's row in control.routers.
type Router struct {
	ID           string    `db:"router_id" json:"id"`
	Host         string    `db:"host" json:"host"`
	PID          int32     `db:"pid" json:"pid"`
	StartedAt    time.Time `db:"started_at" json:"started_at"`
	EpochApplied int64     `db:"epoch_applied" json:"epoch_applied"`
	LastError    string    `db:"last_error" json:"last_error,omitempty"`
	LastSeen     time.Time `db:"last_seen" json:"last_seen"`
	// Live: seen within three of its poll intervals.
	Live bool `db:"live" json:"live"`
}

// Routers returns every router the control database knows, live ones
// first, by id.
func Routers(ctx context.Context, q Querier) ([]Router, error) {
	rows, _ := q.Query(ctx, `
		SELECT router_id, host, pid, started_at, epoch_applied, last_error, last_seen,
		       last_seen > now() - 3 * poll_interval AS live
		FROM control.routers
		ORDER BY live DESC, router_id`)
	rs, err := pgx.CollectRows(rows, pgx.RowToStructByName[Router])
	if err != nil {
		return nil, fmt.Errorf("read control.routers: %w", err)
	}
	return rs, nil
}

// WaitApplied waits until every live router has applied epoch (or a later
// one), reading control.routers every interval, and calls applied once
// for each router as it is seen to have. It returns nil when none lags
// behind, or ctx's error and the live routers still behind when ctx is
// done first (bound it with a timeout).
func WaitApplied(ctx context.Context, q Querier, epoch int64, every time.Duration, applied func(Router)) ([]Router, error) {
	reported := map[string]bool{}
	var behind []Router
	for {
		rs, err := Routers(ctx, q)
		if ctx.Err() != nil {
			return behind, ctx.Err()
		}
		if err != nil {
			return nil, err
		}
		behind = nil
		for _, r := range rs {
			switch {
			case r.EpochApplied >= epoch && !reported[r.ID]:
				reported[r.ID] = true
				applied(r)
			case r.Live && r.EpochApplied < epoch:
				behind = append(behind, r)
			}
		}
		if len(behind) == 0 {
			return nil, nil
		}
		select {
		case <-ctx.Done():
			return behind, ctx.Err()
		case <-time.After(every):
		}
	}
}
