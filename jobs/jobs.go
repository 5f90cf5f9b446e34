// Package jobs runs the router's background maintenance on every shard:
// monthly partitions of vendor_presences ahead of time, and the expiry of
// stored Idempotency-Keys. Each job takes a Postgres advisory lock per shard,
// so any number of router replicas can run it: one does the work, the others
// skip. It imports shardmap for the shards and pgx for their transactions.
package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// Config holds the settings of the jobs that an operator may change.
type Config struct {
	// IdempotencyRetention is how long a stored Idempotency-Key (and the
	// response it replays) is kept: a client's retry after that is a new
	// request.
	IdempotencyRetention time.Duration `mapstructure:"idempotency_retention"`
}

// Validate reports a retention outside 1 hour .. 90 days: shorter would
// forget keys while clients still retry, longer keeps responses (with the
// data they carry) for no client's benefit.
func (c Config) Validate() error {
	if c.IdempotencyRetention < time.Hour || c.IdempotencyRetention > 90*24*time.Hour {
		return fmt.Errorf("jobs.idempotency_retention: %s is outside 1h..2160h (90 days)", c.IdempotencyRetention)
	}
	return nil
}

// DefaultConfig returns the settings the jobs run with unless configured:
// keys are kept for a day, the window in which clients retry a request.
func DefaultConfig() Config {
	return Config{IdempotencyRetention: 24 * time.Hour}
}

// Result is one shard's outcome of a run.
type Result struct {
	Shard   string
	Count   int64 // what the run did: partitions created, keys expired
	Skipped bool  // another router held the lock
	Err     error
}

// eachShard runs fn on every shard in a transaction of its own that holds
// the advisory lock named lock; a shard whose lock another session holds is
// Skipped. fn returns what it did, as Result.Count.
func eachShard(ctx context.Context, shards []*shardmap.Shard, lock string, fn func(tx pgx.Tx) (int64, error)) []Result {
	var out []Result
	for _, sh := range shards {
		r := Result{Shard: sh.Name()}
		r.Err = sh.Tx(ctx, regions.Scope{}, pgx.ReadWrite, func(tx pgx.Tx) error {
			var locked bool
			if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock(hashtext($1))`, lock).Scan(&locked); err != nil {
				return err
			}
			if !locked {
				r.Skipped = true
				return nil
			}
			var err error
			r.Count, err = fn(tx)
			return err
		})
		out = append(out, r)
	}
	return out
}

// every calls runOnce now and then every period until ctx is done, logging
// what each shard's run did (as done, with its count) and what failed.
func every(ctx context.Context, period time.Duration, log *slog.Logger, job, done string, runOnce func(context.Context) []Result) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		for _, r := range runOnce(ctx) {
			switch {
			case r.Err != nil && ctx.Err() == nil:
				log.Warn(job+" job failed", slog.String("shard", r.Shard), slog.String("error", r.Err.Error()))
			case r.Count > 0:
				log.Info(done, slog.String("shard", r.Shard), slog.Int64("count", r.Count))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
