package router

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/dmshub/dmsrouter/regions"
)

// The fuzz targets of the router's input surfaces: the query of every
// route, the body of every write and the presence batch, each sent over
// HTTP to a router on a real deployment. No input may be answered with a
// 5xx: nothing here stops a shard, so a 503 or 504 is as much a failure as
// a 500. `make test` runs each for a few seconds, `make fuzz` longer.

// fuzzRoute is a route a fuzz target sends requests to.
type fuzzRoute struct{ who, method, path string }

// fuzzSend sends body (JSON) to target as who and fails on a 5xx.
func (e *env) fuzzSend(t *testing.T, who, method, target, body string, header ...string) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+target, strings.NewReader(body))
	if err != nil {
		t.Skipf("not a request: %v", err)
	}
	if who != "" {
		req.Header.Set("Authorization", "Bearer "+e.tokens[who])
	}
	if method == http.MethodPost || method == http.MethodPatch {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	defer e.senders.add(t, req)()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 500 {
		t.Fatalf("%s %s %q = %d %s", method, target, body, res.StatusCode, raw)
	}
}

// escapeRaw percent-encodes the bytes of s that cannot stand in a request
// target (controls, space, '#', non-ASCII), leaving every other byte, bad
// escapes such as "%zz" included, to the server.
func escapeRaw(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '#' {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// FuzzQuery sends every route a query of one fuzzed parameter (name and
// value, encoded) followed by fuzzed raw query text.
func FuzzQuery(f *testing.F) {
	e := newEnv(f, "fuzzq", false)
	mid := ids(milano)
	routes := []fuzzRoute{
		{"lombardia", "GET", "/v1/regions"},
		{"lombardia", "GET", "/v1/markets"},
		{"national", "GET", "/v1/markets"},
		{"lombardia", "GET", "/v1/markets/" + mid},
		{"milano", "GET", "/v1/markets/" + mid + "/stalls"},
		{"milano", "GET", "/v1/markets/" + mid + "/presences"},
		{"lombardia", "GET", "/v1/stalls/" + ids(stallMI1)},
		{"lombardia", "GET", "/v1/vendors"},
		{"national", "GET", "/v1/vendors"},
		{"lombardia", "GET", "/v1/vendors/" + ids(vendor03)},
		{"lombardia", "GET", "/v1/concessions"},
		{"lombardia", "GET", "/v1/concessions/" + ids(concMI)},
		{"milano", "GET", "/v1/markets/" + mid + "/graduatoria"},
		{"national", "GET", "/v1/national/summary"},
		{"national", "GET", "/v1/national/presences"},
		{"national", "GET", "/v1/national/concessions/expiring"},
		{"milano", "POST", "/v1/markets/" + mid + "/spunta"},
		{"lombardia", "PATCH", "/v1/markets/" + mid},
		{"", "GET", "/healthz"},
		{"", "GET", "/readyz"},
		{"", "GET", "/problems/not-found"},
	}
	nulCursor := base64.RawURLEncoding.EncodeToString([]byte(`{"l":"markets","t":"\u0000","i":5}`))
	seeds := []struct {
		route       int
		name, value string
		raw         string
	}{
		{1, "limit", "0", ""}, {1, "limit", "101", ""}, {1, "offset", "-1", ""}, {1, "q", "\x00", ""}, {1, "q", "\xff", ""},
		{1, "status", "active", "status=inactive"}, {1, "cursor", nulCursor, ""}, {1, "cursor", "x", "offset=2"},
		{1, "", "", "q=%00"}, {1, "", "", "q=%zz"}, {1, "", "", "a;b"}, {1, "colour", "red", ""},
		{2, "region", "21", ""}, {2, "province", "999", ""}, {2, "comune", "015999", ""}, {2, "region", "03", "comune=001272"},
		{2, "q", "Mercato", "partial=false"}, {2, "cursor", nulCursor, ""}, {2, "offset", "1001", ""},
		{3, "x", "1", ""}, {4, "type", "big", ""}, {5, "date", "2026-02-30", ""}, {5, "date", "15/06/2026", ""},
		{7, "partita_iva", "123", ""}, {8, "partita_iva", "01234567897", ""}, {10, "expiring_before", "tomorrow", ""},
		{10, "market_id", "x", ""}, {10, "status", "attiva", ""}, {12, "year", "2027", ""}, {12, "kind", "X", ""},
		{13, "date", "2026-06-15", ""}, {14, "from", "2026-01-01", "to=2026-06-15&group_by=month"},
		{14, "from", "2020-01-01", "to=2026-06-15"}, {15, "within_days", "99999", ""}, {15, "cursor", "x", ""},
		{16, "date", "2026-06-16", ""}, {16, "date", "2026-06-01", ""}, {17, "x", "\x00", ""}, {19, "", "", ""}, {20, "a", "b", ""},
	}
	for _, s := range seeds {
		f.Add(uint8(s.route), s.name, s.value, s.raw)
	}
	f.Fuzz(func(t *testing.T, route uint8, name, value, raw string) {
		r := routes[int(route)%len(routes)]
		target := r.path + "?" + url.Values{name: {value}}.Encode() + "&" + escapeRaw(raw)
		body := ""
		if r.method == http.MethodPatch {
			body = `{"name":"Mercato di Via Papiniano"}`
		}
		e.fuzzSend(t, r.who, r.method, target, body)
	})
}

// FuzzWrite sends every write route a fuzzed JSON body and Idempotency-Key.
func FuzzWrite(f *testing.F) {
	e := newEnv(f, "fuzzw", false)
	mid := ids(milano)
	piva := partitaIVA("0123987654")
	routes := []struct {
		fuzzRoute
		seeds []string
	}{
		{fuzzRoute{"lombardia", "POST", "/v1/markets"}, []string{
			`{"code":"MI009","name":"Nuovo","comune":"015146"}`,
			`{"code":"MI010","name":"Nuovo","comune":"015146","comune_name":"Milano","region":"03","days":[1,6],"status":"active","cost_per_sqm":1.5}`,
			`{"code":"MI009","name":"x","comune":"015146","colour":"red"}`, `{"Code":"AA110","comune":"015146","name":"o"}`, `{"code":"MI009","name":"x","comune":15146}`,
			`{"code":"mi9","name":"x","comune":"015146"}`, `{"code":"MI009","name":"x","comune":"015999"}`,
			`{"code":"MI009","name":"x","comune":"015146","days":[0,8]}`, `{"code":"MI009","name":"x","comune":"015146","cost_per_sqm":-1}`,
			`{"code":`, ` `, `{"code":"MI011","name":"Mercato\u0000","comune":"015146"}`, "{\"code\":\"MI012\",\"name\":\"\xff\",\"comune\":\"015146\"}",
		}},
		{fuzzRoute{"lombardia", "PATCH", "/v1/markets/" + mid}, []string{
			`{"name":"Mercato di Via Papiniano"}`, `{"name":null}`, `{}`, `{"comune":"015139"}`, `{"days":[2,6]}`,
			`{"cost_per_sqm":1e400}`, `{"status":"inactive"}`, `{"status":"active"}`,
		}},
		{fuzzRoute{"lombardia", "POST", "/v1/markets/" + mid + "/stalls"}, []string{
			`{"number":70,"type":"fisso","area_mq":9}`, `{"number":"7","type":"fisso","area_mq":9}`,
			`{"number":7,"type":"grande","area_mq":9}`, `{"number":7,"type":"fisso","area_mq":0}`,
			`{"number":71,"type":"spunta","width_m":3,"depth_m":4}`,
		}},
		{fuzzRoute{"lombardia", "PATCH", "/v1/stalls/" + ids(stallMI2)}, []string{
			`{"width_m":5}`, `{"status":"libero"}`, `{"number":2}`, `{"area_mq":-1}`, `{"type":null}`,
		}},
		{fuzzRoute{"lombardia", "POST", "/v1/vendors"}, []string{
			`{"partita_iva":"` + piva + `","codice_fiscale":"RSSMRA80A01H501U","denominazione":"x","comune":"015146"}`,
			`{"partita_iva":"12345678901","codice_fiscale":"RSSMRA80A01H501U","denominazione":"x","comune":"015146"}`,
			`{"partita_iva":"` + piva + `","codice_fiscale":"RSSMRA80","denominazione":"x","comune":"015146"}`,
		}},
		{fuzzRoute{"lombardia", "PATCH", "/v1/vendors/" + ids(vendor03)}, []string{
			`{"denominazione":"Rossi Mario"}`, `{"stato":"attiva"}`, `{"stato":"ATTIVA"}`, `{"comune":"015999"}`,
		}},
		{fuzzRoute{"lombardia", "POST", "/v1/concessions"}, []string{
			fmt.Sprintf(`{"market_id":%d,"stall_id":%d,"vendor_id":%d,"valid_from":"2030-02-01","valid_to":"2031-01-01"}`, milano, stallMI2, vendorFB),
			fmt.Sprintf(`{"market_id":%d,"stall_id":%d,"vendor_id":%d,"valid_from":"2030-02-30"}`, milano, stallMI2, vendorFB),
			fmt.Sprintf(`{"market_id":5,"stall_id":%d,"vendor_id":%d,"valid_from":"2030-02-01"}`, stallMI2, vendorFB),
		}},
		{fuzzRoute{"lombardia", "POST", "/v1/concessions/" + ids(concMI) + "/status"}, []string{
			`{"status":"SOSPESA","reason":"canone"}`, `{"status":"ATTIVA","reason":"x"}`, `{"status":"SOSPESA"}`, `{"status":"SCADUTA","reason":"x"}`,
		}},
		{fuzzRoute{"milano", "POST", "/v1/markets/" + mid + "/presences"}, []string{
			fmt.Sprintf(`{"vendor_id":%d,"kind":"SPUNTA"}`, vendorFB),
			fmt.Sprintf(`{"vendor_id":%d,"stall_id":%d,"kind":"CONCESSION","checkin_at":"2026-06-14T07:00:00+02:00"}`, vendor03, stallMI1),
			fmt.Sprintf(`{"vendor_id":%d,"kind":"spunta"}`, vendorFB), fmt.Sprintf(`{"vendor_id":%d,"kind":"SPUNTA","checkin_at":"15/06/2026"}`, vendorFB),
			fmt.Sprintf(`{"vendor_id":%d,"kind":"SPUNTA","checkin_at":"0000-01-01T00:00:00Z"}`, vendorFB),
		}},
		{fuzzRoute{"milano", "POST", "/v1/markets/" + mid + "/spunta"}, []string{``, `{}`, `{"a":1}`, `[]`}},
	}
	for i, r := range routes {
		for _, body := range r.seeds {
			f.Add(uint8(i), body, "")
		}
	}
	f.Add(uint8(0), routes[0].seeds[0], "key-1")
	f.Fuzz(func(t *testing.T, route uint8, body, key string) {
		r := routes[int(route)%len(routes)]
		var header []string
		if key != "" && strings.IndexFunc(key, func(c rune) bool { return c < ' ' || c > '~' }) < 0 {
			header = []string{"Idempotency-Key", key}
		}
		e.fuzzSend(t, r.who, r.method, r.path, body, header...)
	})
}

// batchSeeds are bodies of presence batches, good and bad, from the
// batch tests.
func batchSeeds() []string {
	row := func(market, vendor int64, date, kind string) string {
		return fmt.Sprintf(`{"market_id":%d,"vendor_id":%d,"date":"%s","kind":"%s"}`, market, vendor, date, kind)
	}
	return []string{
		`{"rows":[]}`,
		` { "rows" : [ { "market_id" : 844424930131969 , "vendor_id":1,"stall_id":null,"date":"2026-06-15","kind":"SPUNTA","checkin_at":"2026-06-15T07:00:00+02:00" } ] } `,
		`{"rows":[{},{"date":null,"kind":"X"},{"market_id":1,"market_id":2}]}`,
		`{"rows":[{"market_id":-1}]}`, `{"rows":[{"market_id":1.5}]}`, `{"rows":[{"market_id":1e3}]}`,
		`{"rows":[{"market_id":99999999999999999999}]}`, `{"rows":[{"market_id":"1"}]}`, `{"rows":[{"kind":"SP\"UNTA"}]}`,
		`{"rows":[{"Kind":"SPUNTA"}]}`, `{"rows":[{"colour":"red"}]}`, `{"rows":[],"more":1}`, `{"rows":[{}]}{}`,
		`{"rows":[{},]}`, `{"rows":[{"kind":"a"}`, "{\"rows\":[{\"kind\":\"\xff\"}]}", `[]`, ``,
		`{"rows":[` + row(milano, vendorFB, "2026-06-12", "SPUNTA") + `]}`,
		`{"rows":[` + row(milano, vendorFB, "2026-06-11", "SPUNTA") + "," + row(milano, vendorFB, "2026-06-11", "SPUNTA") + `]}`,
		`{"rows":[` + row(milano, vendor03, "2026-06-12", "CONCESSION") + "," + row(bergamo, vendor03, "2026-06-12", "CONCESSION") + `]}`,
		`{"rows":[` + row(milano, regions.MakeID("03", 999), "2026-06-12", "SPUNTA") + `]}`,
		`{"rows":[` + row(milano, vendorFB, "2026-06-16", "SPUNTA") + `]}`,
		`{"rows":[` + row(roma, vendorFB, "2026-06-12", "SPUNTA") + `]}`,
		`{"rows":[` + row(milano, vendorFB, "0000-01-01", "SPUNTA") + `]}`,
		`{"rows":[{"market_id":` + ids(milano) + `,"vendor_id":` + ids(vendorFB) + `,"date":"2026-06-12","kind":"SPUNTA","checkin_at":"2026-06-12T07:00:00+02:00"}]}`,
	}
}

// FuzzBatch sends POST /v1/presences/batch fuzzed bodies.
func FuzzBatch(f *testing.F) {
	e := newEnv(f, "fuzzb", false)
	for _, body := range batchSeeds() {
		f.Add(body)
	}
	f.Fuzz(func(t *testing.T, body string) {
		e.fuzzSend(t, "lombardia", "POST", "/v1/presences/batch", body)
	})
}

// FuzzDecodeBatch checks, without a database, that what decodeBatchFast
// accepts it decodes exactly as encoding/json does.
func FuzzDecodeBatch(f *testing.F) {
	for _, body := range batchSeeds() {
		f.Add(body)
	}
	f.Fuzz(func(t *testing.T, body string) {
		_, _ = decodeBatch([]byte(body))
		fast, ok := decodeBatchFast([]byte(body))
		if !ok {
			return
		}
		want, err := decodeBatchJSON([]byte(body))
		if err != nil || !reflect.DeepEqual(fast, want) {
			t.Fatalf("decodeBatchFast(%q) = %s, encoding/json %s (%v)", body, show(fast), show(want), err)
		}
	})
}
