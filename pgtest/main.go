package pgtest

import (
	"context"
	"fmt"
	"os"
	"syscall"
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
	keepFuzzPipes()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	s, err := Start(ctx, os.Getenv)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	*srv = s
	// The processes this one starts reuse this server: the workers of
	// go test -fuzz are test processes running Main, and a server of their
	// own would outlive a worker its coordinator kills.
	os.Setenv("PGTEST_DSN", s.AdminDSN)
	code := m.Run()
	if err := s.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	return code
}

// keepFuzzPipes marks file descriptors 3 to 5 close-on-exec. A fuzzing
// worker (go test -fuzz) talks to its coordinator through pipes it
// inherits there without that flag; a PostgreSQL server the worker starts
// would inherit them too and outlive the worker, and the coordinator,
// waiting for the pipes to close, would hang. Descriptors that are not open
// are left alone.
func keepFuzzPipes() {
	for fd := 3; fd <= 5; fd++ {
		syscall.CloseOnExec(fd)
	}
}

// StartOwned starts a throwaway cluster that the caller owns whatever
// PGTEST_DSN says, so a test may halt, pause and resume it; it is stopped
// and removed when tb ends.
func StartOwned(tb testing.TB) *Server {
	tb.Helper()
	return StartOwnedWith(tb)
}

// StartOwnedWith is StartOwned with server settings ("name=value") that
// override the harness's defaults, such as "wal_level=replica".
func StartOwnedWith(tb testing.TB, settings ...string) *Server {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := pgcluster.StartTempWith(ctx, settings...)
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

// StartReplica starts a streaming replica of srv (see
// pgcluster.Server.StartReplica); it is stopped and removed when tb ends,
// before srv when srv was started in the same test.
func StartReplica(tb testing.TB, srv *Server) *Server {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := srv.StartReplica(ctx)
	if err != nil {
		tb.Fatalf("start replica: %v", err)
	}
	tb.Cleanup(func() { r.Stop() })
	return r
}
