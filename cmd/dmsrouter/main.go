// Command dmsrouter is the DMS Hub regional data router: it serves the HTTP
// API over the regional shards and carries the operator commands that
// migrate, seed and measure them.
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

// command is one subcommand of dmsrouter.
type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "serve the HTTP API (--config F)", serveCmd},
		{"migrate", "apply (up) or show (status) the schema on every shard (--config F)", migrateCmd},
		{"token", "print a signed development token (--config F --sub --role --territory [--ttl])", tokenCmd},
		{"seed", "fill every shard with deterministic synthetic data (--config F --markets N --days D)", seedCmd},
		{"demo", "start a local PostgreSQL, seed it on first use and serve it (--config F [--markets N --days D --data DIR])", demoCmd},
		{"bench", "measure direct SQL, the router and a monolith side by side (--config F [--monolith F2 --duration --concurrency --out])", benchCmd},
	}
}

// run dispatches args to a subcommand. It blocks until the subcommand is
// done or ctx is canceled.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	usage := func(w io.Writer) {
		fmt.Fprintln(w, "usage: dmsrouter <command> [flags]\n\ncommands:")
		for _, c := range commands() {
			fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
		}
	}
	if len(args) == 0 {
		usage(stderr)
		return errors.New("no command given")
	}
	if args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], getenv, stdout, stderr)
		}
	}
	usage(stderr)
	return fmt.Errorf("unknown command %q", args[0])
}

// newFlags returns a flag set for a subcommand that reports errors to stderr
// instead of exiting.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("dmsrouter "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseArgs parses a subcommand's flags and refuses positional arguments,
// which no subcommand takes.
func parseArgs(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected arguments %q", fs.Name(), fs.Args())
	}
	return nil
}
