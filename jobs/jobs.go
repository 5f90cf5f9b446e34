// Package jobs runs the router's background maintenance on every shard:
// monthly partitions of vendor_presences ahead of time, the expiry of
// stored Idempotency-Keys and the concessions' daily lifecycle (legal
// extensions, SCADUTA, proposals of decadenza). Each job takes a Postgres advisory lock per shard,
// so any number of router replicas can run it: one does the work, the others
// skip. It imports shardmap for the shards and pgx for their transactions.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
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
	// Lifecycle configures the concessions' lifecycle job.
	Lifecycle LifecycleConfig `mapstructure:"lifecycle"`
}

// LifecycleConfig configures the lifecycle job.
type LifecycleConfig struct {
	// Extensions are the legal extensions of concessions in force: a law
	// that extends the titles in force on a day to a later one.
	Extensions []Extension `mapstructure:"extensions"`
}

// Extension is a legal extension: the titles ATTIVA or SOSPESA in force on
// InForceOn whose valid_to is before Until last until Until. L. 214/2023
// art. 11 extended the titles in force on 31-12-2023 to 31-12-2025.
type Extension struct {
	InForceOn time.Time `mapstructure:"in_force_on" json:"in_force_on"`
	Until     time.Time `mapstructure:"until" json:"until"`
}

// Validate reports a retention outside 1 hour .. 90 days: shorter would
// forget keys while clients still retry, longer keeps responses (with the
// data they carry) for no client's benefit; and an extension that is not a
// period of whole days from 2000 to 2100 ending after it starts.
func (c Config) Validate() error {
	var errs []error
	if c.IdempotencyRetention < time.Hour || c.IdempotencyRetention > 90*24*time.Hour {
		errs = append(errs, fmt.Errorf("jobs.idempotency_retention: %s is outside 1h..2160h (90 days)", c.IdempotencyRetention))
	}
	first, last := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2100, 12, 31, 0, 0, 0, 0, time.UTC)
	for i, e := range c.Lifecycle.Extensions {
		key := fmt.Sprintf("jobs.lifecycle.extensions[%d]", i)
		switch {
		case e.InForceOn.IsZero() || e.Until.IsZero():
			errs = append(errs, fmt.Errorf("%s: needs in_force_on and until, dates YYYY-MM-DD", key))
		case !isDay(e.InForceOn) || !isDay(e.Until):
			errs = append(errs, fmt.Errorf("%s: in_force_on and until must be dates YYYY-MM-DD, not times", key))
		case e.InForceOn.Before(first) || e.Until.After(last):
			errs = append(errs, fmt.Errorf("%s: dates must lie in 2000-01-01..2100-12-31", key))
		case !e.Until.After(e.InForceOn):
			errs = append(errs, fmt.Errorf("%s: until %s must be after in_force_on %s", key,
				e.Until.Format(time.DateOnly), e.InForceOn.Format(time.DateOnly)))
		}
	}
	return errors.Join(errs...)
}

// isDay reports whether t is midnight UTC, a date as the configuration
// gives it.
func isDay(t time.Time) bool {
	return t.Equal(time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC))
}

// DefaultConfig returns the settings the jobs run with unless configured:
// keys are kept for a day, the window in which clients retry a request;
// the lifecycle applies the extension of L. 214/2023 art. 11: the titles
// in force on 31-12-2023 last until 31-12-2025 whatever date they carry.
func DefaultConfig() Config {
	law := Extension{InForceOn: time.Date(2023, 12, 31, 0, 0, 0, 0, time.UTC), Until: time.Date(2025, 12, 31, 0, 0, 0, 0, time.UTC)}
	return Config{IdempotencyRetention: 24 * time.Hour, Lifecycle: LifecycleConfig{Extensions: []Extension{law}}}
}

// Result is one shard's outcome of a run.
type Result struct {
	Shard string
	Count int64 // what the run did: partitions created, keys expired, concessions changed
	// Counts splits Count by what a job that does several things did
	// (the lifecycle job: extended, expired, proposed, cleared); nil for
	// the others.
	Counts  map[string]int64
	Skipped bool // another router held the lock
	Err     error
}

// eachShard runs fn on every shard in a transaction of its own that holds
// the advisory lock named lock; a shard whose lock another session holds is
// Skipped. fn records what it did in the shard's Result (Count, Counts).
func eachShard(ctx context.Context, shards []*shardmap.Shard, lock string, fn func(tx pgx.Tx, r *Result) error) []Result {
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
			return fn(tx, &r)
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
				attrs := []any{slog.String("shard", r.Shard), slog.Int64("count", r.Count)}
				for _, k := range slices.Sorted(maps.Keys(r.Counts)) {
					attrs = append(attrs, slog.Int64(k, r.Counts[k]))
				}
				log.Info(done, attrs...)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
