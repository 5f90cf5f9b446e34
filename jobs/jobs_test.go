package jobs

import (
	"context"
	"os"
	"testing"

	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/shardmap"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &pg)) }

// deployment returns a fresh single-shard deployment named name and its
// shard map, dropped and closed when t ends.
func deployment(t *testing.T, name string) (shardmap.Config, *shardmap.Map) {
	t.Helper()
	ctx := context.Background()
	cfg, err := pg.Deployment(ctx, pgtest.Prefix(name), pgtest.SingleShard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.DropDeployment(context.Background(), cfg) })
	m, err := shardmap.Open(cfg, shardmap.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return cfg, m
}
