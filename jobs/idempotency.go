package jobs

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/shardmap"
)

// expiryLock names the advisory lock of the Idempotency-Key expiry job.
const expiryLock = "dmsrouter.idempotency_expiry"

// ExpireKeys deletes, on every shard, the stored Idempotency-Keys older
// than Retention (dms.expire_idempotency_keys), which would otherwise be
// kept forever: every write with a key stores one.
type ExpireKeys struct {
	Shards    func() []*shardmap.Shard // the shards to maintain, read at each run
	Retention time.Duration            // Config.IdempotencyRetention
	Every     time.Duration            // between runs
	Log       *slog.Logger
}

// expirySQL deletes the keys older than its argument.
const expirySQL = `SELECT dms.expire_idempotency_keys($1)`

// RunOnce deletes the keys older than Retention on every shard; each
// Result counts the keys deleted.
func (e *ExpireKeys) RunOnce(ctx context.Context) []Result { return e.run(ctx, 0) }

// run is RunOnce, skipping the shards where keys were expired with the
// same Retention less than fresh ago.
func (e *ExpireKeys) run(ctx context.Context, fresh time.Duration) []Result {
	ru := newRun(expiryLock, fresh, expirySQL, e.Retention.String())
	return eachShard(ctx, e.Shards(), ru, func(tx pgx.Tx, r *Result) error {
		return tx.QueryRow(ctx, expirySQL, e.Retention).Scan(&r.Count)
	})
}

// Run expires the keys now and then every e.Every until ctx is done, on
// the shards where no router did so recently, logging what it deleted and
// what failed.
func (e *ExpireKeys) Run(ctx context.Context) {
	every(ctx, e.Every, retryAfter, e.Log, "idempotency expiry", "idempotency keys expired", e.run)
}
