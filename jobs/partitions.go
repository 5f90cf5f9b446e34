// Package jobs runs the router's background maintenance on every shard.
// Each job takes a Postgres advisory lock per shard, so any number of router
// replicas can run it: one does the work, the others skip.
package jobs

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// partitionLock names the advisory lock of the partition job.
const partitionLock = "dmsrouter.partitions"

// Partitions creates the monthly partitions of vendor_presences ahead of
// time on every shard, so a check-in on the first day of a month never
// finds its partition missing.
type Partitions struct {
	Shards func() []*shardmap.Shard // the shards to maintain, read at each run
	Ahead  int                      // months ahead of the current one to keep ready
	Every  time.Duration            // between runs
	Log    *slog.Logger
}

// Result is one shard's outcome of a run.
type Result struct {
	Shard   string
	Created int  // partitions created
	Skipped bool // another router held the lock
	Err     error
}

// RunOnce makes sure every shard has the partitions up to Ahead months
// after the current month (in Europe/Rome, the shards' time zone).
func (p *Partitions) RunOnce(ctx context.Context) []Result {
	var out []Result
	for _, sh := range p.Shards() {
		r := Result{Shard: sh.Name()}
		r.Err = sh.Tx(ctx, regions.Scope{}, pgx.ReadWrite, func(tx pgx.Tx) error {
			var locked bool
			if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock(hashtext($1))`, partitionLock).Scan(&locked); err != nil {
				return err
			}
			if !locked {
				r.Skipped = true
				return nil
			}
			return tx.QueryRow(ctx, `SELECT dms.ensure_presence_partitions(current_date,
				(current_date + make_interval(months => $1))::date)`, p.Ahead).Scan(&r.Created)
		})
		out = append(out, r)
	}
	return out
}

// Run calls RunOnce now and then every p.Every until ctx is done, logging
// what it created and what failed.
func (p *Partitions) Run(ctx context.Context) {
	t := time.NewTicker(p.Every)
	defer t.Stop()
	for {
		for _, r := range p.RunOnce(ctx) {
			switch {
			case r.Err != nil && ctx.Err() == nil:
				p.Log.Warn("partition job failed", slog.String("shard", r.Shard), slog.String("error", r.Err.Error()))
			case r.Created > 0:
				p.Log.Info("partitions created", slog.String("shard", r.Shard), slog.Int("count", r.Created))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
