package router

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/dmshub/dmsrouter/regions"
)

func TestCheckIn(t *testing.T) {
	e := newEnv(t, "wcheck", false)
	nw := e.shardDSN(t, "nw")
	checkin := func(who string, market int64, body string, header ...string) response {
		return e.do(t, who, "POST", "/v1/markets/"+ids(market)+"/presences", body, header...)
	}
	// Three more spuntisti and a stall at Milano.
	exec(t, nw, `INSERT INTO vendors (id, region_id, partita_iva, codice_fiscale, denominazione, comune)
		SELECT dms.next_id('vendors', 3::smallint), 3, lpad(n::text, 11, '0'), lpad(n::text, 11, '0'), 'Spuntista ' || n, '015146'
		FROM generate_series(101, 103) n`)
	s1, s2 := regions.MakeID("03", 3), regions.MakeID("03", 4)

	r := checkin("milano", milano, fmt.Sprintf(`{"vendor_id":%d,"kind":"SPUNTA"}`, s1))
	wantStatus(t, "spuntista check-in", r, 201)
	pid := int64(r.body["id"].(float64))
	if r.body["date"] != "2026-06-15" || r.body["stall_id"] != nil || r.body["kind"] != "SPUNTA" || r.body["vendor_id"] != float64(s1) {
		t.Errorf("check-in = %s", r.raw)
	}
	if a := latestAudit(t, nw, "presence", pid); a.Action != "checkin" || a.User != "milano" || a.After["vendor_id"] != float64(s1) {
		t.Errorf("audit of the check-in = %+v", a)
	}
	again := checkin("milano", milano, fmt.Sprintf(`{"vendor_id":%d,"kind":"SPUNTA"}`, s1))
	wantStatus(t, "identical check-in", again, 200)
	if again.body["id"] != r.body["id"] {
		t.Errorf("identical check-in answered %s, want the recorded presence %s", again.raw, r.raw)
	}
	// The concession holder's stall comes from the concession; the
	// fixture has checked vendor03 in already, identically.
	r = checkin("milano", milano, fmt.Sprintf(`{"vendor_id":%d,"kind":"CONCESSION"}`, vendor03))
	wantStatus(t, "holder's identical check-in", r, 200)
	if r.body["id"] != float64(presenceMI) || r.body["stall_id"] != float64(stallMI1) {
		t.Errorf("holder's check-in = %s", r.raw)
	}
	tests := []struct {
		name   string
		market int64
		body   string
		status int
	}{
		{"same vendor, a stall now", milano, fmt.Sprintf(`{"vendor_id":%d,"kind":"SPUNTA","stall_id":%d}`, s1, stallMI2), 409},
		{"same vendor, other time", milano, fmt.Sprintf(`{"vendor_id":%d,"kind":"SPUNTA","checkin_at":"2026-06-15T09:59:00+02:00"}`, s1), 409},
		{"holder as spuntista", milano, fmt.Sprintf(`{"vendor_id":%d,"kind":"SPUNTA","checkin_at":"2026-06-14T08:00:00+02:00"}`, vendor03), 409},
		{"concession without concession", milano, fmt.Sprintf(`{"vendor_id":%d,"kind":"CONCESSION"}`, s2), 409},
		{"holder on another stall", milano, fmt.Sprintf(`{"vendor_id":%d,"kind":"CONCESSION","stall_id":%d,"checkin_at":"2026-06-14T08:00:00+02:00"}`, vendor03, stallMI2), 409},
		{"stall taken", milano, fmt.Sprintf(`{"vendor_id":%d,"kind":"SPUNTA","stall_id":%d}`, s2, stallMI1), 409},
		{"unknown vendor", milano, fmt.Sprintf(`{"vendor_id":%d,"kind":"SPUNTA"}`, regions.MakeID("03", 999)), 404},
		{"stall of another market", milano, fmt.Sprintf(`{"vendor_id":%d,"kind":"SPUNTA","stall_id":%d}`, s2, stallBG1), 404},
		{"spuntista on a free stall", milano, fmt.Sprintf(`{"vendor_id":%d,"kind":"SPUNTA","stall_id":%d}`, s2, stallMI2), 201},
		{"past day, given time", bergamo, fmt.Sprintf(`{"vendor_id":%d,"kind":"CONCESSION","checkin_at":"2026-06-08T07:30:00+02:00"}`, vendor03), 201},
		{"past day, identical", bergamo, fmt.Sprintf(`{"vendor_id":%d,"kind":"CONCESSION","checkin_at":"2026-06-08T07:30:00+02:00"}`, vendor03), 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := checkin("lombardia", tt.market, tt.body)
			wantStatus(t, tt.name, r, tt.status)
		})
	}
	// A holder whose concession is SOSPESA, then REVOCATA, is refused.
	for _, status := range []string{"SOSPESA", "REVOCATA"} {
		wantStatus(t, "concession -> "+status, e.do(t, "lombardia", "POST", "/v1/concessions/"+ids(concBG)+"/status",
			`{"status":"`+status+`","reason":"canone non pagato"}`), 200)
		r := checkin("lombardia", bergamo, fmt.Sprintf(`{"vendor_id":%d,"kind":"CONCESSION","checkin_at":"2026-06-15T07:30:00+02:00"}`, vendor03))
		wantStatus(t, status+" holder's check-in", r, 409)
		if !strings.Contains(r.body["detail"].(string), status) {
			t.Errorf("%s holder's check-in detail = %v", status, r.body["detail"])
		}
		wantStatus(t, status+" holder as spuntista", checkin("lombardia", bergamo,
			fmt.Sprintf(`{"vendor_id":%d,"kind":"SPUNTA","checkin_at":"2026-06-15T07:30:00+02:00"}`, vendor03)), 409)
	}
	if n := scalar(t, nw, `SELECT count(*) FROM vendor_presences WHERE vendor_id = $1 AND date = '2026-06-15'`, s1); n != 1 {
		t.Errorf("spuntista's presences today = %d, want 1", n)
	}
	checkRollup(t, nw)
}

func TestConcurrentCheckIns(t *testing.T) {
	e := newEnv(t, "wconc", false)
	nw := e.shardDSN(t, "nw")
	exec(t, nw, `INSERT INTO vendors (id, region_id, partita_iva, codice_fiscale, denominazione, comune)
		SELECT dms.next_id('vendors', 3::smallint), 3, lpad(n::text, 11, '0'), lpad(n::text, 11, '0'), 'Spuntista ' || n, '015146'
		FROM generate_series(101, 102) n`)
	// 32 check-ins of one vendor at once, without a key and then (another
	// vendor) all with the same key: one presence each time, answered to all.
	for _, tt := range []struct {
		vendor     int64
		key        string
		replayWant int // the status of the check-ins that did not create it
	}{
		{regions.MakeID("03", 3), "", 200},
		{regions.MakeID("03", 4), "same-key", 201},
	} {
		body := fmt.Sprintf(`{"vendor_id":%d,"kind":"SPUNTA"}`, tt.vendor)
		const n = 32
		statuses := make([]int, n)
		presenceIDs := make([]any, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest("POST", e.srv.URL+"/v1/markets/"+ids(milano)+"/presences", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+e.tokens["milano"])
				req.Header.Set("Content-Type", "application/json")
				if tt.key != "" {
					req.Header.Set("Idempotency-Key", tt.key)
				}
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				defer res.Body.Close()
				var v map[string]any
				_ = json.NewDecoder(res.Body).Decode(&v)
				statuses[i], presenceIDs[i] = res.StatusCode, v["id"]
			}()
		}
		wg.Wait()
		created := 0
		for i, s := range statuses {
			switch {
			case s == 201 && tt.key == "":
				created++
			case s == tt.replayWant:
			default:
				t.Errorf("key %q: check-in %d = %d, want 201 once and %d otherwise", tt.key, i, s, tt.replayWant)
			}
			if presenceIDs[i] != presenceIDs[0] {
				t.Errorf("key %q: check-in %d answered presence %v, check-in 0 presence %v", tt.key, i, presenceIDs[i], presenceIDs[0])
			}
		}
		if tt.key == "" && created != 1 {
			t.Errorf("%d check-ins created a presence, want 1", created)
		}
		if got := scalar(t, nw, `SELECT count(*) FROM vendor_presences WHERE vendor_id = $1`, tt.vendor); got != 1 {
			t.Errorf("key %q: 32 concurrent check-ins left %d rows, want 1", tt.key, got)
		}
		if got := scalar(t, nw, `SELECT count(*) FROM audit_log WHERE entity = 'presence' AND after->>'vendor_id' = $1`, ids(tt.vendor)); got != 1 {
			t.Errorf("key %q: audit rows of the check-in = %d, want 1", tt.key, got)
		}
	}
	if got := scalar(t, nw, `SELECT count(*) FROM idempotency_keys WHERE key = 'same-key' AND created`); got != 1 {
		t.Errorf("stored keys = %d, want 1", got)
	}
	checkRollup(t, nw)
	if sh, _ := e.m.For("03"); sh.State() != "closed" {
		t.Errorf("breaker after concurrent check-ins = %s", sh.State())
	}
}

// TestSpunta computes the graduatoria and the assignment by hand:
//
//	vendor     SPUNTA presences in 2026 at Milano (before 06-15)   first
//	S1         3: 02-03, 03-03, 04-07                                 02-03
//	S2         3: 01-13, 03-10, 05-05                                 01-13
//	S3         5: 01-20 .. 05-19                                      01-20
//	S4         1: 06-09                                               06-09
//	Bianchi    0 (the fixture checks it in on 06-15)
//	vendor03   1 SPUNTA on 03-03, but it holds an ATTIVA concession: not ranked
//
// On 06-15 all five spuntisti are present (each gains one presence, which
// changes no order), ranked S3 (6), S2 (4, first 01-13), S1 (4, first
// 02-03), S4 (2), Bianchi (1). Milano's stalls: 1 taken by vendor03, 2 and
// 3 and 4 free, 5 RISERVATO. So S3 gets stall 2, S2 stall 3, S1 stall 4;
// S4 and Bianchi get none.
func TestSpunta(t *testing.T) {
	e := newEnv(t, "wspunta", false)
	nw := e.shardDSN(t, "nw")
	exec(t, nw, fmt.Sprintf(`
		INSERT INTO vendors (id, region_id, partita_iva, codice_fiscale, denominazione, comune)
		SELECT dms.next_id('vendors', 3::smallint), 3, lpad(n::text, 11, '0'), lpad(n::text, 11, '0'), 'S' || n, '015146'
		FROM generate_series(1, 4) n;
		INSERT INTO stalls (id, region_id, market_id, comune, number, type, status, area_mq) VALUES
		  (dms.next_id('stalls', 3::smallint), 3, %[1]d, '015146', 3, 'SPUNTA', 'LIBERO', 10),
		  (dms.next_id('stalls', 3::smallint), 3, %[1]d, '015146', 4, 'SPUNTA', 'OCCUPATO', 10),
		  (dms.next_id('stalls', 3::smallint), 3, %[1]d, '015146', 5, 'SPUNTA', 'RISERVATO', 10);
		INSERT INTO vendor_presences (id, region_id, market_id, comune, vendor_id, date, kind, checkin_at)
		SELECT dms.next_id('vendor_presences', 3::smallint), 3, %[1]d, '015146', v, d::date, 'SPUNTA', d::timestamptz
		FROM (VALUES (%[2]d, '2026-02-03'), (%[2]d, '2026-03-03'), (%[2]d, '2026-04-07'),
		             (%[3]d, '2026-01-13'), (%[3]d, '2026-03-10'), (%[3]d, '2026-05-05'),
		             (%[4]d, '2026-01-20'), (%[4]d, '2026-02-17'), (%[4]d, '2026-03-17'), (%[4]d, '2026-04-21'), (%[4]d, '2026-05-19'),
		             (%[5]d, '2026-06-09'), (%[6]d, '2026-03-03'), (%[4]d, '2025-12-20')) x(v, d);`,
		milano, regions.MakeID("03", 3), regions.MakeID("03", 4), regions.MakeID("03", 5), regions.MakeID("03", 6), vendor03))
	s1, s2, s3, s4 := regions.MakeID("03", 3), regions.MakeID("03", 4), regions.MakeID("03", 5), regions.MakeID("03", 6)
	stall3, stall4 := regions.MakeID("03", 4), regions.MakeID("03", 5)
	for _, v := range []int64{s1, s2, s3, s4} {
		wantStatus(t, "check-in", e.do(t, "milano", "POST", "/v1/markets/"+ids(milano)+"/presences",
			fmt.Sprintf(`{"vendor_id":%d,"kind":"SPUNTA"}`, v)), 201)
	}

	g := e.get(t, "milano", "/v1/markets/"+ids(milano)+"/graduatoria?year=2026")
	wantStatus(t, "graduatoria", g, 200)
	if got, want := g.field("vendor_id"), fmt.Sprintf("%v,%v,%v,%v,%v", float64(s3), float64(s2), float64(s1), float64(s4), float64(vendorFB)); got != want {
		t.Errorf("graduatoria vendors = %s, want %s", got, want)
	}
	if got := g.field("presences"); got != "6,4,4,2,1" || g.body["total"] != 5.0 || g.field("first_presence") != "2026-01-20,2026-01-13,2026-02-03,2026-06-09,2026-06-15" {
		t.Errorf("graduatoria = %s", g.raw)
	}
	if page := e.get(t, "milano", "/v1/markets/"+ids(milano)+"/graduatoria?limit=2&offset=2"); page.field("rank") != "3,4" || page.body["total"] != 5.0 {
		t.Errorf("graduatoria page 2 = %s", page.raw)
	}
	// The holders' own ranking counts their CONCESSION presences: vendor03's
	// two at Milano (06-13 and 06-15, from the fixture).
	if c := e.get(t, "milano", "/v1/markets/"+ids(milano)+"/graduatoria?kind=CONCESSION&year=2026"); c.field("vendor_id") != fmt.Sprint(float64(vendor03)) || c.field("presences") != "2" {
		t.Errorf("CONCESSION graduatoria = %s", c.raw)
	}
	if c := e.get(t, "milano", "/v1/markets/"+ids(milano)+"/graduatoria?year=2025"); c.status != 200 || c.field("vendor_id") != fmt.Sprint(float64(s3)) {
		t.Errorf("2025 graduatoria = %s", c.raw)
	}

	r := e.do(t, "milano", "POST", "/v1/markets/"+ids(milano)+"/spunta", "")
	wantStatus(t, "spunta", r, 201)
	want := map[int64]int64{s3: stallMI2, s2: stall3, s1: stall4}
	for _, v := range []int64{s1, s2, s3, s4, vendorFB} {
		got := scalar(t, nw, `SELECT coalesce(stall_id, 0) FROM vendor_presences WHERE vendor_id = $1 AND date = '2026-06-15'`, v)
		if got != want[v] {
			t.Errorf("vendor %d's stall after the spunta = %d, want %d", v, got, want[v])
		}
	}
	ranking, _ := r.body["ranking"].([]any)
	if len(ranking) != 5 || r.body["assigned"] != 3.0 || r.body["already_run"] != false {
		t.Errorf("spunta = %s", r.raw)
	}
	if got := scalar(t, nw, `SELECT count(*) FROM stalls WHERE id IN ($1, $2, $3) AND status = 'OCCUPATO'`, stallMI2, stall3, stall4); got != 3 {
		t.Errorf("assigned stalls OCCUPATO = %d, want 3", got)
	}
	if got := scalar(t, nw, `SELECT count(*) FROM audit_log WHERE action = 'spunta'`); got != 3+2+1 {
		t.Errorf("spunta audit rows = %d, want 3 presences, 2 stalls that were LIBERO and 1 market", got)
	}
	if a := latestAudit(t, nw, "stall", stall3); a.Action != "spunta" || a.Before["status"] != "LIBERO" || a.After["status"] != "OCCUPATO" {
		t.Errorf("stall audit = %+v", a)
	}

	// Running it again changes nothing and answers the first outcome.
	snapshot := writtenRows(t, nw)
	again := e.do(t, "milano", "POST", "/v1/markets/"+ids(milano)+"/spunta?date=2026-06-15", "")
	wantStatus(t, "spunta again", again, 200)
	if again.body["already_run"] != true || fmt.Sprint(again.body["ranking"]) != fmt.Sprint(r.body["ranking"]) {
		t.Errorf("spunta again = %s, first %s", again.raw, r.raw)
	}
	if after := writtenRows(t, nw); after != snapshot {
		t.Errorf("a second spunta changed the shard:\nbefore %s\nafter  %s", snapshot, after)
	}
	checkRollup(t, nw)
}
