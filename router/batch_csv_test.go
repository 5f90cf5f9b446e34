package router

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/dmshub/dmsrouter/regions"
)

// TestDecodeBatchCSV checks the CSV decoder without a database: what it
// decodes, the lines it gives each row, and the field each refusal names.
func TestDecodeBatchCSV(t *testing.T) {
	ok := []struct {
		name, in string
		rows     string // show of the rows
		lines    []int
	}{
		{"all columns", "market_id,vendor_id,stall_id,date,kind,checkin_at\n1,2,3,2026-06-15,SPUNTA,2026-06-15T07:00:00+02:00\n",
			"{1 2 3 2026-06-15 SPUNTA 2026-06-15T07:00:00+02:00}", []int{2}},
		{"columns in any order, optional ones absent", "kind,date,vendor_id,market_id\r\nSPUNTA,2026-06-15,2,1\r\n",
			"{1 2 <nil> 2026-06-15 SPUNTA <nil>}", []int{2}},
		{"empty cells are null", "market_id,vendor_id,stall_id,date,kind,checkin_at\n1,2,,,,\n",
			"{1 2 <nil> <nil> <nil> <nil>}", []int{2}},
		{"byte order mark", "\ufeffmarket_id,vendor_id,date,kind\n1,2,2026-06-15,SPUNTA\n",
			"{1 2 <nil> 2026-06-15 SPUNTA <nil>}", []int{2}},
		{"quoted newlines and blank lines", "market_id,vendor_id,date,kind\n1,2,2026-06-15,\"SPUN\nTA\"\n\n\"3\",4,2026-06-15,SPUNTA\n5,6,2026-06-15,\"a \"\"b\"\"\"",
			"{1 2 <nil> 2026-06-15 SPUN\nTA <nil>}{3 4 <nil> 2026-06-15 SPUNTA <nil>}{5 6 <nil> 2026-06-15 a \"b\" <nil>}", []int{2, 5, 6}},
	}
	for _, tt := range ok {
		t.Run(tt.name, func(t *testing.T) {
			b, err := decodeBatchCSV(strings.NewReader(tt.in), maxBatchBody)
			if err != nil {
				t.Fatalf("decodeBatchCSV(%q) = %v", tt.in, err)
			}
			if got := show(b.rows); got != tt.rows || fmt.Sprint(b.lines) != fmt.Sprint(tt.lines) {
				t.Errorf("decodeBatchCSV(%q) = %s lines %v, want %s lines %v", tt.in, got, b.lines, tt.rows, tt.lines)
			}
		})
	}

	const header = "market_id,vendor_id,date,kind\n"
	bad := []struct {
		name, in string
		fields   []string // the fields the 400 names
		large    bool     // 413 instead
	}{
		{"empty body", "", []string{"body"}, false},
		{"header only", header, []string{"rows"}, false},
		{"unknown column", "market_id,vendor_id,date,kind,colour\n", []string{"header"}, false},
		{"column twice", "market_id,vendor_id,date,kind,date\n", []string{"header"}, false},
		{"required column missing", "market_id,date,kind\n", []string{"header"}, false},
		{"bad ids", header + "1,2,2026-06-15,SPUNTA\n\"x\ny\",-,2026-06-15,SPUNTA\n", []string{"line[3].market_id", "line[3].vendor_id"}, false},
		{"too few cells", header + "1,2,2026-06-15,SPUNTA\n1,2,2026-06-15\n", []string{"line[3]"}, false},
		{"bare quote", header + "1,2,2026-06-15,SP\"UNTA\n", []string{"line[2]"}, false},
		{"unterminated quote", header + "1,2,2026-06-15,\"SPUNTA\n", []string{"line[2]"}, false},
		{"NUL", header + "1,2,2026-06-15,SP\x00UNTA\n", []string{"line[2]"}, false},
		{"not UTF-8", header + "1,2,2026-06-15,SP\xffUNTA\n", []string{"line[2]"}, false},
		{"a record too long", header + "1,2,2026-06-15,SPUNTA\n1,2,2026-06-15,\"" + strings.Repeat("x\n", 3000) + "\"\n", []string{"line[3]"}, false},
		{"10,001 rows", header + strings.Repeat("1,2,2026-06-15,SPUNTA\n", 10_001), nil, true},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeBatchCSV(strings.NewReader(tt.in), maxBatchBody)
			var br *badRequestError
			switch {
			case tt.large:
				if !errors.Is(err, errTooLarge) {
					t.Fatalf("decodeBatchCSV = %v, want errTooLarge", err)
				}
				return
			case !errors.As(err, &br):
				t.Fatalf("decodeBatchCSV = %v, want a bad request", err)
			}
			var got []string
			for _, f := range br.fields {
				got = append(got, f.Field)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.fields) {
				t.Errorf("decodeBatchCSV names %v (%v), want %v", got, br.fields, tt.fields)
			}
		})
	}

	// A body that goes over its limit while it is read (no Content-Length
	// told beforehand) is too large.
	long := header + strings.Repeat("1,2,2026-06-15,SPUNTA\n", 100)
	if _, err := decodeBatchCSV(http.MaxBytesReader(nil, io.NopCloser(strings.NewReader(long)), 1000), 1000); !errors.Is(err, errTooLarge) {
		t.Errorf("decodeBatchCSV of %d bytes, limit 1000 = %v, want errTooLarge", len(long), err)
	}
}

// FuzzDecodeBatchCSV checks, without a database, that the CSV decoder
// never panics, and that a row it accepts has a line after the header's.
func FuzzDecodeBatchCSV(f *testing.F) {
	for _, s := range []string{"market_id,vendor_id,date,kind\n1,2,2026-06-15,SPUNTA\n", "\ufeffkind,date,vendor_id,market_id,stall_id\n\"a\nb\",,1,2,\n",
		"market_id,vendor_id,date,kind\n\"1\"\"\",2,,\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		b, err := decodeBatchCSV(strings.NewReader(in), maxBatchBody)
		if err != nil {
			return
		}
		if len(b.rows) == 0 || len(b.rows) != len(b.lines) {
			t.Fatalf("decodeBatchCSV(%q) = %d rows, %d lines", in, len(b.rows), len(b.lines))
		}
		for i, l := range b.lines {
			if l < 2 || i > 0 && l <= b.lines[i-1] {
				t.Fatalf("decodeBatchCSV(%q) lines %v", in, b.lines)
			}
		}
	})
}

// csvBody returns a CSV batch of SPUNTA rows for spuntisti first..last at
// market on day, in the columns header names, plus extra records.
func csvBody(market int64, day string, first, last int, extra ...string) string {
	var b strings.Builder
	b.WriteString("kind,date,market_id,vendor_id\r\n")
	for i := first; i <= last; i++ {
		fmt.Fprintf(&b, "SPUNTA,%s,%d,%d\r\n", day, market, regions.MakeID("03", int64(i)))
	}
	for _, r := range extra {
		b.WriteString(r + "\r\n")
	}
	return b.String()
}

// TestPresenceBatchCSV sends batches as CSV: stored as JSON ones are, with
// the rollups exact; refused with the line of each bad row; nothing stored
// by a batch with any bad row; replayed by their key.
func TestPresenceBatchCSV(t *testing.T) {
	e := newEnv(t, "wcsv", false)
	nw := e.shardDSN(t, "nw")
	exec(t, nw, batchSQL)
	count := func() int64 { return scalar(t, nw, `SELECT count(*) FROM vendor_presences`) }
	base := count()
	post := func(body string, header ...string) response {
		return e.do(t, "lombardia", "POST", "/v1/presences/batch", body, append([]string{"Content-Type", "text/csv; charset=utf-8"}, header...)...)
	}

	// Twenty spuntisti at Milano, after a byte order mark, and vendor03's
	// concession presence at Bergamo, its stall from the concession, in a
	// record with an empty stall cell, a quoted time and a note-free line.
	body := "\ufeff" + strings.Replace(csvBody(milano, "2026-06-10", 3, 22), "kind,date,market_id,vendor_id", "kind,date,market_id,vendor_id,stall_id,checkin_at", 1)
	body = strings.ReplaceAll(body, "\r\n", ",,\r\n")
	body = strings.Replace(body, "checkin_at,,", "checkin_at", 1)
	body += fmt.Sprintf("CONCESSION,2026-06-08,%d,%d,,\"2026-06-08T07:15:00+02:00\"\r\n", bergamo, vendor03)
	r := post(body, "Idempotency-Key", "csv-1")
	wantStatus(t, "CSV batch", r, 201)
	if got := fmt.Sprintf("%v/%v/%v", r.body["rows"], r.body["inserted"], r.body["duplicate"]); got != "21/21/0" {
		t.Errorf("CSV batch rows/inserted/duplicate = %s, want 21/21/0", got)
	}
	if got := count() - base; got != 21 {
		t.Errorf("CSV batch wrote %d rows, want 21", got)
	}
	if got := scalar(t, nw, `SELECT stall_id FROM vendor_presences WHERE vendor_id = $1 AND date = '2026-06-08'`, vendor03); got != stallBG1 {
		t.Errorf("concession row's stall = %d, want the concession's %d", got, stallBG1)
	}
	checkRollup(t, nw)

	// The same key and bytes replay; the same key with other bytes, even
	// the same rows in another order of columns, is another request.
	again := post(body, "Idempotency-Key", "csv-1")
	wantStatus(t, "CSV batch replayed", again, 201)
	if again.raw != r.raw || again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay = %s (replayed %q), want the first response %s", again.raw, again.header.Get("Idempotent-Replayed"), r.raw)
	}
	wantStatus(t, "same key, other bytes", post(strings.Replace(body, "\r\n", "\n", -1), "Idempotency-Key", "csv-1"), 422)
	again = post(body)
	wantStatus(t, "CSV batch again without a key", again, 200)
	if got := fmt.Sprintf("%v/%v", again.body["inserted"], again.body["duplicate"]); got != "0/21" {
		t.Errorf("CSV batch again inserted/duplicate = %s, want 0/21", got)
	}

	before := writtenRows(t, nw)
	// A bad row names the line its record starts on: a quoted newline, or
	// a blank line, earlier makes the line differ from the row. A row the
	// database refuses as well, and a repeated vendor names the earlier
	// row's line too.
	quoted := fmt.Sprintf("\"SPUN\nTA\",2026-06-12,%d,%d", milano, regions.MakeID("03", 36))
	r = post(csvBody(milano, "2026-06-12", 26, 35, quoted, fmt.Sprintf("SPUNTA,2026-06-12,%d,%d", milano, regions.MakeID("03", 999))))
	wantStatus(t, "CSV batch with a quoted newline", r, 400)
	wantField(t, "quoted newline", r, "line[12].kind")
	quoted = fmt.Sprintf("\"SPUNTA\",\"2026-06-12\",\"%d\",\"%d\"\n", milano, regions.MakeID("03", 36))
	r = post(csvBody(milano, "2026-06-12", 26, 35, quoted+"\n"+fmt.Sprintf("SPUNTA,2026-06-12,%d,%d", milano, regions.MakeID("03", 999))))
	wantStatus(t, "CSV batch with an unknown vendor", r, 422)
	wantField(t, "unknown vendor", r, "line[14].vendor_id")
	r = post(fmt.Sprintf("market_id,vendor_id,stall_id,date,kind\n%[1]d,%[2]d,,2026-06-12,SPUNTA\n%[1]d,%[3]d,,2026-06-12,SPUNTA\n%[1]d,%[2]d,%[4]d,2026-06-12,SPUNTA\n",
		milano, regions.MakeID("03", 26), regions.MakeID("03", 27), stallMI2))
	wantStatus(t, "CSV batch with a vendor twice", r, 422)
	wantField(t, "vendor twice", r, "line[4].vendor_id")
	if !strings.Contains(r.raw, "line 2 has the same vendor") {
		t.Errorf("vendor twice: problem %s does not name the earlier row's line 2", r.raw)
	}

	// A bad row deep in a large batch, found while the body is read,
	// refuses the batch and stores nothing.
	var rows []string
	for i := range 3000 {
		day := "2026-06-13"
		if i == 2500 {
			day = "2026-13-01"
		}
		rows = append(rows, fmt.Sprintf("SPUNTA,%s,%d,%d", day, milano, regions.MakeID("03", int64(3+i%40))))
	}
	r = post(csvBody(milano, "2026-06-13", 1, 0, rows...))
	wantStatus(t, "a bad row deep in a large CSV batch", r, 400)
	wantField(t, "bad row deep", r, "line[2502].date")

	// The shape of the body.
	for _, tt := range []struct {
		name, body, field string
		status            int
		header            []string
	}{
		{"wrong header", "market,vendor,date,kind\n", "header", 400, nil},
		{"unknown column", "market_id,vendor_id,date,kind,notes\n", "header", 400, nil},
		{"column twice", "market_id,vendor_id,date,kind,kind\n", "header", 400, nil},
		{"a row too long", csvBody(milano, "2026-06-12", 3, 3, fmt.Sprintf("SPUNTA,2026-06-12,%d,\"%s\"", milano, strings.Repeat("1", 5000))), "line[3]", 400, nil},
		{"a body over the limit", csvBody(milano, "2026-06-12", 3, 3) + strings.Repeat("\r\n", 5<<20), "", 413, nil},
		{"10,001 rows", csvBody(milano, "2026-06-12", 1, 0, slices.Repeat([]string{fmt.Sprintf("SPUNTA,2026-06-12,%d,%d", milano, vendorFB)}, 10_001)...), "", 413, nil},
		{"text/plain", csvBody(milano, "2026-06-12", 3, 3), "", 415, []string{"Content-Type", "text/plain"}},
		{"CSV in Latin-1", csvBody(milano, "2026-06-12", 3, 3), "", 415, []string{"Content-Type", "text/csv; charset=iso-8859-1"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := post(tt.body, tt.header...)
			wantStatus(t, tt.name, r, tt.status)
			if tt.field != "" {
				wantField(t, tt.name, r, tt.field)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
				t.Errorf("%s: Content-Type %q, want application/problem+json", tt.name, ct)
			}
			if tt.status == 415 && !strings.Contains(r.raw, "text/csv") {
				t.Errorf("%s: problem %s does not offer text/csv", tt.name, r.raw)
			}
		})
	}
	if after := writtenRows(t, nw); after != before {
		t.Errorf("refused CSV batches changed the shard:\nbefore %s\nafter  %s", before, after)
	}
	checkRollup(t, nw)
}
