package fleet_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/dmshub/dmsrouter/fleet"
	"github.com/dmshub/dmsrouter/migrations"
	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// TestReadShard reads a shard whose primary streams to a real replica:
// the schema version, the regions held, the standby as the primary sees
// it and, with the replica's replay paused, the WAL it has not replayed;
// with the application's role (no admin DSN), what that role may not read
// is said, not guessed.
func TestReadShard(t *testing.T) {
	ctx := context.Background()
	primary := pgtest.StartOwned(t)
	replica := pgtest.StartReplica(t, primary)
	cfg := pgtest.NewDeployment(t, primary, "fleet", pgtest.Split("rest", pgtest.Layout{"03": "nw"}))
	nw := pgtest.Shard(t, cfg, "nw")
	latest, err := migrations.Latest()
	if err != nil {
		t.Fatal(err)
	}

	// The standby reports its replay position once it has streamed.
	var f fleet.Facts
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		f = fleet.ReadShard(ctx, nw)
		if len(f.Standbys) == 1 && f.Standbys[0].State == "streaming" && f.Standbys[0].BehindBytes >= 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ReadShard(nw) standbys = %+v, want one streaming", f.Standbys)
		}
	}
	if f.Error != "" || f.SchemaError != "" || f.SchemaVersion != latest || f.LatestVersion != latest || f.Frozen ||
		!slices.Equal(f.Held, []regions.Code{"03"}) || len(f.FrozenRegions) != 0 {
		t.Errorf("ReadShard(nw) = %+v, want schema %d, region 03 held, nothing frozen", f, latest)
	}

	replicaAdmin, err := replica.Moved(nw.AdminDSN())
	if err != nil {
		t.Fatal(err)
	}
	pgtest.Exec(t, replicaAdmin, `SELECT pg_wal_replay_pause()`)
	t.Cleanup(func() { pgtest.Exec(t, replicaAdmin, `SELECT pg_wal_replay_resume()`) })
	pgtest.Exec(t, nw.AdminDSN(), `INSERT INTO markets (id, region_id, code, name, province, comune) VALUES
		(dms.next_id('markets', 3::smallint), 3, 'MI001', 'Mercato in pausa', '015', '015146')`)
	if f = fleet.ReadShard(ctx, nw); len(f.Standbys) != 1 || f.Standbys[0].BehindBytes <= 0 {
		t.Errorf("with replay paused after a write, standbys = %+v, want one behind by some bytes", f.Standbys)
	}

	app := shardmap.ShardConfig{Name: "nw", Primary: nw.Primary} // AdminDSN falls back to the app's role
	f = fleet.ReadShard(ctx, app)
	if f.Error != "" || f.SchemaVersion != 0 || f.SchemaError == "" || !slices.Equal(f.Held, []regions.Code{"03"}) {
		t.Errorf("ReadShard as the app's role = %+v, want the state read, the schema version refused", f)
	}
	if len(f.Standbys) != 1 || f.Standbys[0].State != "" || f.Standbys[0].BehindBytes != -1 || f.Standbys[0].ReplayLag != -1 {
		t.Errorf("standbys as the app's role = %+v, want one without details (-1)", f.Standbys)
	}

	gone := fleet.ReadShard(ctx, shardmap.ShardConfig{Name: "gone", Primary: "postgres://postgres@127.0.0.1:1/gone?sslmode=disable"})
	if gone.Error == "" || gone.Held == nil || gone.Standbys == nil {
		t.Errorf("ReadShard of a server that is down = %+v, want why, and empty lists", gone)
	}
}
