package main

import (
	"testing"
)

// TestMigrateUpHoldsTheEpoch checks that with a control database, migrate
// up records in each shard the regions of the current epoch, not the
// file's: after Lombardia moved from a to b (and a deleted it), migrate up
// with the file written before the move must not make a hold it again.
func TestMigrateUpHoldsTheEpoch(t *testing.T) {
	cfg, ctlDB, path := controlDeployment(t, "migepoch", "")
	ctlDSN := pg.AdminDB(ctlDB)
	a, b := cfg.Shards[0].AdminDSN(), cfg.Shards[1].AdminDSN()
	if cfg.Shards[0].Name != "a" {
		a, b = b, a
	}
	held := func(dsn string) int64 {
		return queryInt(t, dsn, `SELECT count(*) FROM dms.shard_regions WHERE region_id = 3 AND owned`)
	}

	runOK(t, "migrate", "up", "--config", path) // seeds epoch 1 from the file: 03 on a
	if ha, hb := held(a), held(b); ha != 1 || hb != 0 {
		t.Fatalf("after the first migrate up, a owns 03: %d, b: %d; want 1, 0", ha, hb)
	}

	// Lombardia moved to b and the move completed: b owns it, a deleted
	// it; the control database says b; the file still says a.
	execSQL(t, b, `INSERT INTO dms.shard_regions (region_id, owned) VALUES (3, true)`)
	execSQL(t, a, `DELETE FROM dms.shard_regions WHERE region_id = 3`)
	execSQL(t, ctlDSN, `SELECT control.write_epoch(1, (SELECT jsonb_object_agg(region_id, CASE WHEN region_id = '03' THEN 'b' ELSE shard END)
		FROM control.assignments WHERE epoch = 1), 'move 03 to b')`)

	runOK(t, "migrate", "up", "--config", path)
	if n := queryInt(t, a, `SELECT count(*) FROM dms.shard_regions WHERE region_id = 3`); n != 0 {
		t.Errorf("migrate up with a stale file made shard a hold region 03 again (%d rows), want none", n)
	}
	if hb := held(b); hb != 1 {
		t.Errorf("after migrate up, b owns 03: %d, want 1", hb)
	}
}
