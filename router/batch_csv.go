package router

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"strconv"
	"strings"

	"github.com/dmshub/dmsrouter/registry"
)

// The decoder of a presence batch sent as CSV (text/csv): a header row
// naming the columns, then one presence a record.

// maxCSVRecord caps the bytes of one CSV record, quoted newlines included:
// a presence takes about 110, and a spreadsheet's stray column of notes is
// no presence.
const maxCSVRecord = 4096

// csvColumns are the columns a CSV batch may name, in the order of
// batchRowBody's fields; the first four are required.
var csvColumns = []string{"market_id", "vendor_id", "date", "kind", "stall_id", "checkin_at"}

// maxCSVErrors bounds the bad cells one answer lists: a file of the wrong
// shape would otherwise list every cell.
const maxCSVErrors = 100

// isCSV reports whether the media type ct is text/csv, with no charset or
// charset UTF-8.
func isCSV(ct string) bool { return isUTF8Type(ct, "text/csv") }

// decodeBatchCSV decodes a CSV batch from body, a limitBody of limit bytes,
// as it arrives: RFC 4180 records, a UTF-8 byte order mark allowed before
// the header, an empty cell a null. Each row's line is the line its record
// starts on (a quoted newline makes lines and rows differ). A malformed
// record, a record over maxCSVRecord bytes, a header that names an unknown
// column, a column twice or misses a required one, and cells that do not
// parse are bad requests naming the line; a body over limit, or over
// registry.MaxBatchRows rows, is errTooLarge.
func decodeBatchCSV(body io.Reader, limit int64) (batchReq, error) {
	var b batchReq
	br := bufio.NewReaderSize(body, 64<<10)
	if bom, _ := br.Peek(3); bytes.Equal(bom, []byte("\ufeff")) {
		_, _ = br.Discard(3)
	}
	r := csv.NewReader(br)
	r.ReuseRecord = true
	read := func() ([]string, int, error) {
		start := r.InputOffset()
		rec, err := r.Read()
		if err != nil {
			return nil, 0, csvError(err, limit)
		}
		line, _ := r.FieldPos(0)
		if r.InputOffset()-start > maxCSVRecord {
			return nil, 0, badField(csvField(line, ""), "the record is over %d bytes", maxCSVRecord)
		}
		for _, f := range rec {
			if msg := badText(f); msg != "" {
				return nil, 0, badField(csvField(line, ""), "%s", msg)
			}
		}
		return rec, line, nil
	}
	header, _, err := read()
	if errors.Is(err, io.EOF) {
		return b, badField("body", "empty body: want a header row naming the columns, then one row a presence")
	}
	if err != nil {
		return b, err
	}
	cols, err := csvHeader(header)
	if err != nil {
		return b, err
	}
	var (
		bad   []FieldError
		cells cellSlab
	)
	for {
		rec, line, err := read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return b, err
		}
		if len(b.rows) == registry.MaxBatchRows {
			return b, tooLarge("a batch holds at most %d rows", registry.MaxBatchRows)
		}
		var row batchRowBody
		for i, col := range cols {
			if msg := row.setCSV(&cells, col, rec[i]); msg != "" && len(bad) < maxCSVErrors {
				bad = append(bad, FieldError{Field: csvField(line, csvColumns[col]), Message: msg})
			}
		}
		b.rows = append(b.rows, row)
		b.lines = append(b.lines, line)
	}
	if len(bad) > 0 {
		return b, &badRequestError{fields: bad}
	}
	if len(b.rows) == 0 {
		return b, badField("rows", "want 1 to %d rows after the header", registry.MaxBatchRows)
	}
	return b, nil
}

// csvHeader returns, for each column of header, its index in csvColumns.
func csvHeader(header []string) ([]int, error) {
	cols := make([]int, len(header))
	seen := make([]bool, len(csvColumns))
	for i, name := range header {
		name = strings.TrimSpace(name)
		col := -1
		for j, c := range csvColumns {
			if c == name {
				col = j
			}
		}
		switch {
		case col < 0:
			return nil, badField("header", "unknown column %q: want %s", clip(name, 64), strings.Join(csvColumns, ", "))
		case seen[col]:
			return nil, badField("header", "column %q given more than once", name)
		}
		seen[col], cols[i] = true, col
	}
	for j, c := range csvColumns[:4] {
		if !seen[j] {
			return nil, badField("header", "missing column %q: want %s, and optionally %s",
				c, strings.Join(csvColumns[:4], ", "), strings.Join(csvColumns[4:], ", "))
		}
	}
	return cols, nil
}

// cellSlab hands out the values of a batch's cells from slabs, one
// allocation for many cells rather than one a cell.
type cellSlab struct {
	ints []int64
	strs []string
}

const cellSlabSize = 1024

func (c *cellSlab) int(n int64) *int64 {
	if len(c.ints) == cap(c.ints) {
		c.ints = make([]int64, 0, cellSlabSize)
	}
	c.ints = append(c.ints, n)
	return &c.ints[len(c.ints)-1]
}

func (c *cellSlab) str(s string) *string {
	if len(c.strs) == cap(c.strs) {
		c.strs = make([]string, 0, cellSlabSize)
	}
	c.strs = append(c.strs, s)
	return &c.strs[len(c.strs)-1]
}

// setCSV sets the field of column col (an index in csvColumns) from cell
// v, which is null when empty, with its value from cells, and returns what
// is wrong with v, or "".
func (r *batchRowBody) setCSV(cells *cellSlab, col int, v string) string {
	if v == "" {
		return ""
	}
	var id **int64
	switch csvColumns[col] {
	case "market_id":
		id = &r.MarketID
	case "vendor_id":
		id = &r.VendorID
	case "stall_id":
		id = &r.StallID
	case "date":
		r.Date = cells.str(v)
	case "kind":
		r.Kind = cells.str(v)
	case "checkin_at":
		r.CheckinAt = cells.str(v)
	}
	if id != nil {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return "not an id: want a decimal integer"
		}
		*id = cells.int(n)
	}
	return ""
}

// csvField names the column name of the record starting on line, or the
// whole record when name is "".
func csvField(line int, name string) string {
	f := "line[" + strconv.Itoa(line) + "]"
	if name != "" {
		f += "." + name
	}
	return f
}

// csvError words an error of reading a CSV batch: a malformed record is a
// bad request naming its line, io.EOF the end; anything else is an error
// of reading the body (bodyError).
func csvError(err error, limit int64) error {
	var pe *csv.ParseError
	switch {
	case errors.Is(err, io.EOF):
		return io.EOF
	case errors.As(err, &pe) && pe.Err != nil && (errors.Is(pe.Err, csv.ErrFieldCount) ||
		errors.Is(pe.Err, csv.ErrQuote) || errors.Is(pe.Err, csv.ErrBareQuote)):
		return badField(csvField(pe.StartLine, ""), "malformed CSV at line %d, column %d: %v", pe.Line, pe.Column, pe.Err)
	}
	return bodyError(err, limit)
}
