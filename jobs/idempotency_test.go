package jobs

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/pgtest"
)

func TestExpireKeys(t *testing.T) {
	ctx := context.Background()
	cfg, m := deployment(t, "jobs_keys")
	admin := pgtest.Connect(t, cfg.Shards[0].AdminDSN())
	// Keys of two regions and users, stored hours ago.
	ages := map[string]time.Duration{"fresh": time.Hour, "day-less-a-minute": 24*time.Hour - time.Minute,
		"day-and-a-minute": 24*time.Hour + time.Minute, "week": 7 * 24 * time.Hour}
	for key, age := range ages {
		for _, region := range []int{3, 12} {
			_, err := admin.Exec(ctx, `INSERT INTO idempotency_keys (region_id, user_sub, role, territory, key, fingerprint, created, response, created_at)
				VALUES ($1::smallint, 'u' || $1::text, 'admin_pa', 'national', $2, '\x00', true, '{}', now() - $3::interval)`, region, key, age)
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	keys := func() map[string]int {
		rows, err := admin.Query(ctx, `SELECT key FROM idempotency_keys`)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		ks, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range ks {
			got[k]++
		}
		return got
	}

	tests := []struct {
		retention time.Duration
		expired   int64
		kept      []string
	}{
		{30 * 24 * time.Hour, 0, []string{"fresh", "day-less-a-minute", "day-and-a-minute", "week"}},
		{DefaultConfig().IdempotencyRetention, 4, []string{"fresh", "day-less-a-minute"}},
		{DefaultConfig().IdempotencyRetention, 0, []string{"fresh", "day-less-a-minute"}},
		{30 * time.Minute, 4, nil},
	}
	for _, tt := range tests {
		job := &ExpireKeys{Shards: m.Shards, Retention: tt.retention}
		rs := job.RunOnce(ctx)
		if len(rs) != 1 || rs[0].Err != nil || rs[0].Skipped || rs[0].Count != tt.expired {
			t.Fatalf("RunOnce with retention %v = %+v, want %d keys expired", tt.retention, rs, tt.expired)
		}
		got := keys()
		if len(got) != len(tt.kept) {
			t.Errorf("after retention %v, keys %v are left, want %v in both regions", tt.retention, got, tt.kept)
		}
		for _, k := range tt.kept {
			if got[k] != 2 {
				t.Errorf("after retention %v, key %q is left in %d regions, want 2", tt.retention, k, got[k])
			}
		}
	}
}

func TestExpireKeysLock(t *testing.T) {
	ctx := context.Background()
	cfg, m := deployment(t, "jobs_lock")
	// Another router holds the job's lock: this one skips the shard.
	other := pgtest.Connect(t, cfg.Shards[0].AdminDSN())
	tx, err := other.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, expiryLock); err != nil {
		t.Fatal(err)
	}
	job := &ExpireKeys{Shards: m.Shards, Retention: time.Hour}
	if rs := job.RunOnce(ctx); len(rs) != 1 || !rs[0].Skipped || rs[0].Err != nil {
		t.Errorf("RunOnce while another holds the lock = %+v, want the shard skipped", rs)
	}
	tx.Rollback(ctx)
	if rs := job.RunOnce(ctx); len(rs) != 1 || rs[0].Skipped || rs[0].Err != nil {
		t.Errorf("RunOnce after the lock is released = %+v, want the shard done", rs)
	}
}
