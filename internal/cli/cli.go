// Package cli holds what the two commands, the shipped cmd/dmsrouter and
// the dev-only cmd/dmsdev, share: Main, which hands the process to a run
// function (the pattern of STYLE.md: main only calls run), dispatching to
// subcommands, flag sets that report errors instead of exiting and refuse
// stray arguments, and Serve, which runs the router for a configuration
// (dmsrouter serve, and the router of dmsdev demo and bench).
//
// It is linked into the shipped binary, so it may import only what
// production runs (router, jobs, shardmap), never pgtest,
// internal/pgcluster, seed or bench.
package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/term"
)

// RunFunc is a binary's run, or one subcommand's: it builds what it needs
// from args and getenv, writes to stdout and stderr, and blocks until it is
// done or ctx is canceled. Tests call it with their own arguments.
type RunFunc func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error

// Main is all a binary's main does: it calls run with the process's
// arguments, environment and standard streams, under a context that
// SIGINT or SIGTERM cancels, and exits 1 when run fails, printing the
// error once after prog. A run that a signal stopped cleanly returns nil,
// so the process exits 0; so does a request for help (flag.ErrHelp).
func Main(prog string, run RunFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, prog+":", err)
		os.Exit(1)
	}
}

// Command is one subcommand of a binary.
type Command struct {
	Name, Summary string
	Run           RunFunc
}

// Dispatch runs the command of cmds that args[0] names with the rest of
// args, and blocks until it is done or ctx is canceled. help, -h and --help
// print the usage of prog to stdout; no command or an unknown one prints it
// to stderr and returns an error. A command asked for its help (ParseArgs
// saw -h or --help) has its usage printed to stdout and succeeds.
func Dispatch(ctx context.Context, prog string, cmds []Command, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "usage: %s <command> [flags]\n\ncommands:\n", prog)
		for _, c := range cmds {
			fmt.Fprintf(w, "  %-8s %s\n", c.Name, c.Summary)
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
	for _, c := range cmds {
		if c.Name == args[0] {
			err := c.Run(ctx, args[1:], getenv, stdout, stderr)
			if h := (*helpError)(nil); errors.As(err, &h) {
				_, err = io.WriteString(stdout, h.usage)
			}
			return err
		}
	}
	usage(stderr)
	return fmt.Errorf("unknown command %q", args[0])
}

// NewFlags returns the flag set of subcommand name of prog. Its usage,
// "usage: prog name [flags]" and the flags, goes to stderr when a command
// calls fs.Usage; ParseArgs reports errors and help itself, once.
func NewFlags(prog, name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(prog+" "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s [flags]\n\nflags:\n", fs.Name())
		fs.PrintDefaults()
	}
	return fs
}

// helpError is what ParseArgs returns for -h or --help: the usage, which
// Dispatch prints to stdout before succeeding.
type helpError struct{ usage string }

func (e *helpError) Error() string { return "help requested" }

func (e *helpError) Unwrap() error { return flag.ErrHelp }

// ParseArgs parses a subcommand's flags and refuses positional arguments,
// which no subcommand takes. For -h or --help it returns an error wrapping
// flag.ErrHelp that carries the usage (Dispatch prints it and succeeds);
// for a bad flag, an error that names it and where the flags are listed,
// and nothing is written (Main prints the error, once).
func ParseArgs(fs *flag.FlagSet, args []string) error {
	out := fs.Output()
	fs.SetOutput(io.Discard) // the flag package's own report would repeat the error
	err := fs.Parse(args)
	fs.SetOutput(out)
	cmd := fs.Name()
	if _, sub, ok := strings.Cut(cmd, " "); ok {
		cmd = sub
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		var usage strings.Builder
		fs.SetOutput(&usage)
		fs.Usage()
		fs.SetOutput(out)
		return &helpError{usage: usage.String()}
	case err != nil:
		return fmt.Errorf("%s: %w (%s --help lists the flags)", cmd, err, fs.Name())
	case fs.NArg() > 0:
		return fmt.Errorf("%s: unexpected arguments %q", cmd, fs.Args())
	}
	return nil
}

// SubcommandFlags returns the flag set of a command of prog with
// subcommands, name such as "migrate up|status", whose usage lists them
// (subs).
func SubcommandFlags(prog, name, subs string, stderr io.Writer) *flag.FlagSet {
	fs := NewFlags(prog, name, stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s [flags]\n\n%s\nflags:\n", fs.Name(), subs)
		fs.PrintDefaults()
	}
	return fs
}

// ParseSubcommand parses the arguments of command cmd: one of subs, then
// flags. help, -h and --help return the usage (ParseArgs's help error).
func ParseSubcommand(fs *flag.FlagSet, cmd string, subs, args []string) error {
	want := strings.Join(subs, " or ")
	switch {
	case len(args) > 0 && slices.Contains(subs, args[0]):
		return ParseArgs(fs, args[1:])
	case len(args) > 0 && args[0] == "help":
		return ParseArgs(fs, []string{"-h"})
	case len(args) == 0 || strings.HasPrefix(args[0], "-"):
		if err := ParseArgs(fs, args); err != nil {
			return err
		}
		return fmt.Errorf("%s: no subcommand given: want %s (%s %s --help)", cmd, want, prog(fs), cmd)
	}
	return fmt.Errorf("%s: unknown subcommand %q: want %s (%s %s --help)", cmd, args[0], want, prog(fs), cmd)
}

// prog is the binary's name of fs, a flag set of NewFlags.
func prog(fs *flag.FlagSet) string {
	p, _, _ := strings.Cut(fs.Name(), " ")
	return p
}

// Confirm asks question on the terminal and returns nil for yes. Without
// a terminal it refuses: scripts pass --yes.
func Confirm(stdout io.Writer, question string) error {
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		return errors.New("stdin is not a terminal: pass --yes to apply without asking")
	}
	fmt.Fprintf(stdout, "%s [y/N] ", question)
	answer, _ := bufio.NewReader(os.Stdin).ReadString('\n')
	if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
		return errors.New("not confirmed")
	}
	return nil
}
