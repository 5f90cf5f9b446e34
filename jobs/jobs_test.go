package jobs

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/shardmap"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &pg)) }

// deployment returns a fresh single-shard deployment named name and its
// shard map, dropped and closed when t ends.
func deployment(t *testing.T, name string) (shardmap.Config, *shardmap.Map) {
	t.Helper()
	cfg := pgtest.NewDeployment(t, pg, name, pgtest.SingleShard())
	return cfg, pgtest.OpenMap(t, cfg)
}

// TestRecentRuns checks that a periodic run skips a shard where a run with
// the same settings is recent in dms.job_runs, whichever router made it,
// and only then: not after a run with other settings, not once the run is
// older than the freshness, never for RunOnce, and that a failed run
// records nothing.
func TestRecentRuns(t *testing.T) {
	ctx := context.Background()
	cfg, m := deployment(t, "jobs_recent")
	admin := pgtest.Connect(t, cfg.Shards[0].AdminDSN())
	expect := func(what string, rs []Result, recent bool) {
		t.Helper()
		if len(rs) != 1 || rs[0].Err != nil || rs[0].Recent != recent || rs[0].Skipped != recent {
			t.Errorf("%s = %+v, want Recent and Skipped %v", what, rs, recent)
		}
	}
	hour := &ExpireKeys{Shards: m.Shards, Retention: time.Hour}
	expect("the first periodic run", hour.run(ctx, time.Hour), false)
	// Another replica's periodic run (the same settings, the same table).
	other := &ExpireKeys{Shards: m.Shards, Retention: time.Hour}
	expect("another replica's periodic run just after", other.run(ctx, time.Hour), true)
	expect("RunOnce just after", other.RunOnce(ctx), false)
	twoHours := &ExpireKeys{Shards: m.Shards, Retention: 2 * time.Hour}
	expect("a periodic run with another retention", twoHours.run(ctx, time.Hour), false)
	expect("the first retention again", hour.run(ctx, time.Hour), false)
	expect("the first retention once more", hour.run(ctx, time.Hour), true)
	if _, err := admin.Exec(ctx, `UPDATE dms.job_runs SET ran_at = ran_at - interval '61 minutes' WHERE job = $1`, expiryLock); err != nil {
		t.Fatal(err)
	}
	expect("a periodic run 61 minutes after the last", hour.run(ctx, time.Hour), false)

	// The lifecycle's settings hold its day and extensions (the shards
	// refuse any day but today's): new extensions run at once.
	life := &Lifecycle{Shards: m.Shards}
	expect("the lifecycle's first run", life.run(ctx, time.Hour), false)
	expect("the lifecycle again", life.run(ctx, time.Hour), true)
	life.Extensions = []Extension{{InForceOn: time.Date(2023, 12, 31, 0, 0, 0, 0, time.UTC), Until: time.Date(2025, 12, 31, 0, 0, 0, 0, time.UTC)}}
	expect("the lifecycle with an extension", life.run(ctx, time.Hour), false)
	part := &Partitions{Shards: m.Shards, Ahead: 3}
	expect("the partitions' first run", part.run(ctx, time.Hour), false)
	expect("the partitions again", part.run(ctx, time.Hour), true)

	// A run that fails records nothing: the next one is not skipped.
	ru := newRun("dmsrouter.test", time.Hour, "settings")
	failed := eachShard(ctx, m.Shards(), ru, func(pgx.Tx, *Result) error { return errors.New("the job failed") })
	if len(failed) != 1 || failed[0].Err == nil {
		t.Fatalf("a failing run = %+v, want its error", failed)
	}
	expect("the run after a failed one", eachShard(ctx, m.Shards(), ru, func(pgx.Tx, *Result) error { return nil }), false)

	// A shard not yet migrated to 00021 runs every job, records nothing.
	if _, err := admin.Exec(ctx, `DROP TABLE dms.job_runs`); err != nil {
		t.Fatal(err)
	}
	expect("a run without dms.job_runs", hour.run(ctx, time.Hour), false)
	expect("the next run without dms.job_runs", hour.run(ctx, time.Hour), false)
}

// TestFreshness checks that a router never skips its own previous run:
// the freshness of a period is shorter than the period.
func TestFreshness(t *testing.T) {
	for _, p := range []time.Duration{time.Minute, time.Hour, 6 * time.Hour} {
		if f := freshness(p); f >= p || f < p/2 {
			t.Errorf("freshness(%s) = %s, want less than the period and more than half of it", p, f)
		}
	}
}

// TestEveryRetriesFailures checks that a run that failed on some shard is
// run again after retry, not a period later, and that every gives runOnce
// the freshness of its period.
func TestEveryRetriesFailures(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := make(chan time.Duration, 10)
	n := 0
	runOnce := func(_ context.Context, fresh time.Duration) []Result {
		calls <- fresh
		n++
		if n == 1 {
			return []Result{{Shard: "s01"}, {Shard: "s02", Err: errors.New("acquire timed out")}}
		}
		return []Result{{Shard: "s01", Skipped: true, Recent: true}, {Shard: "s02", Count: 1}}
	}
	done := make(chan struct{})
	go func() {
		every(ctx, time.Hour, 10*time.Millisecond, slog.New(slog.DiscardHandler), "test", "tested", runOnce)
		close(done)
	}()
	for i := range 2 {
		select {
		case fresh := <-calls:
			if fresh != freshness(time.Hour) {
				t.Errorf("run %d: freshness %s, want %s", i+1, fresh, freshness(time.Hour))
			}
		case <-time.After(time.Minute):
			t.Fatalf("run %d did not come: a failed run waited for its period", i+1)
		}
	}
	// The second run succeeded everywhere: the next waits for the period.
	select {
	case <-calls:
		t.Error("a third run came at once after a run that failed nowhere")
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	<-done
}
