package main

import (
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// devPackages are the packages the shipped binary must not link: the
// standard testing package and the module's test harness and dev tools.
var devPackages = []string{
	"testing",
	"github.com/dmshub/dmsrouter/pgtest",
	"github.com/dmshub/dmsrouter/internal/pgcluster",
	"github.com/dmshub/dmsrouter/internal/clitest",
	"github.com/dmshub/dmsrouter/seed",
	"github.com/dmshub/dmsrouter/bench",
	"github.com/dmshub/dmsrouter/cmd/dmsdev",
}

// deps returns the packages go list -deps names for pkg (what its binary
// links; tests are not included).
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	// go test puts its own GOROOT/bin first on the PATH of the test binary.
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("find the go command: %v", err)
	}
	out, err := exec.Command(goBin, "list", "-deps", pkg).Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, exit.Stderr)
		}
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

// TestShippedDeps checks that the shipped binary links no test or dev
// package, and, so that the check itself can be trusted, that the dev
// binary's list shows the dev packages it links (but not testing).
func TestShippedDeps(t *testing.T) {
	const mod = "github.com/dmshub/dmsrouter/"
	for _, tc := range []struct {
		pkg  string
		want []string // the packages of devPackages in its list
	}{
		{mod + "cmd/dmsrouter", nil},
		{mod + "cmd/dmsdev", []string{mod + "internal/pgcluster", mod + "seed", mod + "bench", mod + "cmd/dmsdev"}},
	} {
		t.Run(tc.pkg, func(t *testing.T) {
			list := deps(t, tc.pkg)
			var got []string
			for _, p := range devPackages {
				if slices.Contains(list, p) {
					got = append(got, p)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("go list -deps %s holds test and dev packages %q, want %q", tc.pkg, got, tc.want)
			}
		})
	}
}
