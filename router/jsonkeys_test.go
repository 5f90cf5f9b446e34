package router

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// keysBody has a field of every kind inexactKey walks.
type keysBody struct {
	Code    string             `json:"code,omitempty"`
	Plain   int                // no tag: its Go name
	Skipped string             `json:"-"`
	Rows    []keysRow          `json:"rows"`
	Ptr     *keysRow           `json:"ptr"`
	ByName  map[string]keysRow `json:"by_name"`
	Patch   opt[string]        `json:"patch"`
	Raw     json.RawMessage    `json:"raw"`
	Any     any                `json:"any"`
	Nested  [][]keysRow        `json:"nested"`
	Free    map[string]string  `json:"free"`
}

type keysRow struct {
	Kind string `json:"kind"`
	N    int    `json:"n"`
	keysEmbedded
}

// keysEmbedded is embedded in keysRow without a name: its fields are
// keysRow's.
type keysEmbedded struct {
	At string `json:"at"`
}

func TestInexactKey(t *testing.T) {
	tests := []struct {
		data, want string // want "" with none: every key exact
		none       bool
	}{
		{`{"code":"MI009","Plain":1,"rows":[{"kind":"A"}],"ptr":{"kind":"B"},"patch":"x"}`, "", true},
		{` { "by_name" : {"Any Key":{"kind":"C"}} , "free":{"KIND":"x"},"raw":{"Kind":1},"any":{"Code":[{}]}} `, "", true},
		{`{"patch":null,"ptr":null,"rows":null,"nested":[[{"kind":"x","n":-1500}],[]],"any":[true,false,null,"}",-1.5e3]}`, "", true},
		{`{"\u0063ode":"x","rows":[{"kind":"a \"quoted\" \\ }"}]}`, "", true},
		{`{"Code":"MI009"}`, "Code", false},
		{`{"code":"MI009","CODE":"MI010"}`, "CODE", false},
		{`{"\u0043ode":"MI009"}`, "Code", false},
		{`{"plain":1}`, "plain", false},
		{`{"Skipped":"x"}`, "Skipped", false}, // json:"-": encoding/json never fills it
		{`{"ptr":{"kind":"B","at":"x"}}`, "", true},
		{`{"ptr":{"At":"x"}}`, "ptr.At", false},
		{`{"rows":[{"\u212Aind":"x"}]}`, "rows[0].\u212Aind", false}, // the Kelvin sign, which encoding/json folds to k
		{`{"colour":"red"}`, "colour", false},                        // unknown: DisallowUnknownFields refuses it first
		{`{"rows":[{"":1}]}`, "rows[0].", false},
		{`{"rows":[{"kind":"A"},{"kind":"B","KIND":"C"}]}`, "rows[1].KIND", false},
		{`{"Rows":[]}`, "Rows", false},
		{`{"ptr":{"Kind":"B"}}`, "ptr.Kind", false},
		{`{"by_name":{"a":{"Kind":"x"}}}`, "by_name.a.Kind", false},
		{`{"nested":[[],[{"kind":"x"},{"kinD":"y"}]]}`, "nested[1][1].kinD", false},
	}
	for _, tt := range tests {
		var v keysBody
		if err := json.Unmarshal([]byte(tt.data), &v); err != nil {
			t.Fatalf("%s does not decode: %v", tt.data, err)
		}
		if got, ok := inexactKey([]byte(tt.data), reflect.TypeOf(&v)); got != tt.want || ok == tt.none {
			t.Errorf("inexactKey(%s) = %q, %v; want %q, %v", tt.data, got, ok, tt.want, !tt.none)
		}
	}
}

// FuzzInexactKey checks inexactKey, on whatever decodes into keysBody,
// against a walk of encoding/json's tokens.
func FuzzInexactKey(f *testing.F) {
	for _, s := range []string{`{}`, `{"Code":"x"}`, `{"rows":[{"kind":"A"},{"Kind":"B"}]}`, `{"by_name":{"a":{"n":1}},"raw":[{"x":1}]}`,
		`{"patch":"\u00e8","any":{"a":[1,{"b":null}]},"nested":[[{"N":2}]]}`, ` {"ptr" : {"kind":"\"}"} } `} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		var v keysBody
		if json.Unmarshal([]byte(data), &v) != nil {
			return
		}
		want, wantOK, err := tokenKeys(json.NewDecoder(bytes.NewReader([]byte(data))), reflect.TypeOf(&v))
		if err != nil {
			t.Fatalf("tokens of %q: %v", data, err)
		}
		if got, ok := inexactKey([]byte(data), reflect.TypeOf(&v)); got != want || ok != wantOK {
			t.Fatalf("inexactKey(%q) = %q, %v; encoding/json's tokens %q, %v", data, got, ok, want, wantOK)
		}
	})
}

// tokenKeys is inexactKey read with encoding/json's tokens: slower, and
// plainly right.
func tokenKeys(dec *json.Decoder, t reflect.Type) (string, bool, error) {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t != nil && reflect.PointerTo(t).Implements(unmarshalerType) {
		t = nil
	}
	tok, err := dec.Token()
	if err != nil {
		return "", false, err
	}
	switch tok {
	case json.Delim('{'):
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return "", false, err
			}
			key := tok.(string)
			var elem reflect.Type
			if t != nil && t.Kind() == reflect.Struct {
				f, ok := t.FieldByNameFunc(func(name string) bool {
					sf, _ := t.FieldByName(name)
					tag, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
					if tag == "" {
						tag = name
					}
					return sf.IsExported() && tag != "-" && tag == key
				})
				if !ok {
					return key, true, nil
				}
				elem = f.Type
			} else if t != nil && t.Kind() == reflect.Map {
				elem = t.Elem()
			}
			if bad, ok, err := tokenKeys(dec, elem); ok || err != nil {
				return joinPath(key, bad), ok, err
			}
		}
	case json.Delim('['):
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if bad, ok, err := tokenKeys(dec, elem); ok || err != nil {
				return joinPath("["+strconv.Itoa(i)+"]", bad), ok, err
			}
		}
	default:
		return "", false, nil
	}
	_, err = dec.Token()
	return "", false, err
}

// BenchmarkDecodeBody measures decoding with the exact keys' check: a
// check-in's body (decodeBody), and a 1,000-row batch in a form
// decodeBatchFast leaves to encoding/json (decodeBatchJSON: its strings
// hold escapes). No database.
func BenchmarkDecodeBody(b *testing.B) {
	checkIn := []byte(`{"vendor_id":844424930131969,"stall_id":844424930131970,"kind":"CONCESSION","checkin_at":"2026-06-15T07:00:00+02:00"}`)
	row := `{"kind":"SP\u0055NTA","market_id":844424930131969,"vendor_id":844424930131970,"stall_id":null,"date":"2026-06-15","checkin_at":"2026-06-15T07:00:00+02:00"}`
	batch := []byte(`{"rows":[` + strings.Repeat(row+",", 999) + row + `]}`)
	if _, ok := decodeBatchFast(batch); ok {
		b.Fatal("decodeBatchFast takes the batch: it would not measure encoding/json's path")
	}
	b.Run("check-in", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v checkInBody
			if err := decodeBody(checkIn, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("batch of 1,000 rows through encoding/json", func(b *testing.B) {
		b.SetBytes(int64(len(batch)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeBatchJSON(batch); err != nil {
				b.Fatal(err)
			}
		}
	})
}
