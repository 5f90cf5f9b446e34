package shardmap_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// TestMaxWaiting checks database.max_waiting on a pool of one connection
// that lets one call wait: while a write holds the connection and a read
// waits for it, further calls (a read, a write) are refused at once with
// ErrOverloaded, the refused write writes nothing, the breaker stays
// closed, and the waiting read and the holding write complete once the
// connection is free. It asserts no timings.
func TestMaxWaiting(t *testing.T) {
	cfg := pgtest.NewDeployment(t, pg, "maxwaiting", twoShards())
	cfg.Database.MaxWaiting = 1
	cfg.Database.AcquireTimeout = time.Minute // the waiting read must not give up
	for i := range cfg.Shards {
		cfg.Shards[i].MaxConns = 1
	}
	sh := lombardy(t, cfg)
	ctx := context.Background()
	sc := regions.Scope{Region: "03"}
	insert := func(tx pgx.Tx, code string) error {
		_, err := tx.Exec(ctx, `INSERT INTO markets (id, region_id, code, name, province, comune)
			VALUES (dms.next_id('markets', 3::smallint), 3, $1, 'x', '015', '015146')`, code)
		return err
	}
	count := func(code string) int {
		var n int
		if err := sh.Read(ctx, sc, func(b *pgx.Batch) {
			b.Queue(`SELECT count(*) FROM markets WHERE code = $1`, code).QueryRow(func(r pgx.Row) error { return r.Scan(&n) })
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}

	holding, release := make(chan struct{}), make(chan struct{})
	held := make(chan error, 1)
	go func() {
		held <- sh.Tx(ctx, sc, pgx.ReadWrite, func(tx pgx.Tx) error {
			if err := insert(tx, "MI001"); err != nil {
				return err
			}
			close(holding)
			<-release
			return nil
		})
	}()
	select {
	case <-holding:
	case err := <-held:
		t.Fatalf("the write that holds the only connection: %v", err)
	}
	// Two reads: one waits for the connection, the other finds that one
	// waiting and is refused; the waiting one cannot finish before the
	// release, so the first answer is the refusal.
	reads := make(chan error, 2)
	for range 2 {
		go func() { reads <- readOne(ctx, sh, "03") }()
	}
	if err := <-reads; !errors.Is(err, shardmap.ErrOverloaded) {
		t.Fatalf("a read while one call runs and one waits: %v, want ErrOverloaded", err)
	}
	err := sh.Tx(ctx, sc, pgx.ReadWrite, func(tx pgx.Tx) error { return insert(tx, "MI002") })
	if !errors.Is(err, shardmap.ErrOverloaded) {
		t.Fatalf("a write while one call runs and one waits: %v, want ErrOverloaded", err)
	}
	if got := sh.State(); got != "closed" {
		t.Errorf("breaker after the refusals = %s, want closed", got)
	}

	close(release)
	if err := <-held; err != nil {
		t.Fatalf("the holding write: %v", err)
	}
	if err := <-reads; err != nil {
		t.Fatalf("the waiting read: %v", err)
	}
	if n := count("MI002"); n != 0 {
		t.Errorf("the refused write left %d rows, want none", n)
	}
	if n := count("MI001"); n != 1 {
		t.Errorf("the holding write left %d rows, want 1", n)
	}
	// The refusal counted nothing: with the connection free, calls run again.
	if err := sh.Tx(ctx, sc, pgx.ReadWrite, func(tx pgx.Tx) error { return insert(tx, "MI003") }); err != nil {
		t.Fatalf("a write after the backlog cleared: %v", err)
	}
}

// TestPoolWaitDoesNotOpenBreaker checks that calls timing out while they
// wait for a pooled connection (acquire_timeout) are timeouts, 504, that
// the breaker does not count: more of them than breaker_failures leave it
// closed, and the calls run again once the connection is free.
func TestPoolWaitDoesNotOpenBreaker(t *testing.T) {
	cfg := pgtest.NewDeployment(t, pg, "poolwait", twoShards())
	cfg.Database.AcquireTimeout = 20 * time.Millisecond
	cfg.Database.BreakerFailures = 2
	for i := range cfg.Shards {
		cfg.Shards[i].MaxConns = 1
	}
	sh := lombardy(t, cfg)
	ctx := context.Background()
	// The holding read's own acquire opens and warms the pool's only
	// connection within the 20 ms acquire_timeout, which a loaded machine
	// can miss: it tries again until it holds the connection.
	release := make(chan struct{})
	held := make(chan error, 1)
	for attempt := 1; ; attempt++ {
		holding := make(chan struct{})
		go func() {
			held <- sh.Read(ctx, regions.Scope{Region: "03"}, func(b *pgx.Batch) {
				b.Queue(`SELECT 1`).Exec(func(pgconn.CommandTag) error {
					close(holding)
					<-release
					return nil
				})
			})
		}()
		var err error
		select {
		case <-holding:
		case err = <-held:
		}
		if err == nil {
			break
		}
		var timeout *shardmap.TimeoutError
		if !errors.As(err, &timeout) || attempt == 50 {
			t.Fatalf("the read that holds the only connection, attempt %d: %v", attempt, err)
		}
	}
	for i := range 2 * cfg.Database.BreakerFailures {
		var timeout *shardmap.TimeoutError
		if err := readOne(ctx, sh, "03"); !errors.As(err, &timeout) {
			t.Fatalf("read %d while the only connection is held: %v, want *TimeoutError", i, err)
		}
	}
	if got := sh.State(); got != "closed" {
		t.Errorf("breaker after %d pool-wait timeouts = %s, want closed", 2*cfg.Database.BreakerFailures, got)
	}
	close(release)
	if err := <-held; err != nil {
		t.Fatalf("the holding read: %v", err)
	}
	if err := readOne(ctx, sh, "03"); err != nil {
		t.Errorf("a read once the connection is free: %v", err)
	}
}
