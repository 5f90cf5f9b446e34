package migrations_test

import (
	"os"
	"testing"

	"github.com/dmshub/dmsrouter/pgtest"
)

// pg is the server every test of the package creates its databases on.
var pg *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &pg)) }
