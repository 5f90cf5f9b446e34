package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/shardmap"
)

// lifecycleLock names the advisory lock of the lifecycle job.
const lifecycleLock = "dmsrouter.lifecycle"

// What a lifecycle run counts, as the keys of Result.Counts.
const (
	LifecycleExtended = "extended" // titles given a legal extension
	LifecycleExpired  = "expired"  // concessions set SCADUTA
	LifecycleProposed = "proposed" // concessions newly proposed for decadenza
	LifecycleCleared  = "cleared"  // proposals withdrawn: no longer over the limit
)

// Lifecycle keeps every shard's concessions in the state the law gives
// them (dms.concession_lifecycle, migration 00015): it applies the legal
// extensions, sets SCADUTA once a concession's effective end has passed
// (nobody else may) and proposes for decadenza the ATTIVA concessions whose
// unjustified absences in the calendar year exceed their market's limit,
// for an office to confirm (DECADUTA). A run is idempotent, so it can run
// hourly: a new day in Rome is then seen soon after midnight.
type Lifecycle struct {
	Shards     func() []*shardmap.Shard // the shards to maintain, read at each run
	Extensions []Extension              // LifecycleConfig.Extensions
	Every      time.Duration            // between runs
	Log        *slog.Logger
	// Now is the clock (nil: time.Now); a run's day is its date in
	// Europe/Rome, the day of the markets.
	Now func() time.Time
}

// lifecycleTimeout bounds a shard's run: the shards' statement_timeout is
// sized for API requests, the lifecycle of the largest region takes
// seconds (BENCHMARKS.md) and may take longer on a loaded server.
const lifecycleTimeout = 5 * time.Minute

// lifecycleSQL runs the lifecycle of day $1 with the extensions $2 (JSON).
const lifecycleSQL = `SELECT extended, expired, proposed, cleared FROM dms.concession_lifecycle($1, $2::jsonb)`

// extensionJSON is an Extension as dms.concession_lifecycle reads it.
type extensionJSON struct {
	InForceOn string `json:"in_force_on"`
	Until     string `json:"until"`
}

// RunOnce runs the lifecycle on every shard for today in Europe/Rome; each
// Result counts the concessions changed, by kind in Counts. Without the
// Europe/Rome time zone every shard fails.
func (l *Lifecycle) RunOnce(ctx context.Context) []Result { return l.run(ctx, 0) }

// run is RunOnce, skipping the shards where a router ran the lifecycle of
// the same day with the same extensions less than fresh ago.
func (l *Lifecycle) run(ctx context.Context, fresh time.Duration) []Result {
	failed := newRun(lifecycleLock, 0)
	rome, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		err = fmt.Errorf("concession lifecycle: %w", err)
		return eachShard(ctx, l.Shards(), failed, func(pgx.Tx, *Result) error { return err })
	}
	now := time.Now
	if l.Now != nil {
		now = l.Now
	}
	today := now().In(rome).Format(time.DateOnly)
	exts := []extensionJSON{}
	for _, e := range l.Extensions {
		exts = append(exts, extensionJSON{e.InForceOn.Format(time.DateOnly), e.Until.Format(time.DateOnly)})
	}
	body, err := json.Marshal(exts)
	if err != nil {
		return eachShard(ctx, l.Shards(), failed, func(pgx.Tx, *Result) error { return err })
	}
	ctx = shardmap.WithQueryTimeout(ctx, lifecycleTimeout)
	ru := newRun(lifecycleLock, fresh, lifecycleSQL, today, string(body))
	return eachShard(ctx, l.Shards(), ru, func(tx pgx.Tx, r *Result) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('statement_timeout', $1, true)`,
			fmt.Sprintf("%dms", lifecycleTimeout.Milliseconds())); err != nil {
			return err
		}
		var ext, exp, prop, clr int64
		if err := tx.QueryRow(ctx, lifecycleSQL, today, string(body)).Scan(&ext, &exp, &prop, &clr); err != nil {
			return fmt.Errorf("concession lifecycle: %w", err)
		}
		r.Count = ext + exp + prop + clr
		r.Counts = map[string]int64{LifecycleExtended: ext, LifecycleExpired: exp, LifecycleProposed: prop, LifecycleCleared: clr}
		return nil
	})
}

// Run runs the lifecycle now and then every l.Every until ctx is done, on
// the shards where no router ran it recently for the same day, logging
// what it changed and what failed.
func (l *Lifecycle) Run(ctx context.Context) {
	every(ctx, l.Every, retryAfter, l.Log, "lifecycle", "concession lifecycle", l.run)
}
