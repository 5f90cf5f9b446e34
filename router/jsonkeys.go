package router

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
)

// unmarshalerType is json.Unmarshaler's type: a field of such a type
// decodes its value itself, so its keys are its own business.
var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// inexactKey returns the first key of the JSON in data that encoding/json
// took for a field of t without spelling it exactly, or "". encoding/json
// matches a key to a field ignoring case, so {"Code": ...} fills code;
// the contract names each field in one spelling and has no others, so a
// router that took "Code" would accept what the contract calls invalid,
// and a client with a typo would write without being told. The key comes
// back as a path from the body ("rows[3].Kind"), for the problem's field.
// data must already have decoded into t without error.
func inexactKey(data []byte, t reflect.Type) string {
	dec := json.NewDecoder(bytes.NewReader(data))
	bad, _ := walkKeys(dec, t)
	return bad
}

// walkKeys reads the next JSON value from dec, as a value of type t, and
// returns the path of its first inexact key, or "". The error is that of
// reading a value decoding already read whole; it ends the walk.
func walkKeys(dec *json.Decoder, t reflect.Type) (string, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return "", skipValue(dec)
	}
	tok, err := dec.Token()
	if err != nil {
		return "", err
	}
	switch tok {
	case json.Delim('{'):
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return "", err
			}
			key, _ := tok.(string)
			var elem reflect.Type
			switch t.Kind() {
			case reflect.Struct:
				f, ok := fieldNamed(t, key)
				if !ok {
					return key, nil
				}
				elem = f.Type
			case reflect.Map:
				elem = t.Elem()
			}
			if elem == nil {
				err = skipValue(dec)
			} else {
				var bad string
				if bad, err = walkKeys(dec, elem); bad != "" {
					return joinPath(key, bad), nil
				}
			}
			if err != nil {
				return "", err
			}
		}
		_, err = dec.Token()
		return "", err
	case json.Delim('['):
		for i := 0; dec.More(); i++ {
			var bad string
			if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
				bad, err = walkKeys(dec, t.Elem())
			} else {
				err = skipValue(dec)
			}
			if bad != "" {
				return joinPath("["+strconv.Itoa(i)+"]", bad), nil
			}
			if err != nil {
				return "", err
			}
		}
		_, err = dec.Token()
		return "", err
	}
	return "", nil
}

// fieldNamed returns the exported field of the struct t whose JSON name is
// exactly name.
func fieldNamed(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if !f.IsExported() || tag == "-" {
			continue
		}
		if tag, _, _ = strings.Cut(tag, ","); tag == "" {
			tag = f.Name
		}
		if tag == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// skipValue reads the next JSON value from dec, whole.
func skipValue(dec *json.Decoder) error {
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
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
