package cli_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/dmshub/dmsrouter/control"
	"github.com/dmshub/dmsrouter/internal/cli"
	"github.com/dmshub/dmsrouter/internal/clitest"
	"github.com/dmshub/dmsrouter/migrations"
	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/shardmap"
)

// TestShardsStatus runs dmsrouter shards status against the harness's
// databases, with no router: a shard whose server does not answer is shown
// unavailable and fails the command after the table; with a control
// database, its epoch and a move in progress are shown, and a region the
// move froze.
func TestShardsStatus(t *testing.T) {
	ctx := context.Background()
	cfg := pgtest.NewDeployment(t, pg, "clishards", pgtest.Split("rest", pgtest.Layout{"05": "src"}))
	latest, err := migrations.Latest()
	if err != nil {
		t.Fatal(err)
	}
	status := func(path string) (string, error) {
		var out, errOut clitest.Buffer
		err := cli.ShardsStatus(ctx, []string{"--config", path}, clitest.NoEnv, &out, &errOut)
		t.Logf("dmsrouter shards status:\n%s", out.String())
		return out.String(), err
	}

	gone := cfg
	gone.Shards = append(append([]shardmap.ShardConfig(nil), cfg.Shards...), shardmap.ShardConfig{
		Name: "gone", Primary: "postgres://postgres@127.0.0.1:1/gone?sslmode=disable&connect_timeout=2"})
	out, err := status(clitest.WriteConfig(t, gone))
	if err == nil || !strings.Contains(err.Error(), "1 shard(s) did not answer: gone") {
		t.Errorf("shards status with shard gone down = %v, want it to fail naming gone", err)
	}
	wantOutput(t, out, fmt.Sprintf("src    available    %d of %d  no      05", latest, latest),
		"gone   UNAVAILABLE  ?", "  gone: unreachable: ", "no control database")

	ctlDSN := newDatabase(t, "clishards_control")
	if r := control.Migrate(ctx, ctlDSN, cfg.Regions); r.Err != nil {
		t.Fatal(r.Err)
	}
	pgtest.Exec(t, ctlDSN, `INSERT INTO control.moves (region_id, source, target, phase, max_freeze) VALUES ('05', 'src', 'rest', 'switching', '5s')`)
	pgtest.Exec(t, pgtest.Shard(t, cfg, "src").AdminDSN(), `UPDATE dms.shard_regions SET frozen = true WHERE region_id = 5`)
	out, err = status(withControl(t, clitest.WriteConfig(t, cfg), ctlDSN))
	if err != nil {
		t.Fatalf("shards status with a control database: %v", err)
	}
	wantOutput(t, out, "no, regions 05 frozen by a move", "control database: epoch 1", "no router recorded",
		"05 Veneto  src   rest  switching")
}

// wantOutput fails t unless out contains every one of wants.
func wantOutput(t *testing.T, out string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(out, want) {
			t.Errorf("shards status printed\n%s\nwant it to contain %q", out, want)
		}
	}
}

// withControl appends a control block naming the database at dsn to the
// configuration file at path, and returns path.
func withControl(t *testing.T, path, dsn string) string {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "control:\n  dsn: %q\n", dsn); err != nil {
		t.Fatal(err)
	}
	return path
}
