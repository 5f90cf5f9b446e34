package jobs

import (
	"context"
	"log/slog"
	"strconv"
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

// partitionSQL makes the partitions from the current month to $1 months
// after it.
const partitionSQL = `SELECT dms.ensure_presence_partitions(current_date,
	(current_date + make_interval(months => $1))::date)`

// RunOnce makes sure every shard has the partitions up to Ahead months
// after the current month (in Europe/Rome, the shards' time zone); each
// Result counts the partitions created.
func (p *Partitions) RunOnce(ctx context.Context) []Result { return p.run(ctx, 0) }

// run is RunOnce, skipping the shards where a router made sure of the same
// months (the same Ahead, the same day in UTC) less than fresh ago. Near
// midnight the shards' day may turn before UTC's, and the month Ahead
// months out is then made by a later run: hours later, months before any
// presence needs it.
func (p *Partitions) run(ctx context.Context, fresh time.Duration) []Result {
	ru := newRun(partitionLock, fresh, partitionSQL, strconv.Itoa(p.Ahead), time.Now().UTC().Format(time.DateOnly))
	return eachShard(ctx, p.Shards(), ru, func(tx pgx.Tx, r *Result) error {
		return tx.QueryRow(ctx, partitionSQL, p.Ahead).Scan(&r.Count)
	})
}

// Run makes sure of the partitions now and then every p.Every until ctx is
// done, on the shards where no router did so recently, logging what it
// created and what failed.
func (p *Partitions) Run(ctx context.Context) {
	every(ctx, p.Every, retryAfter, p.Log, "partition", "partitions created", p.run)
}
