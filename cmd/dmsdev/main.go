// Command dmsdev holds the developer's tools, which production never runs:
// seed fills the shards with synthetic data, demo starts a local cluster,
// seeds it and serves it (make demo), bench measures the router against
// direct SQL and a monolith, ingest measures the write paths of one
// shard, and movebench measures an online region move under load. Run
// it with go run ./cmd/dmsdev <command>.
//
// The tools are a separate binary rather than subcommands of cmd/dmsrouter
// built only under a build tag. A tagged subcommand still ships in the same
// source tree as the production binary and is built in by anyone who passes
// the tag by mistake, and what a tag leaves out is invisible to go list. A
// separate main is visible to go list, so cmd/dmsrouter's deps test can
// prove that the shipped binary links no test harness (pgtest,
// internal/pgcluster, testing), seeder or benchmark, and the Dockerfile's
// go build ./cmd/dmsrouter stays clean with no flags to remember.
package main

import (
	"context"
	"io"
	_ "time/tzdata" // Europe/Rome on machines without a zoneinfo database

	"github.com/dmshub/dmsrouter/internal/cli"
)

func main() { cli.Main("dmsdev", run) }

func commands() []cli.Command {
	return []cli.Command{
		{Name: "seed", Summary: "fill every shard with deterministic synthetic data (--config F --markets N --days D)", Run: seedCmd},
		{Name: "demo", Summary: "start a local PostgreSQL, seed it on first use (again with --reset) and serve it (--config F [--markets N --days D --data DIR --reset])", Run: demoCmd},
		{Name: "bench", Summary: "measure direct SQL, the router and a monolith side by side (--config F [--monolith F2 --duration --concurrency --out])", Run: benchCmd},
		{Name: "ingest", Summary: "measure one shard's write paths on a throwaway cluster ([--markets --prefill --rows --clients])", Run: ingestCmd},
		{Name: "movebench", Summary: "measure an online region move under load on two throwaway clusters ([--markets --prefill --clients --rate --baseline --out])", Run: movebenchCmd},
	}
}

// run dispatches args to a subcommand. It blocks until the subcommand is
// done or ctx is canceled.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return cli.Dispatch(ctx, "dmsdev", commands(), args, getenv, stdout, stderr)
}
