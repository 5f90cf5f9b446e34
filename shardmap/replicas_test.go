package shardmap_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// waitReadable waits until replica i of sh is readable (want true) or not,
// as the lag monitor measures it once a second, failing tb after 30s.
func waitReadable(tb testing.TB, sh *shardmap.Shard, i int, want bool) shardmap.ReplicaLag {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := sh.ReplicaLags()[i]
		if r.Readable == want {
			return r
		}
		if time.Now().After(deadline) {
			tb.Fatalf("replica %d of %s: %+v, want Readable %v", i, sh.Name(), r, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// streamingReplica returns a deployment of twoShards on a server of its
// own whose shard nw has one real streaming replica (pg_basebackup -R),
// reached under the application_name "replica0", with the primary and the
// replica. The servers log every statement with its application_name.
func streamingReplica(tb testing.TB) (cfg shardmap.Config, primary, replica *pgtest.Server) {
	tb.Helper()
	primary = pgtest.StartOwnedWith(tb, "log_statement=all", "log_line_prefix=[%a]")
	replica = pgtest.StartReplica(tb, primary)
	cfg = pgtest.NewDeployment(tb, primary, "lag", twoShards())
	nw := shardIndex(tb, cfg, "nw")
	dsn, err := replica.Moved(cfg.Shards[nw].Primary)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.Shards[nw].Replicas = []string{dsn + "&application_name=replica0"}
	return cfg, primary, replica
}

// insertMarket writes a market of Milano named name in a write
// transaction in ctx, as the router's writes do.
func insertMarket(tb testing.TB, ctx context.Context, sh *shardmap.Shard, code, name string) {
	tb.Helper()
	err := sh.Tx(ctx, regions.Scope{Region: "03"}, "", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO markets (id, region_id, code, name, province, comune) VALUES
			(dms.next_id('markets', 3::smallint), 3, $1, $2, '015', '015146')`, code, name)
		return err
	})
	if err != nil {
		tb.Fatalf("insert market %s: %v", code, err)
	}
}

// readMarket reads whether the market coded code exists, in ctx, and which
// server answered ("replica0" or the primary's application_name).
func readMarket(tb testing.TB, ctx context.Context, sh *shardmap.Shard, code string) (found bool, server string) {
	tb.Helper()
	err := sh.Read(ctx, regions.Scope{Region: "03"}, func(b *pgx.Batch) {
		b.Queue(`SELECT EXISTS (SELECT FROM markets WHERE code = $1), current_setting('application_name')`, code).
			QueryRow(func(row pgx.Row) error { return row.Scan(&found, &server) })
	})
	if err != nil {
		tb.Fatalf("read market %s: %v", code, err)
	}
	return found, server
}

// TestReplicaLagAndReadYourWrites runs a shard with a real streaming
// replica through a write, a replay paused on the replica
// (pg_wal_replay_pause) and resumed: a read that carries the write's
// position never misses it, a replica lagging more than max_replica_lag
// gets no reads, and it gets them again after it catches up.
func TestReplicaLagAndReadYourWrites(t *testing.T) {
	cfg, _, replica := streamingReplica(t)
	m := pgtest.OpenMap(t, cfg)
	sh, err := m.For("03")
	if err != nil {
		t.Fatal(err)
	}
	replicaAdmin := replica.AdminDSN
	waitReadable(t, sh, 0, true)
	if _, server := readMarket(t, context.Background(), sh, "none"); server != "replica0" {
		t.Fatalf("a read with the replica caught up went to %s, want replica0", server)
	}

	// A write in a context with a Consistency records its position.
	c, _ := shardmap.ParseConsistency("")
	ctx := shardmap.WithConsistency(context.Background(), c)
	pgtest.Exec(t, replicaAdmin, `SELECT pg_wal_replay_pause()`)
	insertMarket(t, ctx, sh, "MI100", "after the pause")
	if !c.Wrote() || !strings.HasPrefix(c.String(), "nw:") {
		t.Fatalf("Consistency after a write = %q (wrote %v), want nw:<position>", c.String(), c.Wrote())
	}
	back, err := shardmap.ParseConsistency(c.String())
	if err != nil {
		t.Fatalf("ParseConsistency(%q): %v", c.String(), err)
	}
	again := shardmap.WithConsistency(context.Background(), back)

	// Reads that carry the position see the write, from the primary, for
	// as long as the replica has not replayed it.
	for i := range 5 {
		found, server := readMarket(t, again, sh, "MI100")
		if !found {
			t.Fatalf("read %d carrying the write's position %s (served by %s) misses the write", i, c, server)
		}
		if server == "replica0" {
			t.Fatalf("read %d carrying the write's position %s went to the paused replica", i, c)
		}
	}

	// Once the replica lags more than the limit, no read goes to it.
	r := waitReadable(t, sh, 0, false)
	if r.Lag < shardmap.DefaultMaxReplicaLag {
		t.Errorf("unreadable replica: lag %s, want at least %s", r.Lag, shardmap.DefaultMaxReplicaLag)
	}
	for i := range 10 {
		if found, server := readMarket(t, context.Background(), sh, "MI100"); !found || server == "replica0" {
			t.Fatalf("read %d with the replica lagging %s went to %s (found %v), want the primary", i, r.Lag, server, found)
		}
	}

	// After the replay resumes, the replica catches up and gets reads
	// again, also those carrying the position.
	pgtest.Exec(t, replicaAdmin, `SELECT pg_wal_replay_resume()`)
	r = waitReadable(t, sh, 0, true)
	if r.Lag >= shardmap.DefaultMaxReplicaLag {
		t.Errorf("readable replica: lag %s, want under %s", r.Lag, shardmap.DefaultMaxReplicaLag)
	}
	var wantAt shardmap.LSN
	if p := strings.TrimPrefix(c.String(), "nw:"); p != "" {
		wantAt, _ = shardmap.ParseLSN(p)
	}
	for r.Replayed < wantAt {
		time.Sleep(50 * time.Millisecond)
		r = sh.ReplicaLags()[0]
	}
	if found, server := readMarket(t, again, sh, "MI100"); !found || server != "replica0" {
		t.Errorf("read carrying the position after the replica caught up: found %v on %s, want found on replica0", found, server)
	}
}

// TestBatchRecordsPosition checks that a Batch write records its position
// and leaves its connection usable when a statement fails.
func TestBatchRecordsPosition(t *testing.T) {
	cfg, _, _ := streamingReplica(t)
	sh := lombardy(t, cfg)
	tests := []struct {
		name    string
		sql     string
		wantErr bool
	}{
		{"insert", `INSERT INTO markets (id, region_id, code, name, province, comune) VALUES
			(dms.next_id('markets', 3::smallint), 3, 'MI200', 'batch', '015', '015146')`, false},
		{"duplicate code", `INSERT INTO markets (id, region_id, code, name, province, comune) VALUES
			(dms.next_id('markets', 3::smallint), 3, 'MI200', 'batch', '015', '015146')`, true},
		{"insert after the failure", `INSERT INTO markets (id, region_id, code, name, province, comune) VALUES
			(dms.next_id('markets', 3::smallint), 3, 'MI201', 'batch', '015', '015146')`, false},
	}
	var last shardmap.LSN
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := shardmap.ParseConsistency("")
			ctx := shardmap.WithConsistency(context.Background(), c)
			err := sh.Batch(ctx, regions.Scope{Region: "03"}, func(b *pgx.Batch) { b.Queue(tc.sql) })
			if (err != nil) != tc.wantErr {
				t.Fatalf("Batch = %v, want error %v", err, tc.wantErr)
			}
			if c.Wrote() == tc.wantErr {
				t.Fatalf("Batch recorded a position: %v (%q), want %v", c.Wrote(), c.String(), !tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			lsn, err := shardmap.ParseLSN(strings.TrimPrefix(c.String(), "nw:"))
			if err != nil || lsn <= last {
				t.Errorf("position %q after the write, want nw:<position> after %s", c.String(), last)
			}
			last = lsn
		})
	}
}

// TestLagCheckCostsNoStatement counts the statements the replica logs
// under the pool's application_name for a number of reads: exactly those
// of the reads themselves (the scope and the query), none for the lag
// limit or a carried position, whose checks are in memory.
func TestLagCheckCostsNoStatement(t *testing.T) {
	cfg, _, replica := streamingReplica(t)
	sh := lombardy(t, cfg)
	waitReadable(t, sh, 0, true)
	c, err := shardmap.ParseConsistency("nw:0/1")
	if err != nil {
		t.Fatal(err)
	}
	logged := func() int {
		b, err := os.ReadFile(replica.LogFile())
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(string(b), "[replica0]LOG:  execute")
	}
	tests := []struct {
		name string
		ctx  context.Context
	}{
		{"plain reads", context.Background()},
		{"reads carrying a position", shardmap.WithConsistency(context.Background(), c)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const reads = 20
			before := logged()
			for range reads {
				if _, server := readMarket(t, tc.ctx, sh, "MI001"); server != "replica0" {
					t.Fatalf("a read went to %s, want replica0", server)
				}
			}
			// The log is written asynchronously by the server: wait for
			// the reads' statements, then check that no more came.
			want := before + 2*reads
			deadline := time.Now().Add(10 * time.Second)
			for logged() < want && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(200 * time.Millisecond)
			if got := logged() - before; got != 2*reads {
				t.Errorf("%d reads logged %d statements on the replica, want %d (the scope and the query each)", reads, got, 2*reads)
			}
		})
	}
}

func ExampleParseConsistency() {
	c, err := shardmap.ParseConsistency("s03:0/3000148")
	fmt.Println(c, err)
	// Output: s03:0/3000148 <nil>
}
