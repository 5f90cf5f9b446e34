package router

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
)

// The edge's checks of every request, before any handler reads it: the
// headers every answer carries, and text
// that PostgreSQL cannot store (a NUL character, invalid UTF-8) is bad
// input here, answered 400 before a shard is asked, instead of a database
// error (SQLSTATE 22021) that a national fan-out would report as 20
// failing regions.

// secureHeaders marks every answer as what its Content-Type says (no
// sniffing) and forbids a browser to load anything from it or frame it:
// the API answers JSON, and the problem pages need nothing else.
func secureHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	c.Next()
}

// checkText refuses a request whose path or query holds text PostgreSQL
// cannot store; bodies are checked where they are read (readBody).
func (s *Server) checkText(c *gin.Context) {
	if err := requestText(c.Request); err != nil {
		s.writeProblem(c, err)
		return
	}
	c.Next()
}

// requestText checks the path and every query parameter's name and value
// of r, and refuses a query that does not parse (a bad percent escape, a
// semicolon), whose pairs would otherwise be dropped silently. The error is
// a bad request naming the path, "query" for a bad name or the parameter
// of a bad value.
func requestText(r *http.Request) error {
	if msg := badText(r.URL.Path); msg != "" {
		return badField("path", "%s", msg)
	}
	if plainQuery(r.URL.RawQuery) {
		return nil
	}
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return badField("query", "malformed query: want name=value pairs joined by &, percent-encoded")
	}
	var errs []FieldError
	for _, name := range slices.Sorted(maps.Keys(query)) {
		if msg := badText(name); msg != "" {
			errs = append(errs, FieldError{Field: "query", Message: "a parameter name " + msg})
			continue
		}
		for _, v := range query[name] {
			if msg := badText(v); msg != "" {
				errs = append(errs, FieldError{Field: name, Message: msg})
				break
			}
		}
	}
	if len(errs) > 0 {
		return &badRequestError{fields: errs}
	}
	return nil
}

// plainQuery reports whether every name and value of the raw query q is
// text PostgreSQL can store and q parses, without parsing it: q holds
// printable ASCII only, no percent escape (which could spell a NUL or bad
// UTF-8, or be malformed) and no semicolon (which the parser refuses). The
// queries of most requests are such; the others are parsed and checked.
func plainQuery(q string) bool {
	for i := 0; i < len(q); i++ {
		if c := q[i]; c < 0x20 || c > 0x7e || c == '%' || c == ';' {
			return false
		}
	}
	return true
}

// bodyText refuses a body that is not UTF-8, or whose JSON strings (names
// or values) hold a NUL character, which JSON can only spell as the escape
// \u0000: a raw NUL is malformed JSON, which the decoder refuses.
func bodyText(body []byte) error {
	if !utf8.Valid(body) {
		return badField("body", "is not valid UTF-8")
	}
	if bytes.Contains(body, []byte(`\u0000`)) && jsonHoldsNUL(body) {
		return badField("body", `a string holds a NUL character (\u0000)`)
	}
	return nil
}

// jsonHoldsNUL reports whether a string of the JSON in body holds a NUL
// character, reading up to the first malformed token.
func jsonHoldsNUL(body []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		t, err := dec.Token()
		if err != nil {
			return false
		}
		if s, ok := t.(string); ok && strings.IndexByte(s, 0) >= 0 {
			return true
		}
	}
}

// badText says what is wrong with s as text PostgreSQL can store, or "".
func badText(s string) string {
	switch {
	case !utf8.ValidString(s):
		return "is not valid UTF-8"
	case strings.IndexByte(s, 0) >= 0:
		return "holds a NUL character"
	}
	return ""
}
