package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// TestRefusals checks the clients' view of a freeze: the longest run of
// refused writes ends at a write answered 201, and the latencies leave out
// what ran during a skipped window.
func TestRefusals(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	w := func(ms, took, status int) sample {
		return sample{start: at(ms), took: time.Duration(took) * time.Millisecond, status: status}
	}
	for _, c := range []struct {
		name    string
		samples []sample
		count   int
		run     time.Duration
	}{
		{"none", []sample{w(0, 5, 201), w(10, 5, 201)}, 0, 0},
		{"one run", []sample{w(0, 5, 201), w(10, 5, 503), w(20, 10, 503), w(1010, 5, 201)}, 2, 20 * time.Millisecond},
		{"the longer of two runs", []sample{w(0, 5, 503), w(10, 5, 201), w(20, 5, 503), w(30, 5, 503), w(40, 20, 503), w(100, 5, 201)}, 4, 40 * time.Millisecond},
		{"a run to the end", []sample{w(0, 5, 201), w(10, 5, 503)}, 1, 5 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			rf := refusalsOf(c.samples)
			if got := rf.run.to.Sub(rf.run.from); rf.count != c.count || got != c.run {
				t.Errorf("refusalsOf = %d refused, run %s; want %d, %s", rf.count, got, c.count, c.run)
			}
		})
	}
	samples := []sample{w(0, 5, 201), w(10, 30, 201), w(50, 5, 503), w(60, 5, 201), w(100, 7, 201)}
	lt := measure(samples, window{at(0), at(200)}, window{at(30), at(70)})
	if lt.n != 2 || lt.refused != 0 || lt.ms(100) != "7.0" {
		t.Errorf("measure skipping 30-70 ms = %d answered, %d refused, max %s ms; want 2, 0, 7.0", lt.n, lt.refused, lt.ms(100))
	}
}
