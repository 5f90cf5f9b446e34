// Package fleet gathers what the databases say about a deployment, in one
// place for the two that show it: the router's status page and
// GET /v1/admin/shards (package router), and dmsrouter shards status
// (internal/cli), which asks the databases without a running router. Per
// shard: its schema version, whether it is frozen for maintenance, the
// regions it holds and which of them a move froze, and its standbys as its
// primary sees them; from the control database: the current epoch, every
// router with the epoch it applied, and the moves in progress.
//
// Status is the one shape both show; what only a router knows of its
// servers (breakers, pools, latency, the lag it measured) comes from
// shardmap and is filled in by the router.
//
// It may import control, move, migrations, shardmap, regions and pgx.
package fleet

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/control"
	"github.com/dmshub/dmsrouter/migrations"
	"github.com/dmshub/dmsrouter/move"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// Timeout bounds the whole gathering of one shard's or the control
// database's facts: a database that does not answer within it is shown
// as unreachable, and a status page never waits longer.
const Timeout = 3 * time.Second

// Status is the deployment at At: every shard and, with a control
// database, its assignments, routers and moves. The status page renders
// it, GET /v1/admin/shards answers it as JSON, and dmsrouter shards status
// prints it.
type Status struct {
	At time.Time `json:"at"`
	// Source is "router" (a router's view: its breakers, pools and latency
	// included) or "databases" (asked directly, without a router).
	Source  string   `json:"source"`
	Shards  []Shard  `json:"shards"`
	Control *Control `json:"control,omitempty"`
}

// Shard is one shard: the regions the assignments give it, its servers as
// a router sees them (none when asked without one) and what its primary
// database says.
type Shard struct {
	Name    string         `json:"name"`
	Regions []regions.Code `json:"regions"`
	// Available reports whether the shard serves: its primary answered
	// (and, in a router's view, its breaker is not open).
	Available bool                    `json:"available"`
	Servers   []shardmap.ServerStatus `json:"servers,omitempty"`
	Facts
}

// Facts is what a shard's primary database says about itself.
type Facts struct {
	// SchemaVersion is the last migration applied, 0 when unknown (the
	// role cannot read goose's table: SchemaError says why); LatestVersion
	// is the newest this binary knows.
	SchemaVersion int64  `json:"schema_version"`
	LatestVersion int64  `json:"latest_version"`
	SchemaError   string `json:"schema_error,omitempty"`
	// Frozen reports a database frozen for maintenance (ALTER DATABASE
	// ... SET default_transaction_read_only = on): it takes no writes.
	Frozen bool `json:"frozen"`
	// Held are the regions whose rows the database holds
	// (dms.shard_regions.owned); FrozenRegions those a move froze for its
	// switch.
	Held          []regions.Code `json:"held_regions"`
	FrozenRegions []regions.Code `json:"frozen_regions"`
	// Standbys are the streaming replicas as the primary sees them.
	Standbys []Standby `json:"standbys"`
	// Error is why the facts could not be read ("" when they were).
	Error string `json:"error,omitempty"`
}

// Standby is one streaming replica in the primary's pg_stat_replication.
// A role without pg_monitor (or pg_read_all_stats) sees only that it
// exists: State is then "" and the lags -1.
type Standby struct {
	Name    string `json:"name"` // its application_name
	Address string `json:"address"`
	State   string `json:"state"`
	// BehindBytes is how much WAL of the primary it has not replayed.
	BehindBytes int64 `json:"behind_bytes" db:"behind_bytes"`
	// ReplayLag is PostgreSQL's replay_lag (0 once it has replayed all).
	ReplayLag time.Duration `json:"replay_lag_ns" db:"replay_lag"`
}

// factsSQL reads a shard's state in one statement. Frozen is the
// database-level setting that shardmap's writes honour
// (frozenDatabaseSQL there).
const factsSQL = `
	SELECT
	  EXISTS (SELECT FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase,
	                 unnest(s.setconfig) c
	          WHERE d.datname = current_database() AND s.setrole = 0
	            AND c ~* '^default_transaction_read_only=(on|true|yes|1)$') AS frozen,
	  coalesce((SELECT array_agg(region_id::int ORDER BY region_id) FROM dms.shard_regions WHERE owned), '{}') AS held,
	  coalesce((SELECT array_agg(region_id::int ORDER BY region_id) FROM dms.shard_regions WHERE frozen), '{}') AS frozen_regions`

// schemaSQL reads the schema version as goose does: the highest version
// whose latest record says applied.
const schemaSQL = `
	SELECT coalesce(max(version_id), 0) FROM (
	  SELECT DISTINCT ON (version_id) version_id, is_applied FROM goose_db_version ORDER BY version_id, id DESC) v
	WHERE is_applied`

// standbysSQL lists the primary's streaming replicas.
const standbysSQL = `
	SELECT coalesce(application_name, '') AS name, coalesce(client_addr::text, '') AS address,
	       coalesce(state, '') AS state,
	       coalesce(pg_wal_lsn_diff(pg_current_wal_insert_lsn(), replay_lsn)::int8, -1) AS behind_bytes,
	       coalesce((extract(epoch FROM replay_lag) * 1e9)::int8, CASE WHEN state IS NULL THEN -1 ELSE 0 END) AS replay_lag
	FROM pg_stat_replication ORDER BY application_name, client_addr`

// ReadShard reads the facts of shard cfg from its primary over a
// connection of its own, with the owner's DSN (ShardConfig.AdminDSN): the
// application's role may not read goose's table, nor the standbys'
// details. It never fails: what it could not read is in Facts.Error (the
// database is unreachable) or Facts.SchemaError.
func ReadShard(ctx context.Context, cfg shardmap.ShardConfig) Facts {
	f := Facts{Held: []regions.Code{}, FrozenRegions: []regions.Code{}, Standbys: []Standby{}}
	f.LatestVersion, _ = migrations.Latest()
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, cfg.AdminDSN())
	if err != nil {
		f.Error = fmt.Sprintf("unreachable: %v", err)
		return f
	}
	defer conn.Close(context.Background())
	var held, frozen []int32
	if err := conn.QueryRow(ctx, factsSQL).Scan(&f.Frozen, &held, &frozen); err != nil {
		f.Error = fmt.Sprintf("read the shard's state: %v", err)
		return f
	}
	f.Held, f.FrozenRegions = codes(held), codes(frozen)
	rows, _ := conn.Query(ctx, standbysSQL)
	if f.Standbys, err = pgx.CollectRows(rows, pgx.RowToStructByNameLax[Standby]); err != nil {
		f.Error = fmt.Sprintf("read pg_stat_replication: %v", err)
		f.Standbys = []Standby{}
	}
	if err := conn.QueryRow(ctx, schemaSQL).Scan(&f.SchemaVersion); err != nil {
		f.SchemaError = fmt.Sprintf("read the schema version: %v", err)
	}
	return f
}

// codes turns region numbers into codes, skipping any out of range.
func codes(nums []int32) []regions.Code {
	out := make([]regions.Code, 0, len(nums))
	for _, n := range nums {
		if c, err := regions.CodeOf(int(n)); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// ReadShards reads the facts of every shard of cfgs at once, in their order.
func ReadShards(ctx context.Context, cfgs []shardmap.ShardConfig) []Facts {
	out := make([]Facts, len(cfgs))
	var wg sync.WaitGroup
	for i, c := range cfgs {
		wg.Go(func() { out[i] = ReadShard(ctx, c) })
	}
	wg.Wait()
	return out
}

// Control is what the control database says: the current epoch of the
// assignments, every router it knows with the epoch it applied, and the
// moves in progress with their phase.
type Control struct {
	Epoch   int64             `json:"epoch"`
	Regions map[string]string `json:"-"` // the epoch's assignments
	Routers []control.Router  `json:"routers"`
	Moves   []Move            `json:"moves"`
	// Error is why the control database could not be read.
	Error string `json:"error,omitempty"`
}

// Move is a move in progress (control.moves).
type Move struct {
	ID        int64        `json:"id"`
	Region    regions.Code `json:"region"`
	Source    string       `json:"source"`
	Target    string       `json:"target"`
	Phase     move.Phase   `json:"phase"`
	StartedAt time.Time    `json:"started_at"`
	UpdatedAt time.Time    `json:"updated_at"`
	Error     string       `json:"error,omitempty"`
}

// ReadControl reads the control database through q (a router's own
// connection to it, control.Follower.DB). It never fails: what it could
// not read is in Control.Error.
func ReadControl(ctx context.Context, q control.Querier) *Control {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	c := &Control{Routers: []control.Router{}, Moves: []Move{}}
	cur, err := control.Current(ctx, q)
	if err != nil {
		c.Error = err.Error()
		return c
	}
	c.Epoch, c.Regions = cur.Epoch, cur.Regions
	if c.Routers, err = control.Routers(ctx, q); err != nil {
		c.Error, c.Routers = err.Error(), []control.Router{}
		return c
	}
	recs, err := move.Moves(ctx, q, "", 0)
	if err != nil {
		c.Error = err.Error()
		return c
	}
	for _, r := range recs {
		if !r.Phase.Terminal() {
			c.Moves = append(c.Moves, Move{ID: r.ID, Region: r.Region, Source: r.Source, Target: r.Target,
				Phase: r.Phase, StartedAt: r.StartedAt, UpdatedAt: r.UpdatedAt, Error: r.Error})
		}
	}
	return c
}

// Gather reads the deployment of cfg from its databases alone, as
// dmsrouter shards status does without a router: every shard's facts and,
// when controlDSN is set, the control database, whose epoch then says
// which regions each shard serves (else cfg's regions do). A shard is
// available when its primary answered.
func Gather(ctx context.Context, cfg shardmap.Config, controlDSN string) Status {
	st := Status{At: time.Now(), Source: "databases"}
	if controlDSN != "" {
		st.Control = controlAt(ctx, controlDSN)
		if st.Control.Error == "" {
			cfg.Regions = st.Control.Regions
		}
	}
	for i, f := range ReadShards(ctx, cfg.Shards) {
		name := cfg.Shards[i].Name
		st.Shards = append(st.Shards, Shard{Name: name, Regions: append([]regions.Code{}, cfg.ShardRegions(name)...), Available: f.Error == "", Facts: f})
	}
	return st
}

// controlAt reads the control database at dsn over a connection of its own.
func controlAt(ctx context.Context, dsn string) *Control {
	cctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	conn, err := pgx.Connect(cctx, dsn)
	if err != nil {
		return &Control{Routers: []control.Router{}, Moves: []Move{}, Error: fmt.Sprintf("unreachable: %v", err)}
	}
	defer conn.Close(context.Background())
	return ReadControl(ctx, conn)
}
