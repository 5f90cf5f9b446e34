package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/dmshub/dmsrouter/internal/clitest"
	"github.com/dmshub/dmsrouter/migrations"
)

// TestUsage checks what a newcomer meets first: every subcommand's --help
// and -h print its usage and flags to stdout and succeed, and mistakes are
// reported once, naming what is wrong and what is valid.
func TestUsage(t *testing.T) {
	dev := filepath.Join("..", "..", "configs", "dev.yaml")
	for _, tc := range []struct {
		args       []string
		wantErr    string   // a substring of the error; "" for none
		wantStdout []string // substrings of stdout
	}{
		{[]string{"serve", "--help"}, "", []string{"usage: dmsrouter serve [flags]", "-addr string", "-config string"}},
		{[]string{"serve", "-h"}, "", []string{"-addr string"}},
		{[]string{"token", "--help"}, "", []string{"usage: dmsrouter token [flags]", "-territory string", "-ttl duration"}},
		{[]string{"migrate", "--help"}, "", []string{"usage: dmsrouter migrate up|status [flags]", "  status  ", "-config string"}},
		{[]string{"migrate", "up", "-h"}, "", []string{"-config string"}},
		{[]string{"migrate", "help"}, "", []string{"  up      "}},
		{[]string{"migrate", "stat"}, `migrate: unknown subcommand "stat": want up or status`, nil},
		{[]string{"migrate"}, "migrate: no subcommand given: want up or status", nil},
		{[]string{"shards", "--help"}, "", []string{"usage: dmsrouter shards apply|status [flags]", "  apply   ", "  status  ", "-regions string", "-yes", "-wait duration"}},
		{[]string{"shards"}, "shards: no subcommand given: want apply or status", nil},
		{[]string{"shards", "status", "--help"}, "", []string{"usage: dmsrouter shards status [flags]", "-config string"}},
		{[]string{"shards", "status", "--config", "nosuch.yaml"}, "shards status: ", nil},
		{[]string{"shards", "status", "--regions", "x"}, "shards status: flag provided but not defined: -regions", nil},
		{[]string{"shards", "apply", "--config", dev}, "shards apply: --regions is required", nil},
		{[]string{"region", "--help"}, "", []string{"usage: dmsrouter region move|rollback|complete|abort|status [flags]", "  rollback  ", "-max-freeze duration", "-dry-run", "-to string"}},
		{[]string{"region"}, "region: no subcommand given: want move or rollback or complete or abort or status", nil},
		{[]string{"region", "move", "--config", dev, "--region", "05"}, "region move: --to is required", nil},
		{[]string{"region", "move", "--config", dev, "--region", "99", "--to", "s05"}, "region move: --region", nil},
		{[]string{"region", "abort", "--config", dev, "--region", "05", "--dry-run"}, "region abort: --dry-run is not a flag of region abort", nil},
		{[]string{"serve", "-x"}, "serve: flag provided but not defined: -x (dmsrouter serve --help lists the flags)", nil},
		{[]string{"token", "--config", dev, "--sub", "u1", "--role", "admin_pa"},
			"--territory is required (national, region:NN, province:NNN, comune:NNNNNN, market:ID)", nil},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errOut clitest.Buffer
			err := run(context.Background(), tc.args, clitest.NoEnv, &out, &errOut)
			switch {
			case tc.wantErr == "" && err != nil, tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("run(%q) = %v, want error %q", tc.args, err, tc.wantErr)
			case err != nil && strings.Contains(errOut.String(), "flag provided"):
				t.Errorf("run(%q) = %v, and stderr repeats it:\n%s", tc.args, err, errOut.String())
			}
			for _, want := range tc.wantStdout {
				if !strings.Contains(out.String(), want) {
					t.Errorf("run(%q) printed %q, want it to contain %q", tc.args, out.String(), want)
				}
			}
		})
	}
}

// TestMigrateStatusDown checks migrate status with no server answering:
// one line per shard with the embedded latest version and the error, and
// one hint, not the same errors again.
func TestMigrateStatusDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close() // nothing listens there now
	dev := clitest.ReadFile(t, filepath.Join("..", "..", "configs", "dev.yaml"))
	path := filepath.Join(t.TempDir(), "down.yaml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(dev, ":54329/", ":"+port+"/")), 0o600); err != nil {
		t.Fatal(err)
	}
	latest, err := migrations.Latest()
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"status", "up"} {
		t.Run(cmd, func(t *testing.T) {
			var out, errOut clitest.Buffer
			err = run(context.Background(), []string{"migrate", cmd, "--config", path}, clitest.NoEnv, &out, &errOut)
			if want := "no shard answered: is PostgreSQL running? make demo starts the local cluster"; err == nil || err.Error() != want {
				t.Errorf("migrate %s with the server down = %v, want %q", cmd, err, want)
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if len(lines) != 23 {
				t.Fatalf("migrate %s printed %d lines, want a header, one per shard (20 and the spare) and the control database's:\n%s", cmd, len(lines), out.String())
			}
			// The spare shard serves no region: its regions column is empty.
			if f := strings.Fields(lines[21]); len(f) < 4 || f[0] != "s03b" || f[1] != "-" || f[3] != "error:" {
				t.Errorf("migrate %s spare line = %q, want s03b - <latest> error: <the connection error>", cmd, lines[21])
			}
			if f := strings.Fields(lines[22]); len(f) < 5 || f[0] != "control" || f[1] != "-" || f[2] != "-" || f[4] != "error:" {
				t.Errorf("migrate %s control line = %q, want control - - <latest> error: <the connection error>", cmd, lines[22])
			}
			for i, line := range lines[1:21] {
				f := strings.Fields(line)
				region := fmt.Sprintf("%02d", i+1)
				shard := "s" + region
				if len(f) < 5 || f[0] != shard || f[1] != region || f[2] != "-" || f[3] != strconv.FormatInt(latest, 10) ||
					f[4] != "error:" || !strings.Contains(line, "connect") {
					t.Errorf("migrate %s line %d = %q, want %s %s - %d error: <the connection error>", cmd, i+1, line, shard, region, latest)
				}
			}
			if errOut.String() != "" {
				t.Errorf("migrate %s wrote to stderr (Main prints the error): %q", cmd, errOut.String())
			}
		})
	}
}
