package pgtest

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/dmshub/dmsrouter/internal/pgcluster"
)

// Main starts or reuses the test server, stores it in *srv, runs the
// package's tests and stops the server. Use it from TestMain:
//
//	var pg *pgtest.Server
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &pg)) }
//
// A server that cannot be started fails the package: tests against real
// PostgreSQL are never skipped silently.
func Main(m *testing.M, srv **Server) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	s, err := Start(ctx, os.Getenv)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	*srv = s
	code := m.Run()
	if err := s.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	return code
}

// StartOwned starts a throwaway cluster that the caller owns whatever
// PGTEST_DSN says, so a test may halt, pause and resume it; it is stopped
// and removed when tb ends.
func StartOwned(tb testing.TB) *Server {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := pgcluster.StartTemp(ctx)
	if err != nil {
		tb.Fatalf("start owned cluster: %v", err)
	}
	tb.Cleanup(func() { s.Stop() })
	return s
}

// Prefix returns a database name prefix unique to this test process, so
// packages testing in parallel on one server never share databases.
func Prefix(name string) string {
	return fmt.Sprintf("t%d_%s", os.Getpid(), name)
}
