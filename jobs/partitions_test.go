package jobs

import (
	"context"
	"sync"
	"testing"

	"github.com/dmshub/dmsrouter/pgtest"
)

func TestPartitions(t *testing.T) {
	ctx := context.Background()
	cfg, m := deployment(t, "jobs")
	conn := pgtest.Connect(t, cfg.Shards[0].AdminDSN())
	count := func() int {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_inherits WHERE inhparent = 'vendor_presences'::regclass`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := count() // the migration made 13 months back through 3 ahead

	// Several routers at once: the lock lets one work; together they make
	// the 9 missing months up to 12 ahead exactly once.
	job := &Partitions{Shards: m.Shards, Ahead: 12}
	var wg sync.WaitGroup
	results := make([][]Result, 4)
	for i := range results {
		wg.Add(1)
		go func() { defer wg.Done(); results[i] = job.RunOnce(ctx) }()
	}
	wg.Wait()
	created := 0
	for _, rs := range results {
		for _, r := range rs {
			if r.Err != nil {
				t.Fatalf("RunOnce: %v", r.Err)
			}
			created += int(r.Count)
		}
	}
	if created != 9 || count() != before+9 {
		t.Errorf("created %d partitions (now %d, before %d), want 9", created, count(), before)
	}
	if again := job.RunOnce(ctx); again[0].Count != 0 || again[0].Err != nil {
		t.Errorf("second run = %+v, want nothing created", again[0])
	}
}
