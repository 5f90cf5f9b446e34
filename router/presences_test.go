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
