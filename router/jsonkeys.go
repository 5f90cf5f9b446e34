package router

import (
	"encoding/json"
	"reflect"
	"slices"
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
// which keyScanner reads without checking it. It allocates the field
// names of each struct type it meets, and an inexact key's path.
func inexactKey(data []byte, t reflect.Type) (string, bool) {
	s := keyScanner{data: data}
	return s.value(t)
}

// keyScanner reads valid JSON from data, at pos. structs holds the fields
// of the struct types it has met, so that a batch's thousand rows look
// their type's fields up once.
type keyScanner struct {
	data    []byte
	pos     int
	structs []structFields
}

// structFields are the JSON names of a struct type's fields and their
// types.
type structFields struct {
	t     reflect.Type
	names []string
	types []reflect.Type
}

// value reads the next JSON value as a value of type t (nil: of no type
// whose keys are checked) and returns the path of its first inexact key,
// and whether there is one.
func (s *keyScanner) value(t reflect.Type) (string, bool) {
	s.space()
	switch s.data[s.pos] {
	case '{':
		return s.object(keyed(t))
	case '[':
		return s.array(keyed(t))
	case '"':
		s.skipStr()
	default: // a number, true, false or null
		for s.pos < len(s.data) && !strings.ContainsRune(",]} \t\r\n", rune(s.data[s.pos])) {
			s.pos++
		}
	}
	return "", false
}

// object is value for an object: its keys must name fields of t when t is
// a struct; a map's keys are free.
func (s *keyScanner) object(t reflect.Type) (string, bool) {
	s.pos++
	for s.more() {
		key := s.str()
		s.space()
		s.pos++ // the colon
		var elem reflect.Type
		switch {
		case t == nil:
		case t.Kind() == reflect.Struct:
			var ok bool
			if elem, ok = s.field(t, key); !ok {
				return string(key), true
			}
		case t.Kind() == reflect.Map:
			elem = t.Elem()
		}
		if bad, ok := s.value(elem); ok {
			return joinPath(string(key), bad), true
		}
	}
	return "", false
}

// array is value for an array, of t's elements when t is a slice or an
// array.
func (s *keyScanner) array(t reflect.Type) (string, bool) {
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
	return "", false
}

// keyed returns the type whose keys an object or array decoded into t
// must spell exactly: t without its pointers, or nil when t decodes itself
// (json.Unmarshaler) or is nil.
func keyed(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || reflect.PointerTo(t).Implements(unmarshalerType) {
		return nil
	}
	return t
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
	start := s.pos
	escaped := s.skipStr()
	if raw := s.data[start+1 : s.pos-1]; !escaped && utf8.Valid(raw) {
		return raw
	}
	var text string
	_ = json.Unmarshal(s.data[start:s.pos], &text)
	return []byte(text)
}

// skipStr reads a string and reports whether it holds an escape.
func (s *keyScanner) skipStr() (escaped bool) {
	for s.pos++; s.data[s.pos] != '"'; s.pos++ {
		if s.data[s.pos] == '\\' {
			escaped = true
			s.pos++
		}
	}
	s.pos++
	return escaped
}

// space skips white space.
func (s *keyScanner) space() {
	for s.pos < len(s.data) && strings.IndexByte(" \t\r\n", s.data[s.pos]) >= 0 {
		s.pos++
	}
}

// field returns the type of the field of the struct t whose JSON name is
// exactly name, and whether there is one.
func (s *keyScanner) field(t reflect.Type, name []byte) (reflect.Type, bool) {
	i := slices.IndexFunc(s.structs, func(f structFields) bool { return f.t == t })
	if i < 0 {
		s.structs = append(s.structs, fieldsOf(t))
		i = len(s.structs) - 1
	}
	f := &s.structs[i]
	for j, n := range f.names {
		if n == string(name) {
			return f.types[j], true
		}
	}
	return nil, false
}

// fieldsOf returns the JSON names and types of the struct t's exported
// fields, as encoding/json names them, with those of the structs it embeds
// without naming them.
func fieldsOf(t reflect.Type) structFields {
	f := structFields{t: t}
	f.add(t)
	return f
}

// add adds the fields of the struct t to f.
func (f *structFields) add(t reflect.Type) {
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		tag, _, _ = strings.Cut(tag, ",")
		if inner := sf.Type; sf.Anonymous && tag == "" {
			if inner.Kind() == reflect.Pointer {
				inner = inner.Elem()
			}
			if inner.Kind() == reflect.Struct {
				f.add(inner)
				continue
			}
		}
		if !sf.IsExported() {
			continue
		}
		if tag == "" {
			tag = sf.Name
		}
		f.names, f.types = append(f.names, tag), append(f.types, sf.Type)
	}
}

// joinPath joins a key or index to the path below it: "rows" and "[3].Kind"
// make "rows[3].Kind"; "[3]" and "Kind" make "[3].Kind".
func joinPath(head, rest string) string {
	if strings.HasPrefix(rest, "[") {
		return head + rest
	}
	return head + "." + rest
}
