package router

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/shardmap"
)

// withReplica moves e's shard nw onto a server of its own with a real
// streaming replica (pg_basebackup -R), loads the fixture there and
// reloads the router's shard map; it returns the replica and the shard once
// the replica gets reads.
func (e *env) withReplica(t *testing.T, name string) (*pgtest.Server, *shardmap.Shard) {
	t.Helper()
	primary := pgtest.StartOwned(t)
	replica := pgtest.StartReplica(t, primary)
	deployed := pgtest.NewDeployment(t, primary, name, layout())
	loadFixture(t, deployed)
	own := pgtest.Shard(t, deployed, "nw")
	dsn, err := replica.Moved(own.Primary)
	if err != nil {
		t.Fatal(err)
	}
	own.Replicas = []string{dsn}
	cfg := e.m.Config()
	cfg.Shards = append([]shardmap.ShardConfig(nil), cfg.Shards...)
	for i := range cfg.Shards {
		if cfg.Shards[i].Name == "nw" {
			cfg.Shards[i] = own
		}
	}
	if _, err := e.m.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	sh, err := e.m.For("03")
	if err != nil {
		t.Fatal(err)
	}
	waitReplica(t, sh, true)
	return replica, sh
}

// waitReplica waits until sh's replica is readable (want) or not, as the
// router measures it once a second, failing t after 30s.
func waitReplica(t *testing.T, sh *shardmap.Shard, want bool) shardmap.ReplicaLag {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := sh.ReplicaLags()[0]
		if r.Readable == want {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica of %s: %+v, want Readable %v", sh.Name(), r, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReadYourWrites checks the DMS-Consistency header against a real
// streaming replica whose replay is paused: a write's answer carries the
// header, a read sending it back sees the write, a read without it is
// served by the primary once the replica lags past max_replica_lag, and
// the replica serves reads again after replay resumes.
func TestReadYourWrites(t *testing.T) {
	e := newEnv(t, "rywr", false)
	replica, sh := e.withReplica(t, "rywr")
	h := shardmap.ConsistencyHeader

	// Bad headers are bad requests.
	for _, bad := range []string{"nw", "nw:12", "nw:0/zz", "NW!:0/1", "nw:0/1,,"} {
		r := e.do(t, "lombardia", "GET", "/v1/markets/"+ids(milano), "", h, bad)
		wantStatus(t, "GET with "+h+": "+bad, r, 400)
		wantField(t, "GET with "+h+": "+bad, r, h)
	}
	// Reads answer no header; a header of another shard changes nothing.
	r := e.do(t, "lombardia", "GET", "/v1/markets/"+ids(milano), "", h, "rest:FF/0")
	wantStatus(t, "GET with another shard's position", r, 200)
	if got := r.header.Get(h); got != "" {
		t.Errorf("a read answered %s: %q, want none", h, got)
	}

	pgtest.Exec(t, replica.AdminDSN, `SELECT pg_wal_replay_pause()`)
	r = e.do(t, "lombardia", "POST", "/v1/markets", `{"code":"MI077","name":"Dopo la pausa","comune":"015146"}`, h, "rest:0/10")
	wantStatus(t, "POST /v1/markets", r, 201)
	pos := r.header.Get(h)
	if !strings.HasPrefix(pos, "nw:") || !strings.HasSuffix(pos, ",rest:0/10") {
		t.Fatalf("POST answered %s: %q, want nw:<position>,rest:0/10 (its own and the one it was sent)", h, pos)
	}
	created := "/v1/markets/" + ids(int64(r.body["id"].(float64)))
	for i := range 5 {
		wantStatus(t, fmt.Sprintf("read %d of the new market carrying %s", i, pos), e.do(t, "lombardia", "GET", created, "", h, pos), 200)
	}
	lag := waitReplica(t, sh, false)
	for i := range 5 {
		wantStatus(t, fmt.Sprintf("read %d without %s, the replica lagging %s", i, h, lag.Lag), e.get(t, "lombardia", created), 200)
	}

	pgtest.Exec(t, replica.AdminDSN, `SELECT pg_wal_replay_resume()`)
	waitReplica(t, sh, true)
	wantStatus(t, "read carrying the position after the replica caught up", e.do(t, "lombardia", "GET", created, "", h, pos), 200)
	wantStatus(t, "read without it after the replica caught up", e.get(t, "lombardia", created), 200)
}
