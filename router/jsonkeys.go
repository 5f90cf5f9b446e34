package router

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// unmarshalerType is json.Unmarshaler's type: a field of such a type
// decodes its value itself, so its keys are its own business.
var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// inexactKey returns the first key of the JSON in data that encoding/json
// took for a field of t without spelling it exactly, and whether there is
// one. encoding/json matches a key to a field ignoring case, so
// {"Code": ...} fills code; the contract names each field in one spelling
// and has no others, so a router that took "Code" would accept what the
// contract calls invalid, and a client with a typo would write without
// being told. The key comes back as a path from the body ("rows[3].Kind"),
// for the problem's field.
//
// data must already have decoded into t without error: it is valid JSON,
// which keyScanner reads without checking it, and without allocating
// unless a key holds an escape or is inexact.
func inexactKey(data []byte, t reflect.Type) (string, bool) {
	s := keyScanner{data: data}
	return s.value(t)
}

// keyScanner reads valid JSON from data, at pos.
type keyScanner struct {
	data []byte
	pos  int
}

// value reads the next JSON value as a value of type t (nil: of no type
// whose keys are checked) and returns the path of its first inexact key,
// and whether there is one.
func (s *keyScanner) value(t reflect.Type) (string, bool) {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t != nil && reflect.PointerTo(t).Implements(unmarshalerType) {
		t = nil
	}
	s.space()
	switch s.data[s.pos] {
	case '{':
		s.pos++
		for s.more() {
			key := s.str()
			s.space()
			s.pos++ // the colon
			var elem reflect.Type
			switch {
			case t == nil:
			case t.Kind() == reflect.Struct:
				f, ok := fieldNamed(t, key)
				if !ok {
					return string(key), true
				}
				elem = f.Type
			case t.Kind() == reflect.Map:
				elem = t.Elem()
			}
			if bad, ok := s.value(elem); ok {
				return joinPath(string(key), bad), true
			}
		}
	case '[':
		s.pos++
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; s.more(); i++ {
			if bad, ok := s.value(elem); ok {
				return joinPath("["+strconv.Itoa(i)+"]", bad), true
			}
		}
	case '"':
		s.str()
	default: // a number, true, false or null
		for s.pos < len(s.data) && !strings.ContainsRune(",]} \t\r\n", rune(s.data[s.pos])) {
			s.pos++
		}
	}
	return "", false
}

// more skips the space and comma before the next member or element and
// reports whether there is one; at the closing bracket it skips that.
func (s *keyScanner) more() bool {
	s.space()
	switch s.data[s.pos] {
	case ',':
		s.pos++
		s.space()
	case '}', ']':
		s.pos++
		return false
	}
	return true
}

// str reads a string and returns its text: the bytes between the quotes
// when they hold no escape and are UTF-8, else its text as encoding/json
// decodes it.
func (s *keyScanner) str() []byte {
	start, escaped := s.pos, false
	for s.pos++; s.data[s.pos] != '"'; s.pos++ {
		if s.data[s.pos] == '\\' {
			escaped = true
			s.pos++
		}
	}
	s.pos++
	if raw := s.data[start+1 : s.pos-1]; !escaped && utf8.Valid(raw) {
		return raw
	}
	var text string
	_ = json.Unmarshal(s.data[start:s.pos], &text)
	return []byte(text)
}

// space skips white space.
func (s *keyScanner) space() {
	for s.pos < len(s.data) && strings.IndexByte(" \t\r\n", s.data[s.pos]) >= 0 {
		s.pos++
	}
}

// fieldNamed returns the exported field of the struct t whose JSON name is
// exactly name.
func fieldNamed(t reflect.Type, name []byte) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if !f.IsExported() || tag == "-" {
			continue
		}
		if tag, _, _ = strings.Cut(tag, ","); tag == "" {
			tag = f.Name
		}
		if tag == string(name) {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// joinPath joins a key or index to the path below it: "rows" and "[3].Kind"
// make "rows[3].Kind"; "[3]" and "Kind" make "[3].Kind".
func joinPath(head, rest string) string {
	if strings.HasPrefix(rest, "[") {
		return head + rest
	}
	return head + "." + rest
}
