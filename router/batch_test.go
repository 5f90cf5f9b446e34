package router

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dmshub/dmsrouter/regions"
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

// batchSQL gives Milano and Bergamo 40 spuntisti (vendor ids 03/3..03/42).
const batchSQL = `INSERT INTO vendors (id, region_id, partita_iva, codice_fiscale, denominazione, comune)
	SELECT dms.next_id('vendors', 3::smallint), 3, lpad(n::text, 11, '0'), lpad(n::text, 11, '0'), 'Spuntista ' || n, '015146'
	FROM generate_series(1001, 1040) n`

// batchBody returns a batch of SPUNTA rows for spuntisti first..last at
// market on day, plus extra rows.
func batchBody(market int64, day string, first, last int, extra ...string) string {
	var rows []string
	for i := first; i <= last; i++ {
		rows = append(rows, fmt.Sprintf(`{"market_id":%d,"vendor_id":%d,"date":"%s","kind":"SPUNTA"}`, market, regions.MakeID("03", int64(i)), day))
	}
	return `{"rows":[` + strings.Join(append(rows, extra...), ",") + `]}`
}

func TestPresenceBatch(t *testing.T) {
	e := newEnv(t, "wbatch", false)
	nw := e.shardDSN(t, "nw")
	exec(t, nw, batchSQL)
	count := func() int64 { return scalar(t, nw, `SELECT count(*) FROM vendor_presences`) }
	base := count()
	post := func(body string, header ...string) response {
		return e.do(t, "lombardia", "POST", "/v1/presences/batch", body, header...)
	}
	outcome := func(r response) string {
		return fmt.Sprintf("%v/%v/%v/%v", r.body["rows"], r.body["inserted"], r.body["duplicate"], r.body["rejected"])
	}

	// Twenty spuntisti at Milano and ten at Bergamo, plus vendor03's
	// concession presence at Bergamo, whose stall comes from the concession.
	body := batchBody(milano, "2026-06-10", 3, 22, fmt.Sprintf(
		`{"market_id":%d,"vendor_id":%d,"date":"2026-06-08","kind":"CONCESSION","checkin_at":"2026-06-08T07:15:00+02:00"}`, bergamo, vendor03))
	body = strings.Replace(body, "]}", ","+strings.TrimSuffix(strings.TrimPrefix(batchBody(bergamo, "2026-06-08", 23, 32), `{"rows":[`), "]}")+"]}", 1)
	r := post(body, "Idempotency-Key", "batch-1")
	wantStatus(t, "batch", r, 201)
	if got := outcome(r); got != "31/31/0/0" {
		t.Errorf("batch rows/inserted/duplicate/rejected = %s, want 31/31/0/0", got)
	}
	if got := count() - base; got != 31 {
		t.Errorf("batch wrote %d rows, want 31", got)
	}
	if got := scalar(t, nw, `SELECT stall_id FROM vendor_presences WHERE vendor_id = $1 AND date = '2026-06-08'`, vendor03); got != stallBG1 {
		t.Errorf("concession row's stall = %d, want the concession's %d", got, stallBG1)
	}
	if got := scalar(t, nw, `SELECT count(*) FROM audit_log WHERE action = 'batch' AND entity = 'presence'
		AND user_sub = 'lombardia' AND (after->>'inserted')::int = 31`); got != 1 {
		t.Errorf("audit rows of the batch = %d, want 1", got)
	}
	checkRollup(t, nw)

	// The same key and body replay the first response; without a key the
	// rows already present count as duplicates; nothing is written twice.
	again := post(body, "Idempotency-Key", "batch-1")
	wantStatus(t, "batch replayed", again, 201)
	if again.raw != r.raw || again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay = %s (replayed %q), want the first response %s", again.raw, again.header.Get("Idempotent-Replayed"), r.raw)
	}
	again = post(body)
	wantStatus(t, "batch retried without a key", again, 200)
	if got := outcome(again); got != "31/0/31/0" {
		t.Errorf("retry rows/inserted/duplicate/rejected = %s, want 31/0/31/0", got)
	}
	wantStatus(t, "same key, another body", post(batchBody(milano, "2026-06-11", 3, 4), "Idempotency-Key", "batch-1"), 422)
	if got := count() - base; got != 31 {
		t.Errorf("after retries the batch's rows are %d, want 31", got)
	}

	// Rows repeated within a batch are duplicates; new rows beside old ones
	// are inserted.
	r = post(batchBody(milano, "2026-06-10", 3, 25, fmt.Sprintf(`{"market_id":%d,"vendor_id":%d,"date":"2026-06-10","kind":"SPUNTA"}`, milano, regions.MakeID("03", 24))))
	wantStatus(t, "batch with old, new and repeated rows", r, 201)
	if got := outcome(r); got != "24/3/21/0" {
		t.Errorf("rows/inserted/duplicate/rejected = %s, want 24/3/21/0", got)
	}

	// One bad row rejects the batch, and it writes nothing.
	before := writtenRows(t, nw)
	bad := []struct{ name, row, field string }{
		{"unknown vendor", fmt.Sprintf(`{"market_id":%d,"vendor_id":%d,"date":"2026-06-12","kind":"SPUNTA"}`, milano, regions.MakeID("03", 999)), "vendor_id"},
		{"unknown market", fmt.Sprintf(`{"market_id":%d,"vendor_id":%d,"date":"2026-06-12","kind":"SPUNTA"}`, regions.MakeID("03", 999), vendorFB), "market_id"},
		{"stall of another market", fmt.Sprintf(`{"market_id":%d,"vendor_id":%d,"stall_id":%d,"date":"2026-06-12","kind":"SPUNTA"}`, milano, vendorFB, stallBG1), "stall_id"},
		{"no concession", fmt.Sprintf(`{"market_id":%d,"vendor_id":%d,"date":"2026-06-12","kind":"CONCESSION"}`, milano, vendorFB), "vendor_id"},
		{"holder as spuntista", fmt.Sprintf(`{"market_id":%d,"vendor_id":%d,"date":"2026-06-12","kind":"SPUNTA"}`, milano, vendor03), "kind"},
		{"different presence already stored", fmt.Sprintf(`{"market_id":%d,"vendor_id":%d,"stall_id":%d,"date":"2026-06-10","kind":"SPUNTA"}`, milano, regions.MakeID("03", 3), stallMI2), "vendor_id"},
		{"stall already taken", fmt.Sprintf(`{"market_id":%d,"vendor_id":%d,"stall_id":%d,"date":"2026-06-15","kind":"SPUNTA"}`, milano, regions.MakeID("03", 40), stallMI1), "stall_id"},
		{"same vendor twice, differently", fmt.Sprintf(`{"market_id":%d,"vendor_id":%d,"stall_id":%d,"date":"2026-06-12","kind":"SPUNTA"}`, milano, regions.MakeID("03", 30), stallMI2), "vendor_id"},
		{"month not stored", fmt.Sprintf(`{"market_id":%d,"vendor_id":%d,"date":"2020-06-12","kind":"SPUNTA"}`, milano, vendorFB), "date"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			r := post(batchBody(milano, "2026-06-12", 26, 35, tt.row))
			wantStatus(t, "batch with "+tt.name, r, 422)
			wantField(t, tt.name, r, "rows[10]."+tt.field)
			res, _ := r.body["result"].(map[string]any)
			if res["rows"] != 11.0 || res["rejected"] != 1.0 || res["inserted"] != 0.0 {
				t.Errorf("rejected batch result = %v", res)
			}
		})
	}
	// A suspended holder's rows are rejected.
	exec(t, nw, fmt.Sprintf(`UPDATE concessions SET status = 'SOSPESA' WHERE id = %d`, concMI))
	r = post(batchBody(milano, "2026-06-12", 26, 27, fmt.Sprintf(`{"market_id":%d,"vendor_id":%d,"date":"2026-06-12","kind":"CONCESSION"}`, milano, vendor03)))
	wantStatus(t, "batch with a SOSPESA holder", r, 422)
	wantField(t, "SOSPESA holder", r, "rows[2].vendor_id")
	exec(t, nw, fmt.Sprintf(`UPDATE concessions SET status = 'ATTIVA' WHERE id = %d`, concMI))
	if after := writtenRows(t, nw); after != before {
		t.Errorf("rejected batches changed the shard:\nbefore %s\nafter  %s", before, after)
	}

	// Malformed rows are bad requests naming the row.
	for _, tt := range []struct{ name, body, field string }{
		{"missing date", `{"rows":[{"market_id":1,"vendor_id":1,"kind":"SPUNTA"}]}`, "rows[0].date"},
		{"unknown row field", batchBody(milano, "2026-06-12", 3, 3, `{"market_id":1,"vendor_id":1,"date":"2026-06-12","kind":"SPUNTA","colour":"red"}`), "rows[1].colour"},
		{"wrong type", batchBody(milano, "2026-06-12", 3, 3, `{"market_id":"1","vendor_id":1,"date":"2026-06-12","kind":"SPUNTA"}`), "rows[1].market_id"},
		{"future date", batchBody(milano, "2026-06-16", 3, 3), "rows[0].date"},
		{"time on another day", batchBody(milano, "2026-06-12", 3, 3, fmt.Sprintf(`{"market_id":%d,"vendor_id":%d,"date":"2026-06-12","kind":"SPUNTA","checkin_at":"2026-06-11T23:30:00+02:00"}`, milano, vendorFB)), "rows[1].checkin_at"},
		{"no rows", `{"rows":[]}`, "rows"},
		{"unknown field", `{"rows":[],"more":1}`, "more"},
		{"row field in another case", batchBody(milano, "2026-06-12", 3, 3, fmt.Sprintf(`{"market_id":%d,"vendor_id":%d,"date":"2026-06-12","Kind":"SPUNTA"}`, milano, vendorFB)), "rows[1].Kind"},
		{"rows in another case", fmt.Sprintf(`{"Rows":[{"market_id":%d,"vendor_id":%d,"date":"2026-06-12","kind":"SPUNTA"}]}`, milano, vendorFB), "Rows"},
		{"two regions", batchBody(milano, "2026-06-12", 3, 3, fmt.Sprintf(`{"market_id":%d,"vendor_id":%d,"date":"2026-06-12","kind":"SPUNTA"}`, roma, regions.MakeID("12", 1))), "rows[1].market_id"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, "national", "POST", "/v1/presences/batch", tt.body)
			wantStatus(t, "batch with "+tt.name, r, 400)
			wantField(t, tt.name, r, tt.field)
		})
	}

	// Over the row cap, or over the body limit: 413.
	row := fmt.Sprintf(`{"market_id":%d,"vendor_id":%d,"date":"2026-06-12","kind":"SPUNTA"}`, milano, vendorFB)
	wantStatus(t, "10,001 rows", post(`{"rows":[`+strings.Repeat(row+",", 10_000)+row+`]}`), 413)
	wantStatus(t, "a 5 MiB body", post(`{"rows":[`+strings.Repeat(" ", 5<<20)+row+`]}`), 413)
	if after := writtenRows(t, nw); after != before {
		t.Errorf("refused batches changed the shard:\nbefore %s\nafter  %s", before, after)
	}
	checkRollup(t, nw)
}

// TestBatchRetries sends a batch with a client that gives up at once, then
// retries it, with and without its key, and also twice at the same time:
// whatever the first attempts did, every row is stored exactly once.
func TestBatchRetries(t *testing.T) {
	e := newEnv(t, "wretry", false)
	nw := e.shardDSN(t, "nw")
	exec(t, nw, batchSQL)
	base := scalar(t, nw, `SELECT count(*) FROM vendor_presences`)
	send := func(ctx context.Context, body string, header ...string) (response, error) {
		req, _ := http.NewRequestWithContext(ctx, "POST", e.srv.URL+"/v1/presences/batch", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+e.tokens["lombardia"])
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return response{}, err
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		r := response{status: res.StatusCode, header: res.Header, raw: string(raw)}
		_ = json.Unmarshal(raw, &r.body)
		return r, nil
	}
	for i, key := range []string{"", "retry-key"} {
		day := fmt.Sprintf("2026-06-%02d", 1+i)
		body := batchBody(milano, day, 3, 42)
		header := []string{}
		if key != "" {
			header = []string{"Idempotency-Key", key}
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() { time.Sleep(time.Millisecond); cancel() }()
		_, _ = send(ctx, body, header...) // the client times out; the server may or may not have written
		r, err := send(context.Background(), body, header...)
		if err != nil {
			t.Fatal(err)
		}
		if r.status != 200 && r.status != 201 {
			t.Fatalf("retry = %d %s", r.status, r.raw)
		}
		if ins, dup := r.body["inserted"].(float64), r.body["duplicate"].(float64); ins+dup != 40 {
			t.Errorf("retry with key %q: inserted %v + duplicate %v, want 40 in all", key, ins, dup)
		}
		if got := scalar(t, nw, `SELECT count(*) FROM vendor_presences WHERE date = $1`, day); got != 40 {
			t.Errorf("after a retried batch (key %q) day %s has %d rows, want 40", key, day, got)
		}
	}
	// Two identical batches at once: one inserts, the other finds every row
	// present (waiting for the first to commit) and counts duplicates.
	body := batchBody(bergamo, "2026-06-05", 3, 42)
	var wg sync.WaitGroup
	results := make([]response, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := send(context.Background(), body)
			if err != nil {
				t.Error(err)
			}
			results[i] = r
		}()
	}
	wg.Wait()
	inserted := 0.0
	for _, r := range results {
		if r.status != 200 && r.status != 201 {
			t.Fatalf("concurrent batch = %d %s", r.status, r.raw)
		}
		inserted += r.body["inserted"].(float64)
		if r.body["inserted"].(float64)+r.body["duplicate"].(float64) != 40 {
			t.Errorf("concurrent batch = %s", r.raw)
		}
	}
	if inserted != 40 {
		t.Errorf("two concurrent batches inserted %v rows in all, want 40", inserted)
	}
	if got := scalar(t, nw, `SELECT count(*) FROM vendor_presences`) - base; got != 120 {
		t.Errorf("retried batches left %d rows, want 120", got)
	}
	if dup := scalar(t, nw, `SELECT count(*) FROM (SELECT 1 FROM vendor_presences GROUP BY market_id, date, vendor_id HAVING count(*) > 1) d`); dup != 0 {
		t.Errorf("%d duplicated presences", dup)
	}
	checkRollup(t, nw)
}
