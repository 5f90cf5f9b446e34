package router

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// TestDecodeBatchFast checks that what decodeBatchFast accepts it decodes
// exactly as encoding/json does, and that it leaves everything else to it.
func TestDecodeBatchFast(t *testing.T) {
	tests := []struct {
		in   string
		fast bool
	}{
		{`{"rows":[]}`, true},
		{` { "rows" : [ { "market_id" : 844424930131969 , "vendor_id":1,"stall_id":null,"date":"2026-06-15","kind":"SPUNTA","checkin_at":"2026-06-15T07:00:00+02:00" } ] } `, true},
		{`{"rows":[{},{"date":null,"kind":"X"},{"market_id":1,"market_id":2}]}`, true},
		{"{\"rows\":[{\"kind\":\"\u00e8\"}]}\n", true},
		{`{"rows":[{"market_id":-1}]}`, false},
		{`{"rows":[{"market_id":1.5}]}`, false},
		{`{"rows":[{"market_id":1e3}]}`, false},
		{`{"rows":[{"market_id":012}]}`, false},
		{`{"rows":[{"market_id":99999999999999999999}]}`, false},
		{`{"rows":[{"market_id":"1"}]}`, false},
		{`{"rows":[{"kind":"SP\"UNTA"}]}`, false},
		{`{"rows":[{"Kind":"SPUNTA"}]}`, false},
		{`{"rows":[{"colour":"red"}]}`, false},
		{`{"rows":[{"kind":1}]}`, false},
		{`{"rows":[],"more":1}`, false},
		{`{"rows":[{}]}{}`, false},
		{`{"rows":[{}],}`, false},
		{`{"rows":[{},]}`, false},
		{`{"rows":[{"kind":"a",}]}`, false},
		{`{"rows":[{"kind":"a"}`, false},
		{"{\"rows\":[{\"kind\":\"\xff\"}]}", false},
		{`[]`, false},
		{``, false},
	}
	for _, tt := range tests {
		got, ok := decodeBatchFast([]byte(tt.in))
		if ok != tt.fast {
			t.Errorf("decodeBatchFast(%q) ok = %v, want %v", tt.in, ok, tt.fast)
			continue
		}
		if ok {
			want, err := decodeBatchJSON([]byte(tt.in))
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("decodeBatchFast(%q) = %s, encoding/json %s (%v)", tt.in, show(got), show(want), err)
			}
		}
	}
	// Random rows of the accepted form, with random white space, decode as
	// encoding/json decodes them.
	rnd := rand.New(rand.NewPCG(1, 2))
	ws := func() string { return []string{"", " ", "\n\t", "  \r\n"}[rnd.IntN(4)] }
	for range 200 {
		var rows []string
		for range rnd.IntN(5) {
			var fields []string
			for _, k := range []string{"market_id", "vendor_id", "stall_id", "date", "kind", "checkin_at"} {
				switch rnd.IntN(3) {
				case 0:
					continue
				case 1:
					fields = append(fields, fmt.Sprintf(`%s"%s"%s:%snull`, ws(), k, ws(), ws()))
				default:
					if strings.HasSuffix(k, "_id") {
						fields = append(fields, fmt.Sprintf(`"%s":%s%d%s`, k, ws(), rnd.Int64N(1<<62), ws()))
					} else {
						fields = append(fields, fmt.Sprintf(`"%s":"%s"`, k, []string{"", "2026-06-15", "SPUNTA", "è"}[rnd.IntN(4)]))
					}
				}
			}
			rows = append(rows, ws()+"{"+strings.Join(fields, ",")+"}"+ws())
		}
		in := ws() + `{"rows":[` + strings.Join(rows, ",") + "]}" + ws()
		got, ok := decodeBatchFast([]byte(in))
		want, err := decodeBatchJSON([]byte(in))
		if !ok || err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("decodeBatchFast(%q) = %s %v, encoding/json %s %v", in, show(got), ok, show(want), err)
		}
	}
}

func show(rows []batchRowBody) string {
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "{%v %v %v %v %v %v}", deref(r.MarketID), deref(r.VendorID), deref(r.StallID), deref(r.Date), deref(r.Kind), deref(r.CheckinAt))
	}
	return b.String()
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}
