// Package pgtest is the test harness: every package whose tests need
// PostgreSQL starts or reuses one server for the whole package with Main in
// its TestMain, builds throwaway shard deployments on it, and may start a
// cluster of its own with StartOwned to halt or freeze.
//
// The cluster management itself lives in internal/pgcluster, which imports
// no `testing`; pgtest adds only what needs `testing` and re-exports the rest
// under its old names, so tests import one package. Only tests import pgtest.
//
// With PGTEST_DSN set (a superuser DSN, e.g.
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable), or any of
// PGHOST/PGPORT set, tests reuse that server. Otherwise Main runs initdb from
// the installed PostgreSQL binaries (as the postgres OS user when running as
// root) in a temporary directory and starts a server on a free loopback port.
package pgtest

import (
	"context"

	"github.com/dmshub/dmsrouter/internal/pgcluster"
)

// Server is a PostgreSQL server that tests may create databases on; see
// pgcluster.Server.
type Server = pgcluster.Server

// Layout assigns region codes to shard names; see pgcluster.Layout.
type Layout = pgcluster.Layout

// TestSecret is the HS256 secret of the configurations Server.Deployment
// builds.
const TestSecret = pgcluster.DeploymentSecret

// OnePerRegion is the production layout: shard sNN serves region NN.
func OnePerRegion() Layout { return pgcluster.OnePerRegion() }

// SingleShard puts all 20 regions on one shard named "all".
func SingleShard() Layout { return pgcluster.SingleShard() }

// Split puts each region of apart on its shard there and every other
// region on the shard named rest.
func Split(rest string, apart Layout) Layout { return pgcluster.Split(rest, apart) }

// Start returns the server named by PGTEST_DSN or the PG* variables in
// getenv, or starts a throwaway one; see pgcluster.Start.
func Start(ctx context.Context, getenv func(string) string) (*Server, error) {
	return pgcluster.Start(ctx, getenv)
}
