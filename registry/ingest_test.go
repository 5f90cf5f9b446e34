package registry

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/regions"
)

// TestIngestDuplicatesRaiseNoError runs batches that repeat a row and
// that meet stored presences: they succeed, and the server's log shows no
// error (a unique violation caught and retried is still an ERROR with its
// whole statement in the log).
func TestIngestDuplicatesRaiseNoError(t *testing.T) {
	srv := pg
	if srv.LogFile() == "" {
		srv = pgtest.StartOwned(t) // a reused server's log is not ours to read
	}
	w := newWorldOn(t, srv, "ingestlog")
	ctx := context.Background()
	mi1 := w.markets["MI001"].ID
	alfa, gamma := w.vendors["Alfa Srl"].ID, w.vendors["Gamma Spa"].ID
	day := w.today.AddDate(0, 0, -2)
	rows := []PresenceRow{
		{MarketID: mi1, VendorID: alfa, Date: day, Kind: "CONCESSION"},
		{MarketID: mi1, VendorID: gamma, Date: day, Kind: "SPUNTA"},
		{MarketID: mi1, VendorID: gamma, Date: day, Kind: "SPUNTA"},
	}
	log, err := os.Open(srv.LogFile())
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	if _, err := log.Seek(0, io.SeekEnd); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		rows []PresenceRow
		want BatchOutcome
	}{
		{"a row repeated", rows, BatchOutcome{Rows: 3, Inserted: 2, Duplicate: 1}},
		{"rows stored already", rows[:2], BatchOutcome{Rows: 2, Duplicate: 2}},
		{"a new row and a stored one", []PresenceRow{rows[0], {MarketID: mi1, VendorID: gamma, Date: day.AddDate(0, 0, -1), Kind: "SPUNTA"}},
			BatchOutcome{Rows: 2, Inserted: 1, Duplicate: 1}},
	} {
		out, err := IngestPresences(ctx, w.sh, lombardia, admin, tt.rows, w.today)
		if err != nil || out.Value != tt.want {
			t.Errorf("%s: IngestPresences = %+v, %v; want %+v", tt.name, out.Value, err, tt.want)
		}
	}
	sc := bufio.NewScanner(log)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "ERROR:") {
			t.Errorf("the server logged an error: %s", sc.Text())
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
}

// TestIngestDuplicateReasons runs batches that repeat a row, meet stored
// presences, or lose a race with a concurrent writer, and checks the
// outcome and every reason: the freshness check of the fast statement
// decides only which way a batch goes, never what it is answered.
func TestIngestDuplicateReasons(t *testing.T) {
	w := newWorld(t, "ingestdups")
	ctx := context.Background()
	mi1 := w.markets["MI001"].ID
	alfa, beta, gamma := w.vendors["Alfa Srl"].ID, w.vendors["Beta di Mario Rossi"].ID, w.vendors["Gamma Spa"].ID
	stall := func(i int) *int64 { return &w.stalls[i].ID }
	day := func(n int) time.Time { return w.today.AddDate(0, 0, -n) }
	row := func(vendor int64, kind string, st *int64, d time.Time) PresenceRow {
		return PresenceRow{MarketID: mi1, VendorID: vendor, StallID: st, Date: d, Kind: kind}
	}
	// stored writes presence p outside the router in a transaction of its
	// own, left open for the caller to commit, and returns its id.
	stored := func(t *testing.T, vendor int64, kind string, st *int64, d time.Time) (pgx.Tx, int64) {
		t.Helper()
		tx, err := w.admin.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var id int64
		err = tx.QueryRow(ctx, `INSERT INTO vendor_presences (id, region_id, market_id, comune, vendor_id, stall_id, date, kind, checkin_at)
			VALUES (dms.next_id('vendor_presences', 3::smallint), 3, $1, '015146', $2, $3, $4::date, $5, $4::date::timestamptz) RETURNING id`,
			mi1, vendor, st, d, kind).Scan(&id)
		if err != nil {
			t.Fatal(err)
		}
		return tx, id
	}
	if _, err := IngestPresences(ctx, w.sh, lombardia, admin, []PresenceRow{
		row(alfa, "CONCESSION", nil, day(1)), row(gamma, "SPUNTA", stall(3), day(1)),
	}, w.today); err != nil {
		t.Fatal(err)
	}
	tx, _ := stored(t, gamma, "SPUNTA", stall(1), day(4))
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var gammaDay1 int64
	if err := w.admin.QueryRow(ctx, `SELECT id FROM vendor_presences WHERE vendor_id = $1 AND date = $2`, gamma, day(1)).Scan(&gammaDay1); err != nil {
		t.Fatal(err)
	}
	rowError := func(row int, field, reason string, earlier int) RowError {
		return RowError{Row: row, Field: field, Reason: reason, Earlier: earlier}
	}
	for _, tt := range []struct {
		name     string
		rows     []PresenceRow
		want     BatchOutcome
		rejected []RowError
	}{
		{"a row repeated", []PresenceRow{row(beta, "CONCESSION", nil, day(2)), row(beta, "CONCESSION", nil, day(2))},
			BatchOutcome{Rows: 2, Inserted: 1, Duplicate: 1}, nil},
		{"a vendor twice with other data", []PresenceRow{row(gamma, "SPUNTA", nil, day(3)), row(gamma, "SPUNTA", stall(2), day(3))},
			BatchOutcome{Rows: 2, Rejected: 1},
			[]RowError{rowError(1, "vendor_id", "row 0 has the same vendor, market and day with different data", 0)}},
		{"a stall twice", []PresenceRow{row(beta, "CONCESSION", stall(1), day(3)), row(gamma, "SPUNTA", stall(1), day(3))},
			BatchOutcome{Rows: 2, Rejected: 1},
			[]RowError{rowError(1, "stall_id", "row 0 takes the same stall on the same day", 0)}},
		{"rows stored already", []PresenceRow{row(alfa, "CONCESSION", nil, day(1)), row(gamma, "SPUNTA", stall(3), day(1))},
			BatchOutcome{Rows: 2, Duplicate: 2}, nil},
		{"a new row and a stored one", []PresenceRow{row(alfa, "CONCESSION", nil, day(1)), row(alfa, "CONCESSION", nil, day(5))},
			BatchOutcome{Rows: 2, Inserted: 1, Duplicate: 1}, nil},
		{"a stored vendor with other data", []PresenceRow{row(alfa, "CONCESSION", nil, day(1)), row(gamma, "SPUNTA", stall(2), day(1))},
			BatchOutcome{Rows: 2, Duplicate: 1, Rejected: 1},
			[]RowError{rowError(1, "vendor_id", fmt.Sprintf("the vendor already has a different presence on this day (presence %d)", gammaDay1), -1)}},
		{"a stored stall", []PresenceRow{row(beta, "CONCESSION", nil, day(4))},
			BatchOutcome{Rows: 1, Rejected: 1},
			[]RowError{rowError(0, "stall_id", "the stall is already taken on this day", -1)}},
		{"a repeated row and a stored one refused", []PresenceRow{row(beta, "CONCESSION", nil, day(6)), row(beta, "CONCESSION", nil, day(6)),
			row(beta, "CONCESSION", nil, day(4))},
			BatchOutcome{Rows: 3, Duplicate: 1, Rejected: 1},
			[]RowError{rowError(2, "stall_id", "the stall is already taken on this day", -1)}},
		{"a new row on a day with other presences", []PresenceRow{row(beta, "CONCESSION", nil, day(1))},
			BatchOutcome{Rows: 1, Inserted: 1}, nil},
	} {
		out, err := IngestPresences(ctx, w.sh, lombardia, admin, tt.rows, w.today)
		checkBatch(t, tt.name, out.Value, err, tt.want, tt.rejected)
	}

	// A race lost: a concurrent writer holds an uncommitted presence that
	// the batch's freshness check cannot see; the batch's insert waits for
	// it and meets its unique index when it commits.
	for _, tt := range []struct {
		name     string
		vendor   int64
		kind     string
		stall    *int64
		d        time.Time
		rows     []PresenceRow
		want     BatchOutcome
		rejected func(id int64) []RowError
	}{
		{"a race lost to the same presence", beta, "CONCESSION", stall(1), day(7),
			[]PresenceRow{row(beta, "CONCESSION", nil, day(7)), row(gamma, "SPUNTA", nil, day(7))},
			BatchOutcome{Rows: 2, Inserted: 1, Duplicate: 1}, nil},
		{"a race lost to another presence", gamma, "SPUNTA", nil, day(8),
			[]PresenceRow{row(beta, "CONCESSION", nil, day(8)), row(gamma, "SPUNTA", stall(3), day(8))},
			BatchOutcome{Rows: 2, Inserted: 0, Rejected: 1},
			func(id int64) []RowError {
				return []RowError{rowError(1, "vendor_id", fmt.Sprintf("the vendor already has a different presence on this day (presence %d)", id), -1)}
			}},
	} {
		tx, id := stored(t, tt.vendor, tt.kind, tt.stall, tt.d)
		type result struct {
			out Result[BatchOutcome]
			err error
		}
		done := make(chan result, 1)
		go func() {
			out, err := IngestPresences(ctx, w.sh, lombardia, admin, tt.rows, w.today)
			done <- result{out, err}
		}()
		waitForLockWait(t, w)
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		r := <-done
		var want []RowError
		if tt.rejected != nil {
			want = tt.rejected(id)
		}
		checkBatch(t, tt.name, r.out.Value, r.err, tt.want, want)
	}
}

// checkBatch fails t unless a batch's outcome and error are the wanted
// ones: without rejected rows, out and no error; else a *RejectedError
// with outcome want and exactly the rows rejected.
func checkBatch(t *testing.T, name string, out BatchOutcome, err error, want BatchOutcome, rejected []RowError) {
	t.Helper()
	if rejected == nil {
		if err != nil || out != want {
			t.Errorf("%s: IngestPresences = %+v, %v; want %+v", name, out, err, want)
		}
		return
	}
	var re *RejectedError
	if !errors.As(err, &re) {
		t.Errorf("%s: IngestPresences = %+v, %v; want rows rejected", name, out, err)
		return
	}
	if re.Outcome != want || !slices.Equal(re.Rows, rejected) {
		t.Errorf("%s: rejected %+v %+v; want %+v %+v", name, re.Outcome, re.Rows, want, rejected)
	}
}

// waitForLockWait waits until some session of w's database waits for a
// lock (a batch's insert waiting for a concurrent writer's commit).
func waitForLockWait(t *testing.T, w *world) {
	t.Helper()
	ctx := context.Background()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var waiting bool
		err := w.admin.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock')`).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		if waiting {
			return
		}
	}
	t.Fatal("no session waited for the concurrent writer")
}

// TestIngestLooksRowsUpByKey checks the generic plan of the batch's
// statement (fastSQL), as IngestPresences runs it (the login role), in a
// whole region's scope and in a comune's, on a region of 2,000 markets
// with two months of market days, 10,000 stalls and 2,000 concessions: it
// looks each row's market, market day, vendor, stall and concession up
// by key, never compares rows with a table's rows in a join filter, and
// reads no market day, market, stall or concession of the region that no
// row names. Row-level security's narrowing terms make the planner expect one
// row of each of those tables in the region; joined, the plan read the
// region's every market day into a hash join, or compared each row with
// each stall and each market in nested loops, which took 3.4-3.8 s for
// 2,000 rows at full scale (BENCHMARKS.md, "The batch statement looks rows
// up by key").
func TestIngestLooksRowsUpByKey(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, "ingest_plan")
	day := w.today.AddDate(0, 0, -1)
	for _, st := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO markets (id, region_id, code, name, province, comune, comune_name)
			SELECT dms.next_id('markets', 3::smallint), 3, 'XX' || lpad(g::text, 4, '0'), 'Mercato ' || g, '015', '015146', 'Milano'
			FROM generate_series(1, 2000) g`, nil},
		{`INSERT INTO market_days (market_id, region_id, comune, date, status, updated_by)
			SELECT m.id, m.region_id, m.comune, $1::date - d, 'HELD', 'test' FROM markets m, generate_series(0, 59) d
			WHERE m.code LIKE 'XX%'`, []any{day}},
		{`INSERT INTO stalls (id, region_id, market_id, comune, number, type, status, area_mq)
			SELECT dms.next_id('stalls', 3::smallint), 3, m.id, m.comune, g, 'FISSO', 'LIBERO', 10
			FROM markets m, generate_series(1, 5) g WHERE m.code LIKE 'XX%'`, nil},
		{`INSERT INTO concessions (id, region_id, market_id, comune, stall_id, vendor_id, valid_from, valid_to, status)
			SELECT dms.next_id('concessions', 3::smallint), 3, s.market_id, s.comune, s.id, $1, '2020-01-01', '2035-12-31', 'ATTIVA'
			FROM stalls s JOIN markets m ON m.id = s.market_id WHERE m.code LIKE 'XX%' AND s.number = 1`, []any{w.vendors["Gamma Spa"].ID}},
	} {
		if _, err := w.admin.Exec(ctx, st.sql, st.args...); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.admin.Exec(ctx, `ANALYZE markets, market_days, stalls, concessions`); err != nil {
		t.Fatal(err)
	}
	for _, sc := range []regions.Scope{lombardia, milano} {
		var plan []string
		err := w.sh.Tx(ctx, sc, pgx.ReadWrite, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, batchSetupSQL); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO presence_staging_v1 (row_no, market_id, vendor_id, date, kind)
				SELECT row_number() OVER (ORDER BY m.id) - 1, m.id, $1, $2::date, 'SPUNTA' FROM markets m WHERE m.code LIKE 'XX%'`,
				w.vendors["Alfa Srl"].ID, day); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `PREPARE ingest_plan AS `+fastSQL.sql); err != nil {
				return err
			}
			defer tx.Exec(ctx, `DEALLOCATE ingest_plan`)
			d := "'" + day.Format(time.DateOnly) + "'"
			rows, _ := tx.Query(ctx, `EXPLAIN EXECUTE ingest_plan(`+d+`, `+d+`, 3, 'dms.vendor_presences_id_03', `+d+`)`)
			var err error
			plan, err = pgx.CollectRows(rows, pgx.RowTo[string])
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		text := strings.Join(plan, "\n")
		if !strings.Contains(text, "$1") {
			t.Fatalf("the plan is not the generic one:\n%s", text)
		}
		for _, bad := range []string{"Join Filter", "Seq Scan on market_days", "Seq Scan on markets", "Seq Scan on stalls",
			"Seq Scan on concessions"} {
			if strings.Contains(text, bad) {
				t.Errorf("in scope %+v the batch's plan has %q:\n%s", sc, bad, text)
			}
		}
		// A row's concession is looked up by its vendor and market at once
		// (migration 00024), not through all the vendor's concessions.
		if want := "Index Cond: ((vendor_id = r.vendor_id) AND (market_id = r.market_id))"; !strings.Contains(text, want) {
			t.Errorf("in scope %+v the batch's plan does not look the concession up by %q:\n%s", sc, want, text)
		}
	}
}
