// Command dmsrouter is the DMS Hub regional data router, the binary that
// production runs: it serves the HTTP API over the regional shards and
// carries the operator commands that migrate the shards and sign
// development tokens.
//
// The dev tools (seed, demo, bench, ingest) live in cmd/dmsdev, so this
// binary links no test harness, seeder or benchmark; deps_test.go checks
// that with go list.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // Europe/Rome on machines without a zoneinfo database

	"github.com/dmshub/dmsrouter/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "dmsrouter:", err)
		}
		os.Exit(1)
	}
}

func commands() []cli.Command {
	return []cli.Command{
		{Name: "serve", Summary: "serve the HTTP API (--config F)", Run: serveCmd},
		{Name: "migrate", Summary: "apply (up) or show (status) the schema on every shard (--config F)", Run: migrateCmd},
		{Name: "token", Summary: "print a signed development token (--config F --sub --role --territory [--ttl])", Run: tokenCmd},
	}
}

// run dispatches args to a subcommand. It blocks until the subcommand is
// done or ctx is canceled.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return cli.Dispatch(ctx, "dmsrouter", commands(), args, getenv, stdout, stderr)
}
