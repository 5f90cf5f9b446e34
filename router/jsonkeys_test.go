package router

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestInexactKey(t *testing.T) {
	type inner struct {
		Kind string `json:"kind"`
	}
	type body struct {
		Code    string            `json:"code,omitempty"`
		Plain   int               // no tag: its Go name
		Skipped string            `json:"-"`
		Rows    []inner           `json:"rows"`
		Ptr     *inner            `json:"ptr"`
		ByName  map[string]inner  `json:"by_name"`
		Patch   opt[string]       `json:"patch"`
		Raw     json.RawMessage   `json:"raw"`
		Any     any               `json:"any"`
		Nested  [][]inner         `json:"nested"`
		Free    map[string]string `json:"free"`
	}
	tests := []struct{ data, want string }{
		{`{"code":"MI009","Plain":1,"rows":[{"kind":"A"}],"ptr":{"kind":"B"},"patch":"x"}`, ""},
		{`{"by_name":{"Any Key":{"kind":"C"}},"free":{"KIND":"x"},"raw":{"Kind":1},"any":{"Code":[{}]}}`, ""},
		{`{"patch":null,"ptr":null,"rows":null,"nested":[[{"kind":"x"}],[]]}`, ""},
		{`{"Code":"MI009"}`, "Code"},
		{`{"code":"MI009","CODE":"MI010"}`, "CODE"},
		{`{"plain":1}`, "plain"},
		{`{"rows":[{"kind":"A"},{"kind":"B","KIND":"C"}]}`, "rows[1].KIND"},
		{`{"Rows":[]}`, "Rows"},
		{`{"ptr":{"Kind":"B"}}`, "ptr.Kind"},
		{`{"by_name":{"a":{"Kind":"x"}}}`, "by_name.a.Kind"},
		{`{"nested":[[],[{"kind":"x"},{"kinD":"y"}]]}`, "nested[1][1].kinD"},
	}
	for _, tt := range tests {
		var v body
		if err := json.Unmarshal([]byte(tt.data), &v); err != nil {
			t.Fatalf("%s does not decode: %v", tt.data, err)
		}
		if got := inexactKey([]byte(tt.data), reflect.TypeOf(&v)); got != tt.want {
			t.Errorf("inexactKey(%s) = %q, want %q", tt.data, got, tt.want)
		}
	}
}
