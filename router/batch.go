package router

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"strconv"
	"unicode/utf8"

	"github.com/dmshub/dmsrouter/registry"
)

// The decoders of a presence batch, {"rows": [...]}: decodeBatchFast for
// the common form, encoding/json for the rest, and a row at a time when
// that fails, so that the error names the row.

// batchReq is a decoded batch: its rows and, for CSV, the line each row
// starts on.
type batchReq struct {
	rows  []batchRowBody
	lines []int
}

// field returns the namer of the fields of row i: rows[i].name for JSON,
// line[n].name for CSV. The name is built only when called, for a bad
// field, so a good batch builds no strings.
func (b *batchReq) field(i int) func(name string) string {
	return func(name string) string {
		if b.lines != nil {
			return csvField(b.lines[i], name)
		}
		return "rows[" + strconv.Itoa(i) + "]." + name
	}
}

// linesError is the error of a CSV batch, whose rows the client knows by
// their lines: the problem it becomes names lines (see the error table).
type linesError struct {
	err   error
	lines []int
}

func (e *linesError) Error() string { return e.err.Error() }
func (e *linesError) Unwrap() error { return e.err }

// batchRowBody is one row of a presence batch.
type batchRowBody struct {
	MarketID  *int64  `json:"market_id"`
	VendorID  *int64  `json:"vendor_id"`
	StallID   *int64  `json:"stall_id"`
	Date      *string `json:"date"`
	Kind      *string `json:"kind"`
	CheckinAt *string `json:"checkin_at"`
}

// decodeBatch decodes {"rows": [...]}: with decodeBatchFast when it can,
// else with encoding/json, and when that fails the body is read again a
// row at a time, so that the error names the row. More than
// registry.MaxBatchRows rows is errTooLarge.
func decodeBatch(body []byte) ([]batchRowBody, error) {
	rows, ok := decodeBatchFast(body)
	if !ok {
		var err error
		if rows, err = decodeBatchJSON(body); err != nil {
			return nil, err
		}
	}
	switch {
	case len(rows) > registry.MaxBatchRows:
		return nil, tooLarge("a batch holds at most %d rows", registry.MaxBatchRows)
	case len(rows) == 0:
		return nil, badField("rows", "want 1 to %d rows", registry.MaxBatchRows)
	}
	return rows, nil
}

// decodeBatchJSON decodes {"rows": [...]} with encoding/json, refusing
// keys that do not spell a field exactly (inexactKey).
func decodeBatchJSON(body []byte) ([]batchRowBody, error) {
	var b struct {
		Rows []batchRowBody `json:"rows"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		if _, rowErr := decodeBatchRows(body); rowErr != nil {
			return nil, rowErr
		}
		return nil, jsonError("", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, badField("body", "unexpected data after the JSON object")
	}
	if key, ok := inexactKey(body, reflect.TypeOf(&b)); ok {
		return nil, badField(key, "unknown field")
	}
	return b.Rows, nil
}

// decodeBatchRows decodes {"rows": [...]} a row at a time, so a bad row is
// named by its index.
func decodeBatchRows(body []byte) ([]batchRowBody, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	delim := func(want json.Delim) error {
		t, err := dec.Token()
		if err != nil {
			return jsonError("", err)
		}
		if d, ok := t.(json.Delim); !ok || d != want {
			if want == '[' {
				return badField("rows", "want an array of rows")
			}
			return badField("body", "want a JSON object {\"rows\": [...]}")
		}
		return nil
	}
	if err := delim('{'); err != nil {
		return nil, err
	}
	var rows []batchRowBody
	seen := false
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, jsonError("", err)
		}
		if name, _ := t.(string); name != "rows" {
			return nil, badField(name, "unknown field")
		}
		if seen {
			return nil, badField("rows", "given more than once")
		}
		seen = true
		if err := delim('['); err != nil {
			return nil, err
		}
		for dec.More() {
			if len(rows) == registry.MaxBatchRows {
				return nil, tooLarge("a batch holds at most %d rows", registry.MaxBatchRows)
			}
			var row batchRowBody
			if err := dec.Decode(&row); err != nil {
				return nil, jsonError("rows["+strconv.Itoa(len(rows))+"].", err)
			}
			rows = append(rows, row)
		}
		if err := delim(']'); err != nil {
			return nil, err
		}
	}
	if err := delim('}'); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, badField("body", "unexpected data after the JSON object")
	}
	return rows, nil
}

// decodeBatchFast decodes the common form of a batch body, in about a
// tenth of encoding/json's time: {"rows": [...]} whose rows are flat objects
// with the keys of batchRowBody spelled exactly, integer ids (no sign,
// fraction or exponent), strings without escapes, and nulls. For anything
// else, valid or not, it reports false, and decodeBatch reads the body with
// encoding/json, which also words the errors. What it accepts it decodes as
// encoding/json would.
func decodeBatchFast(b []byte) ([]batchRowBody, bool) {
	p := fastParser{b: b}
	if !p.byte('{') || !p.key("rows") || !p.byte('[') {
		return nil, false
	}
	rows := make([]batchRowBody, 0, len(b)/128+1)
	if p.peek(']') {
		p.i++
	} else {
		for {
			var r batchRowBody
			if !p.row(&r) {
				return nil, false
			}
			rows = append(rows, r)
			if p.peek(',') {
				p.i++
				continue
			}
			if !p.byte(']') {
				return nil, false
			}
			break
		}
	}
	if !p.byte('}') {
		return nil, false
	}
	p.space()
	return rows, p.i == len(b)
}

// fastParser reads b from i.
type fastParser struct {
	b []byte
	i int
}

func (p *fastParser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// peek skips white space and reports whether c is next.
func (p *fastParser) peek(c byte) bool {
	p.space()
	return p.i < len(p.b) && p.b[p.i] == c
}

// byte consumes c after white space.
func (p *fastParser) byte(c byte) bool {
	if !p.peek(c) {
		return false
	}
	p.i++
	return true
}

// str consumes a string without escapes and returns its content.
func (p *fastParser) str() ([]byte, bool) {
	if !p.byte('"') {
		return nil, false
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			return s, utf8.Valid(s)
		case c == '\\' || c < 0x20:
			return nil, false
		}
		p.i++
	}
	return nil, false
}

// key consumes "name": exactly.
func (p *fastParser) key(name string) bool {
	s, ok := p.str()
	return ok && string(s) == name && p.byte(':')
}

// null consumes null when it is next.
func (p *fastParser) null() bool {
	p.space()
	if len(p.b)-p.i >= 4 && string(p.b[p.i:p.i+4]) == "null" {
		p.i += 4
		return true
	}
	return false
}

// int consumes a non-negative integer or null.
func (p *fastParser) int(dst **int64) bool {
	if p.null() {
		*dst = nil
		return true
	}
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	digits := p.b[start:p.i]
	if len(digits) == 0 || (len(digits) > 1 && digits[0] == '0') {
		return false
	}
	if p.i < len(p.b) {
		switch p.b[p.i] {
		case '.', 'e', 'E':
			return false
		}
	}
	n, err := strconv.ParseInt(string(digits), 10, 64)
	if err != nil {
		return false
	}
	*dst = &n
	return true
}

// text consumes a string without escapes or null.
func (p *fastParser) text(dst **string) bool {
	if p.null() {
		*dst = nil
		return true
	}
	s, ok := p.str()
	if !ok {
		return false
	}
	v := string(s)
	*dst = &v
	return true
}

// row consumes one row object.
func (p *fastParser) row(r *batchRowBody) bool {
	if !p.byte('{') {
		return false
	}
	if p.peek('}') {
		p.i++
		return true
	}
	for {
		k, ok := p.str()
		if !ok || !p.byte(':') {
			return false
		}
		switch string(k) {
		case "market_id":
			ok = p.int(&r.MarketID)
		case "vendor_id":
			ok = p.int(&r.VendorID)
		case "stall_id":
			ok = p.int(&r.StallID)
		case "date":
			ok = p.text(&r.Date)
		case "kind":
			ok = p.text(&r.Kind)
		case "checkin_at":
			ok = p.text(&r.CheckinAt)
		default:
			return false
		}
		if !ok {
			return false
		}
		if p.peek(',') {
			p.i++
			continue
		}
		return p.byte('}')
	}
}
