// Command dmsrouter is the DMS Hub regional data router, the binary that
// production runs: it serves the HTTP API over the regional shards and
// carries the operator commands that migrate the shards, change the region
// assignments and sign development tokens.
//
// The dev tools (seed, demo, bench, ingest) live in cmd/dmsdev, so this
// binary links no test harness, seeder or benchmark; deps_test.go checks
// that with go list.
package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	_ "time/tzdata" // Europe/Rome on machines without a zoneinfo database

	"github.com/dmshub/dmsrouter/internal/cli"
)

func main() { cli.Main("dmsrouter", run) }

func commands() []cli.Command {
	return []cli.Command{
		{Name: "serve", Summary: "serve the HTTP API (--config F)", Run: serveCmd},
		{Name: "migrate", Summary: "apply (up) or show (status) the schema on every shard (--config F)", Run: migrateCmd},
		{Name: "region", Summary: "move a region to another shard online (move --config F --region 05 --to S [--dry-run] [--max-freeze 5s] [--yes]; rollback, complete, abort, status)", Run: cli.Region},
		{Name: "shards", Summary: "change the region assignments in the control database (apply --config F --regions FILE [--yes]); show the shards (status --config F)", Run: shardsCmd},
		{Name: "token", Summary: "print a signed development token (--config F --sub --role --territory [--ttl])", Run: tokenCmd},
	}
}

// run dispatches args to a subcommand. It blocks until the subcommand is
// done or ctx is canceled.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	// The dev tools that were subcommands here say where they went.
	if len(args) > 0 && slices.Contains([]string{"seed", "demo", "bench", "ingest"}, args[0]) {
		return fmt.Errorf("%s is a dev tool, in the dev binary: go run ./cmd/dmsdev %s", args[0], args[0])
	}
	return cli.Dispatch(ctx, "dmsrouter", commands(), args, getenv, stdout, stderr)
}
