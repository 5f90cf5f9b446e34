package jobs

import (
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
	cfg := pgtest.NewDeployment(t, pg, name, pgtest.SingleShard())
	return cfg, pgtest.OpenMap(t, cfg)
}
