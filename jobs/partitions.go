package jobs

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

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

// RunOnce makes sure every shard has the partitions up to Ahead months
// after the current month (in Europe/Rome, the shards' time zone); each
// Result counts the partitions created.
func (p *Partitions) RunOnce(ctx context.Context) []Result {
	return eachShard(ctx, p.Shards(), partitionLock, func(tx pgx.Tx, r *Result) error {
		return tx.QueryRow(ctx, `SELECT dms.ensure_presence_partitions(current_date,
			(current_date + make_interval(months => $1))::date)`, p.Ahead).Scan(&r.Count)
	})
}

// Run calls RunOnce now and then every p.Every until ctx is done, logging
// what it created and what failed.
func (p *Partitions) Run(ctx context.Context) {
	every(ctx, p.Every, p.Log, "partition", "partitions created", p.RunOnce)
}
