package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmshub/dmsrouter/internal/clitest"
)

// TestMovebenchSmallRun runs the whole move benchmark at a tiny scale on
// two throwaway clusters: the move switches and completes under load, every
// check-in answered 201 is stored once on the target (run checks it and
// fails otherwise), the report has every row, and --out puts it in place
// of the file's section of the same heading.
func TestMovebenchSmallRun(t *testing.T) {
	out := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	before := "# Benchmarks\n\n" + sectionHeading + "\n\nan older run\n\n## National fan-out\n\nkept\n"
	if err := os.WriteFile(out, []byte(before), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	args := []string{"movebench", "--markets", "4", "--prefill", "400", "--other-markets", "2", "--load-days", "60",
		"--clients", "2", "--rate", "20", "--baseline", "2s", "--out", out}
	if err := run(context.Background(), args, clitest.NoEnv, &stdout, &stderr); err != nil {
		t.Fatalf("dmsdev %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	for _, want := range []string{
		"| floor: raw COPY of region 03's rows into a scratch database on the target server |",
		"| move, copy phase: subscription created -> every table ready (rows counted at the start) |",
		"| move, freeze as the move measured it: frozen -> every router on the new epoch |",
		"| complete: drop the replication objects, delete the region's rows from the source |",
		"| baseline, before the move |",
		"| whole move outside the freeze |",
		"| region 03 write p99 during the move, outside the freeze, <= 2x without a move |",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, stdout.String())
		}
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := "# Benchmarks\n\n" + stdout.String() + "## National fan-out\n\nkept\n"; string(b) != want {
		t.Errorf("--out wrote\n%s\nwant\n%s", b, want)
	}
}

// TestReplaceSection checks where a section goes: in place of the one
// under its heading, up to the next heading of its level, or at the end.
func TestReplaceSection(t *testing.T) {
	const sec = "## B\n\nnew\n\n"
	for _, c := range []struct{ name, in, want string }{
		{"replaced in the middle", "# T\n\n## A\n\na\n\n## B\n\nold\n### sub\nold\n\n## C\n\nc\n", "# T\n\n## A\n\na\n\n" + sec + "## C\n\nc\n"},
		{"replaced at the end", "# T\n\n## B\n\nold\n", "# T\n\n" + sec},
		{"replaced at the start", "## B\n\nold\n\n## C\n", sec + "## C\n"},
		{"appended", "# T\n\n## A\n\na\n", "# T\n\n## A\n\na\n\n" + sec},
		{"a longer heading is another section", "# T\n\n## B and more\n\nx\n", "# T\n\n## B and more\n\nx\n\n" + sec},
		{"a new file", "", sec},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f.md")
			if c.in != "" {
				if err := os.WriteFile(path, []byte(c.in), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := replaceSection(path, "## B", sec); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(path)
			if string(got) != c.want {
				t.Errorf("replaceSection(%q) wrote %q, want %q", c.in, got, c.want)
			}
		})
	}
}
