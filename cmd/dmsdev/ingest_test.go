package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestIngestSmallRun runs the whole measurement at a small scale on the test
// server: every method writes its rows, the rollup keeps up (run checks
// both and fails otherwise), and the report has every row.
func TestIngestSmallRun(t *testing.T) {
	getenv := func(name string) string {
		if name == "PGTEST_DSN" {
			return pg.AdminDSN
		}
		return ""
	}
	var out, log bytes.Buffer
	args := []string{"ingest", "--markets", "20", "--prefill", "2000", "--rows", "1000", "--batch", "250", "--plan-batch", "100",
		"--clients", "4", "--checkins", "150"}
	if err := run(context.Background(), args, getenv, &out, &log); err != nil {
		t.Fatalf("dmsdev %s: %v\n%s", strings.Join(args, " "), err, log.String())
	}
	for _, want := range []string{
		"| POST /v1/presences/batch, JSON (COPY to staging + validated INSERT ... SELECT) | 4 x 250 rows |",
		"| POST /v1/presences/batch, CSV (text/csv, same path) | 4 x 250 rows |",
		"| plan: multi-row INSERT, ids by nextval, dms_app with scope | 10 x 100 rows |",
		"| raw COPY into vendor_presences as owner (no validation, floor) |",
		"| offices: each check-in at another market | 150 |",
		"| offices, with an Idempotency-Key | 150 |",
		"| one market at a time (worst case) | 150 |",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}
