package main

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/dmshub/dmsrouter/internal/clitest"
	"github.com/dmshub/dmsrouter/pgtest"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &pg)) }

// TestCommands checks that dmsdev offers exactly the dev tools, that each
// prints its flags on --help, and that the shipped commands and stray
// arguments are refused.
func TestCommands(t *testing.T) {
	var out, errOut clitest.Buffer
	if err := run(context.Background(), []string{"help"}, clitest.NoEnv, &out, &errOut); err != nil {
		t.Fatalf("dmsdev help = %v, want nil", err)
	}
	for _, name := range []string{"seed", "demo", "bench", "ingest", "movebench"} {
		if !strings.Contains(out.String(), "\n  "+name+" ") {
			t.Errorf("dmsdev help lacks %s:\n%s", name, out.String())
		}
	}
	// Every command's --help and -h print its usage and flags to stdout.
	for _, name := range []string{"seed", "demo", "bench", "ingest", "movebench"} {
		for _, help := range []string{"--help", "-h"} {
			var out, errOut clitest.Buffer
			err := run(context.Background(), []string{name, help}, clitest.NoEnv, &out, &errOut)
			if want := "usage: dmsdev " + name + " [flags]\n\nflags:\n  -"; err != nil || !strings.HasPrefix(out.String(), want) {
				t.Errorf("dmsdev %s %s = %v, printed %q; want nil and a usage beginning %q", name, help, err, out.String(), want)
			}
		}
	}
	for _, args := range [][]string{
		{"serve"},
		{"migrate", "up"},
		{"token"},
		{"seed", "--config", "x.yaml", "--markets", "1", "extra"},
		{"ingest", "extra"},
	} {
		if err := run(context.Background(), args, clitest.NoEnv, &out, &errOut); err == nil {
			t.Errorf("dmsdev %s = nil, want an error", strings.Join(args, " "))
		}
	}
}
