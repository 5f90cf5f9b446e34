package router

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/registry"
	"github.com/dmshub/dmsrouter/taxcode"
)

// Body limits of the write API. A batch of 10,000 presence rows takes about
// 1.2 to 2 MB of JSON, so the batch endpoint alone accepts up to 4 MiB.
const (
	maxBody      = 1 << 20
	maxBatchBody = 4 << 20
)

// Errors of reading a write request.
var (
	// errTooLarge is a body over its limit, or a batch over its row cap.
	errTooLarge = errors.New("request too large")
	// errMediaType is a body that is not JSON.
	errMediaType = errors.New("unsupported media type")
	// errRoleReadOnly is a write by a role that may only read.
	errRoleReadOnly = errors.New("your role may not write")
)

// tooLarge wraps errTooLarge with what was too large.
func tooLarge(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errTooLarge, fmt.Sprintf(format, args...))
}

// requireWriter refuses the request of a role that may not write.
func (s *Server) requireWriter(c *gin.Context) {
	if !CanWrite(principal(c).Role) {
		s.writeProblem(c, errRoleReadOnly)
		return
	}
	c.Next()
}

// readBody reads the request's JSON body, at most limit bytes.
func readBody(c *gin.Context, limit int64) ([]byte, error) {
	if ct := c.GetHeader("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return nil, errMediaType
		}
	}
	if c.Request.ContentLength > limit {
		return nil, tooLarge("the body is over %d bytes", limit)
	}
	b, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, limit))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, tooLarge("the body is over %d bytes", limit)
	}
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	return b, nil
}

// decodeBody decodes the JSON object in data into dst, refusing unknown
// fields, values of the wrong type and anything after the object.
func decodeBody(data []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError("", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badField("body", "unexpected data after the JSON object")
	}
	return nil
}

// jsonError turns a decoding error into a bad request naming the field,
// prefixed with prefix (such as "rows[3].").
func jsonError(prefix string, err error) error {
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
	)
	switch {
	case errors.Is(err, io.EOF):
		return badField("body", "empty body: want a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badField("body", "the JSON ends too early")
	case errors.As(err, &syntax):
		return badField("body", "malformed JSON at byte %d", syntax.Offset)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = strings.TrimSuffix(prefix, ".")
			if field == "" {
				field = "body"
			}
		} else {
			field = prefix + field
		}
		return badField(field, "want %s, got %s", jsonTypeName(typ.Type.String()), typ.Value)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return badField(prefix+strings.Trim(name, `"`), "unknown field")
	}
	return badField("body", "not a valid JSON object")
}

func jsonTypeName(goType string) string {
	switch goType {
	case "string":
		return "a string"
	case "int64", "int32", "int16", "int":
		return "an integer in range"
	case "float64":
		return "a number"
	case "bool":
		return "true or false"
	case "[]int16":
		return "an array of integers"
	}
	if strings.HasPrefix(goType, "struct") || strings.HasPrefix(goType, "router.") {
		return "a JSON object"
	}
	return "another type"
}

// opt is a field of a PATCH body: set when the body names it, null when
// its value is null.
type opt[T any] struct {
	set, null bool
	v         T
}

func (o *opt[T]) UnmarshalJSON(b []byte) error {
	o.set = true
	if string(b) == "null" {
		o.null = true
		return nil
	}
	return json.Unmarshal(b, &o.v)
}

// checks collects field errors so one response names every bad field.
type checks struct{ errs []FieldError }

func (k *checks) bad(field, format string, args ...any) {
	k.errs = append(k.errs, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (k *checks) err() error {
	if len(k.errs) == 0 {
		return nil
	}
	return &badRequestError{fields: k.errs}
}

// required reports whether a create body's field is present, and names it
// otherwise.
func required[T any](k *checks, field string, v *T) bool {
	if v == nil {
		k.bad(field, "required")
		return false
	}
	return true
}

// patchField turns a PATCH body's field into a registry field, refusing
// null for a field that cannot be empty; check validates a value.
func patchField[T any](k *checks, field string, o opt[T], check func(T) string) registry.Field[T] {
	switch {
	case !o.set:
		return registry.Field[T]{}
	case o.null:
		k.bad(field, "cannot be null")
		return registry.Field[T]{}
	}
	if check != nil {
		if msg := check(o.v); msg != "" {
			k.bad(field, "%s", msg)
		}
	}
	return registry.Field[T]{Set: true, V: o.v}
}

// nullableField is patchField for a field that may be set to null.
func nullableField[T any](k *checks, field string, o opt[T], check func(T) string) registry.Field[*T] {
	if !o.set {
		return registry.Field[*T]{}
	}
	if o.null {
		return registry.Field[*T]{Set: true}
	}
	if msg := check(o.v); msg != "" {
		k.bad(field, "%s", msg)
	}
	v := o.v
	return registry.Field[*T]{Set: true, V: &v}
}

// Validators return "" for a good value, else what is wrong with it.

var marketCodePattern = regexp.MustCompile(`^[A-Z]{2}[0-9]{3,5}$`)

func checkMarketCode(s string) string {
	if !marketCodePattern.MatchString(s) {
		return "want two upper-case letters and 3 to 5 digits, such as MI001"
	}
	return ""
}

func checkName(s string) string {
	if strings.TrimSpace(s) == "" || len(s) > 200 {
		return "want 1 to 200 characters"
	}
	return ""
}

func checkOptionalName(s string) string {
	if len(s) > 200 {
		return "want at most 200 characters"
	}
	return ""
}

// checkDays validates a market's days: one to seven distinct ISO weekdays
// (the schema refuses a market without days).
func checkDays(days []int16) string {
	if len(days) == 0 {
		return "want at least one ISO weekday 1 (Monday) to 7 (Sunday)"
	}
	seen := map[int16]bool{}
	for _, d := range days {
		if d < 1 || d > 7 || seen[d] {
			return "want distinct ISO weekdays 1 (Monday) to 7 (Sunday)"
		}
		seen[d] = true
	}
	return ""
}

// checkAmount returns a validator of a non-negative (positive when
// positive) decimal with two decimals and at most max.
func checkAmount(positive bool, max float64) func(float64) string {
	return func(v float64) string {
		if math.IsNaN(v) || v < 0 || (positive && v == 0) || v > max {
			if positive {
				return fmt.Sprintf("want a number above 0 and at most %.2f", max)
			}
			return fmt.Sprintf("want a number from 0 to %.2f", max)
		}
		return ""
	}
}

func oneOf(values ...string) func(string) string {
	return func(v string) string {
		for _, ok := range values {
			if v == ok {
				return ""
			}
		}
		return "must be one of " + strings.Join(values, ", ")
	}
}

func checkStallNumber(n int32) string {
	if n < 1 {
		return "want a positive integer"
	}
	return ""
}

func checkPartitaIVA(s string) string {
	if !taxcode.ValidPartitaIVA(s) {
		return "not a valid partita IVA: want 11 digits with a valid check digit"
	}
	return ""
}

func checkCodiceFiscale(s string) string {
	if !taxcode.ValidCodiceFiscale(s) {
		return "not a valid codice fiscale: want 16 upper-case letters and digits with a valid check letter, or a company's 11 digits"
	}
	return ""
}

// checkComune validates a comune code and returns its region.
func checkComune(k *checks, field, code string) regions.Code {
	r, err := regions.ComuneRegion(code)
	if err != nil {
		k.bad(field, "unknown comune %q: want a six-digit ISTAT code", code)
		return ""
	}
	return r
}

// checkID validates an id named in a body and returns its region.
func checkID(k *checks, field string, id int64) regions.Code {
	r, err := regions.IDRegion(id)
	if err != nil {
		k.bad(field, "not an id")
		return ""
	}
	return r
}

// parseDay parses a calendar day YYYY-MM-DD as UTC midnight.
func parseDay(k *checks, field, s string) time.Time {
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		k.bad(field, "want a date YYYY-MM-DD")
	}
	return d
}

// sameRegion checks that an id named in a body lies in region r, the
// region the request writes: an id of a region outside the territory is
// forbidden, one of another region inside it is bad input.
func sameRegion(k *checks, p Principal, r regions.Code, field string, id regions.Code) error {
	switch {
	case id == "":
		return nil
	case !p.Territory.Covers(id):
		return forbidden("%s names region %s, outside territory %s", field, id, p.Territory)
	case id != r:
		k.bad(field, "names region %s; this request writes region %s", id, r)
	}
	return nil
}

var idempotencyKeyPattern = regexp.MustCompile(`^[\x21-\x7e]{1,255}$`)

// writeMeta returns who writes, and the request's Idempotency-Key with the
// fingerprint a retry must match: a hash of the method, the path, the query
// and the body with insignificant white space removed.
func writeMeta(c *gin.Context, body []byte) (registry.Write, error) {
	p := principal(c)
	w := registry.Write{Actor: registry.Actor{User: p.Subject, Role: p.Role}}
	keys := c.Request.Header.Values("Idempotency-Key")
	if len(keys) == 0 {
		return w, nil
	}
	if len(keys) > 1 || !idempotencyKeyPattern.MatchString(keys[0]) {
		return w, badField("Idempotency-Key", "want one header of 1 to 255 visible ASCII characters")
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, body); err != nil {
		compact.Reset()
		compact.Write(body)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s?%s\n", c.Request.Method, c.Request.URL.Path, c.Request.URL.RawQuery)
	h.Write(compact.Bytes())
	w.Key, w.Fingerprint = keys[0], h.Sum(nil)
	return w, nil
}

// writeResult writes a write's outcome: 201 when it created something,
// else 200, marked when it replays an earlier request with the same key.
func writeResult[T any](c *gin.Context, r registry.Result[T]) error {
	status := http.StatusOK
	if r.Created {
		status = http.StatusCreated
	}
	if r.Replayed {
		c.Header("Idempotent-Replayed", "true")
	}
	c.Header("Content-Type", "application/json; charset=utf-8")
	c.Status(status)
	return jsonEncode(c.Writer, r.Value)
}

// idRegion returns the region an id carries, or "" for no id.
func idRegion(id int64) regions.Code {
	r, err := regions.IDRegion(id)
	if err != nil {
		return ""
	}
	return r
}
