package registry

import (
	"bufio"
	"context"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/dmshub/dmsrouter/pgtest"
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
