// Package jobs runs the router's background maintenance on every shard:
// monthly partitions of vendor_presences ahead of time, the expiry of
// stored Idempotency-Keys and the concessions' daily lifecycle (legal
// extensions, SCADUTA, proposals of decadenza). Each job takes a Postgres advisory lock per shard,
// so any number of router replicas can run it: one does the work, the others
// skip; and records each run in the shard's dms.job_runs, so that a replica
// whose periodic run (or start) comes soon after another's run with the same
// settings skips the shard too, rather than every replica doing the work every
// period. It imports shardmap for the shards and pgx for their transactions.
package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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
	// Recent reports that the shard was skipped because a router had run
	// the job there with the same settings less than the run's freshness
	// ago (dms.job_runs); only the periodic runs of Run skip so.
	Recent bool
	Err    error
}

// run identifies one run of a job: the advisory lock, which also names the
// job in dms.job_runs; its settings, everything that makes its work differ
// from another run's (its statement, its arguments, the day it runs for),
// hashed into the text stored; and its freshness: a shard where a run with
// the same settings started less than that ago is skipped (0: never).
type run struct {
	lock     string
	settings string
	fresh    time.Duration
}

// newRun returns the run of the job locked by lock with settings parts,
// skipped where a run with the same settings is more recent than fresh.
func newRun(lock string, fresh time.Duration, parts ...string) run {
	h := sha256.New()
	for _, p := range parts {
		// Each part with its length, so that no two lists hash alike.
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return run{lock: lock, settings: hex.EncodeToString(h.Sum(nil)), fresh: fresh}
}

// freshness is how recent another run must be for a periodic run of a job
// that runs every period to skip a shard: less than the period, so that a
// router never skips its own previous run, and near it, so that the job
// runs about once per period on each shard however many replicas run it.
// When the replica that did the work stops, another does it within
// 1.9 periods.
func freshness(period time.Duration) time.Duration { return period * 9 / 10 }

// eachShard runs fn on every shard in a transaction of its own that holds
// the advisory lock named by ru; a shard whose lock another session holds is
// Skipped, and one where dms.job_runs records a run with ru's settings more
// recent than ru.fresh is Skipped and Recent. fn records what it did in the
// shard's Result (Count, Counts); when it succeeds, the same transaction
// records the run in dms.job_runs.
func eachShard(ctx context.Context, shards []*shardmap.Shard, ru run, fn func(tx pgx.Tx, r *Result) error) []Result {
	var out []Result
	for _, sh := range shards {
		r := Result{Shard: sh.Name()}
		r.Err = sh.Tx(ctx, regions.Scope{}, pgx.ReadWrite, func(tx pgx.Tx) error {
			// A shard not yet migrated to 00021 has no dms.job_runs: its
			// runs are neither skipped nor recorded, as before it.
			var locked, recorded, recent bool
			if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock(hashtext($1)), to_regclass('dms.job_runs') IS NOT NULL`,
				ru.lock).Scan(&locked, &recorded); err != nil {
				return err
			}
			if !locked {
				r.Skipped = true
				return nil
			}
			if recorded && ru.fresh > 0 {
				// The lock is held: a run that ended just before is seen.
				if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM dms.job_runs
					WHERE job = $1 AND settings = $2 AND ran_at > now() - $3::interval)`,
					ru.lock, ru.settings, ru.fresh).Scan(&recent); err != nil {
					return err
				}
			}
			if recent {
				r.Skipped, r.Recent = true, true
				return nil
			}
			if err := fn(tx, &r); err != nil || !recorded {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO dms.job_runs (job, settings, ran_at) VALUES ($1, $2, now())
				ON CONFLICT (job) DO UPDATE SET settings = excluded.settings, ran_at = excluded.ran_at`, ru.lock, ru.settings)
			return err
		})
		out = append(out, r)
	}
	return out
}

// retryAfter is how soon a run that failed on some shard runs again,
// rather than a whole period later: a router started with cold pools (no
// database.warm_conns) may fail its first runs on connections still being
// opened, and the lifecycle's period is an hour.
const retryAfter = time.Minute

// every calls runOnce now and then every period until ctx is done, logging
// what each shard's run did (as done, with its count) and what failed;
// after a run that failed on some shard, the next comes retry later (the
// shards that succeeded then skip, their runs being recent). runOnce is
// given the freshness of a periodic run (freshness(period)).
func every(ctx context.Context, period, retry time.Duration, log *slog.Logger, job, done string, runOnce func(context.Context, time.Duration) []Result) {
	for {
		wait := period
		for _, r := range runOnce(ctx, freshness(period)) {
			switch {
			case r.Err != nil && ctx.Err() == nil:
				log.Warn(job+" job failed", slog.String("shard", r.Shard), slog.String("error", r.Err.Error()))
				wait = min(wait, retry)
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
		case <-time.After(wait):
		}
	}
}
