package router

import (
	"bytes"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/dmshub/dmsrouter/registry"
)

// TestListJSON checks that appendList writes what encoding/json writes for
// pages of every row type it knows, with every exported field set by
// reflection to awkward values (escapes, invalid UTF-8, U+2028, tiny and
// huge floats, nil and empty slices and pointers, times in other zones),
// and that it declines what encoding/json refuses or writes its own way.
func TestListJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 4))
	for round := range 300 {
		for _, v := range []any{
			randomPage[registry.Market](rng, round),
			randomPage[registry.Stall](rng, round),
			randomPage[registry.Presence](rng, round),
			randomPage[registry.Concession](rng, round),
		} {
			var want bytes.Buffer
			if err := jsonEncode(&want, v); err != nil {
				t.Fatal(err)
			}
			got, ok := appendList(nil, v)
			if !ok {
				t.Fatalf("%T declined a page encoding/json writes:\n%s", v, want.Bytes())
			}
			if !bytes.Equal(got, want.Bytes()) {
				t.Fatalf("%T differs from encoding/json\n got: %s\nwant: %s", v, got, want.Bytes())
			}
		}
	}

	if _, ok := appendList(nil, registry.List[int]{}); ok {
		t.Error("appendList wrote a list of a type it does not know")
	}
	nan := registry.List[registry.Market]{Items: []registry.Market{{CostPerSqm: math.NaN()}}}
	if _, ok := appendList(nil, nan); ok {
		t.Error("appendList wrote a NaN, which encoding/json refuses")
	}
	far := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	late := registry.List[registry.Presence]{Items: []registry.Presence{{CheckinAt: far}}}
	if _, ok := appendList(nil, late); ok {
		t.Error("appendList wrote the year 10000, which time.Time's MarshalJSON refuses")
	}
}

// randomPage returns a page of up to four rows of T with every exported
// field random, or an empty or nil page now and then.
func randomPage[T any](rng *rand.Rand, round int) registry.List[T] {
	l := registry.List[T]{Limit: rng.IntN(200), Offset: rng.IntN(5000), Total: rng.Int64N(1 << 40), TotalEstimated: rng.IntN(2) == 0}
	if rng.IntN(2) == 0 {
		l.NextCursor = randomString(rng)
	}
	switch round % 10 {
	case 0: // nil items
	case 1:
		l.Items = []T{}
	default:
		l.Items = make([]T, 1+rng.IntN(4))
		for i := range l.Items {
			fill(rng, reflect.ValueOf(&l.Items[i]).Elem())
		}
	}
	return l
}

// fill sets v, and every exported field of a struct v, to random values.
func fill(rng *rand.Rand, v reflect.Value) {
	if v.Type() == reflect.TypeFor[time.Time]() {
		zones := []*time.Location{time.UTC, time.FixedZone("", 3600), time.FixedZone("", -(9*3600 + 30*60))}
		sec := rng.Int64N(300 * 365 * 24 * 3600)
		t := time.Unix(sec-100*365*24*3600, rng.Int64N(2)*rng.Int64N(1e9)).In(zones[rng.IntN(len(zones))])
		v.Set(reflect.ValueOf(t))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(rng, v.Field(i))
			}
		}
	case reflect.Pointer:
		if rng.IntN(3) > 0 {
			v.Set(reflect.New(v.Type().Elem()))
			fill(rng, v.Elem())
		}
	case reflect.Slice:
		if n := rng.IntN(5) - 1; n >= 0 {
			v.Set(reflect.MakeSlice(v.Type(), n, n))
			for i := range n {
				fill(rng, v.Index(i))
			}
		}
	case reflect.String:
		v.SetString(randomString(rng))
	case reflect.Bool:
		v.SetBool(rng.IntN(2) == 0)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		bits := v.Type().Bits()
		v.SetInt(rng.Int64() >> (64 - bits))
	case reflect.Float64:
		floats := []float64{0, math.Copysign(0, -1), 1, -2.5, 12.75, 1e-7, 3.2e-9, 1e21, -4.5e22, 123456789.125, 1e20, 1e-6, math.MaxFloat64, math.SmallestNonzeroFloat64}
		if rng.IntN(2) == 0 {
			v.SetFloat(floats[rng.IntN(len(floats))])
		} else {
			v.SetFloat((rng.Float64() - 0.5) * math.Pow(10, float64(rng.IntN(40)-20)))
		}
	default:
		panic("fill: no random value for " + v.Type().String())
	}
}

// randomString returns a short string of plain text mixed with what JSON
// must escape or replace.
func randomString(rng *rand.Rand) string {
	parts := []string{"Mercato", "Piazza Duomo", "015146", "è", "日本", `"`, `\`, "/", "<&>", "\x00", "\x1f", "\b", "\f", "\n", "\r", "\t", "\x7f", "\u2028", "\u2029", "\xff", "\xe2\x82", "😀", ""}
	var b []byte
	for range rng.IntN(6) {
		b = append(b, parts[rng.IntN(len(parts))]...)
	}
	return string(b)
}

// BenchmarkListJSON compares appendList with encoding/json on a page of 50
// markets and one of 50 presences, plain values as the seed writes them.
func BenchmarkListJSON(b *testing.B) {
	markets := registry.List[registry.Market]{Limit: 50, Total: 1234}
	presences := registry.List[registry.Presence]{Limit: 50, Total: 80}
	for i := range 50 {
		markets.Items = append(markets.Items, registry.Market{ID: int64(30000 + i), Region: "03", Code: "MI-0042", Name: "Mercato di Piazza Duomo",
			Province: "015", Comune: "015146", ComuneName: "Milano", Days: []int16{2, 5}, Status: "ACTIVE", CostPerSqm: 12.5})
		presences.Items = append(presences.Items, registry.Presence{ID: int64(9000000 + i), Region: "03", MarketID: 30042, VendorID: int64(7000 + i),
			Date: "2026-12-05", Kind: "HOLDER", CheckinAt: time.Date(2026, 12, 5, 7, 31, 12, 345678000, time.FixedZone("", 3600))})
	}
	for _, page := range []struct {
		name string
		v    any
	}{{"markets", markets}, {"presences", presences}} {
		b.Run(page.name+"/encoding_json", func(b *testing.B) {
			var buf bytes.Buffer
			for b.Loop() {
				buf.Reset()
				if err := jsonEncode(&buf, page.v); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(page.name+"/appendList", func(b *testing.B) {
			var buf []byte
			for b.Loop() {
				buf, _ = appendList(buf[:0], page.v)
			}
		})
	}
}
