package router

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/regions"
)

// outcomeOf returns the outcome of vendor v's presence at Milano on
// 2026-06-15, "NULL" when none.
func outcomeOf(t *testing.T, dsn string, v int64) string {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var out *string
	if err := conn.QueryRow(context.Background(), `SELECT outcome FROM vendor_presences WHERE vendor_id = $1 AND date = '2026-06-15'`, v).Scan(&out); err != nil {
		t.Fatal(err)
	}
	if out == nil {
		return "NULL"
	}
	return *out
}

// spuntistiSQL adds to the fixture four spuntisti S1..S4 (registered S2
// 2001, S1 2002, the others unknown), authorised in the NON_ALIMENTARE
// sector (every stall's, by default; Bianchi is in both), Milano's stalls 3
// (LIBERO), 4 (OCCUPATO) and 5 (RISERVATO), and their SPUNTA presences at
// Milano; vendor03's one is as a spuntista, though it holds a concession.
const spuntistiSQL = `
	INSERT INTO vendors (id, region_id, partita_iva, codice_fiscale, denominazione, comune, registered_on)
	SELECT dms.next_id('vendors', 3::smallint), 3, lpad(n::text, 11, '0'), lpad(n::text, 11, '0'), 'S' || n, '015146',
		CASE n WHEN 1 THEN date '2002-01-01' WHEN 2 THEN date '2001-01-01' END
	FROM generate_series(1, 4) n;
	INSERT INTO authorisations (id, region_id, vendor_id, type, sector, comune)
	SELECT dms.next_id('authorisations', 3::smallint), 3, v, 'B', 'NON_ALIMENTARE', '015146'
	FROM unnest(ARRAY[%[2]d, %[3]d, %[4]d, %[5]d]::bigint[]) v;
	INSERT INTO stalls (id, region_id, market_id, comune, number, type, status, area_mq) VALUES
	  (dms.next_id('stalls', 3::smallint), 3, %[1]d, '015146', 3, 'SPUNTA', 'LIBERO', 10),
	  (dms.next_id('stalls', 3::smallint), 3, %[1]d, '015146', 4, 'SPUNTA', 'OCCUPATO', 10),
	  (dms.next_id('stalls', 3::smallint), 3, %[1]d, '015146', 5, 'SPUNTA', 'RISERVATO', 10);
	INSERT INTO vendor_presences (id, region_id, market_id, comune, vendor_id, date, kind, checkin_at)
	SELECT dms.next_id('vendor_presences', 3::smallint), 3, %[1]d, '015146', v, d::date, 'SPUNTA', d::timestamptz
	FROM (VALUES (%[2]d, '2026-02-03'), (%[2]d, '2026-03-03'), (%[2]d, '2026-04-07'),
	             (%[3]d, '2026-01-13'), (%[3]d, '2026-03-10'), (%[3]d, '2026-05-05'),
	             (%[4]d, '2026-01-20'), (%[4]d, '2026-02-17'), (%[4]d, '2026-03-17'), (%[4]d, '2026-04-21'), (%[4]d, '2026-05-19'),
	             (%[5]d, '2026-06-09'), (%[6]d, '2026-03-03'), (%[4]d, '2025-12-20')) x(v, d);`

// The spuntisti of spuntistiSQL and the stalls it adds.
var (
	s1, s2, s3, s4 = regions.MakeID("03", 3), regions.MakeID("03", 4), regions.MakeID("03", 5), regions.MakeID("03", 6)
	stallMI3       = regions.MakeID("03", 4)
	stallMI4       = regions.MakeID("03", 5)
)

// newSpuntaEnv is the fixture with spuntistiSQL, S1..S4 checked in on
// 2026-06-15 (Bianchi is, by the fixture).
func newSpuntaEnv(t *testing.T, name string) (*env, string) {
	t.Helper()
	e := newEnv(t, name, false)
	nw := e.shardDSN(t, "nw")
	exec(t, nw, fmt.Sprintf(spuntistiSQL, milano, s1, s2, s3, s4, vendor03))
	for _, v := range []int64{s1, s2, s3, s4} {
		wantStatus(t, "check-in", e.do(t, "milano", "POST", "/v1/markets/"+ids(milano)+"/presences",
			fmt.Sprintf(`{"vendor_id":%d,"kind":"SPUNTA"}`, v)), 201)
	}
	return e, nw
}

// TestSpunta computes the graduatoria and the default run by hand
// (issue 13: presences accumulate over the years, ties by registration):
//
//	vendor     SPUNTA presences at Milano before 06-15      first       registered
//	S3         6: 2025-12-20, 01-20 .. 05-19                 2025-12-20
//	S2         3: 01-13, 03-10, 05-05                        2026-01-13  2001-01-01
//	S1         3: 02-03, 03-03, 04-07                        2026-02-03  2002-01-01
//	S4         1: 06-09                                      2026-06-09
//	Bianchi    0 (the fixture checks it in on 06-15)
//	vendor03   1 SPUNTA on 03-03, but it holds an ATTIVA concession: not ranked
//
// On 06-15 all five spuntisti are present (no call recorded: all count as
// present at the call); the graduatoria up to 06-15 counts the day too:
// S3 7, S2 4, S1 4 (S2 first by registration), S4 2, Bianchi 1; Bianchi,
// authorised in both sectors, is also alone in ALIMENTARE. Milano's
// stalls: 1 taken by vendor03, 2 and 3 and 4 free (4's OCCUPATO status
// holds nobody today), 5 RISERVATO. So S3 gets stall 2, S2 stall 3, S1
// stall 4; S4 and Bianchi none (UNASSIGNED; Bianchi finds no ALIMENTARE
// stall either, called first in that sector). The stalls' status is not
// changed: an assignment lasts the day.
func TestSpunta(t *testing.T) {
	e, nw := newSpuntaEnv(t, "wspunta")
	g := e.get(t, "milano", "/v1/markets/"+ids(milano)+"/graduatoria?year=2026&sector=NON_ALIMENTARE")
	wantStatus(t, "graduatoria", g, 200)
	if got, want := g.field("vendor_id"), fmt.Sprintf("%v,%v,%v,%v,%v", float64(s3), float64(s2), float64(s1), float64(s4), float64(vendorFB)); got != want {
		t.Errorf("graduatoria vendors = %s, want %s", got, want)
	}
	if got := g.field("presences"); got != "7,4,4,2,1" || g.body["total"] != 5.0 ||
		g.field("first_presence") != "2025-12-20,2026-01-13,2026-02-03,2026-06-09,2026-06-15" ||
		g.field("tie_break") != "<nil>,REGISTRATION,REGISTRATION,<nil>,<nil>" || g.field("sector") != strings.Repeat("NON_ALIMENTARE,", 4)+"NON_ALIMENTARE" {
		t.Errorf("graduatoria = %s", g.raw)
	}
	if page := e.get(t, "milano", "/v1/markets/"+ids(milano)+"/graduatoria?limit=2&offset=2"); page.field("rank") != "2,3" || page.body["total"] != 6.0 {
		t.Errorf("graduatoria page 2 = %s", page.raw)
	}
	if food := e.get(t, "milano", "/v1/markets/"+ids(milano)+"/graduatoria?sector=ALIMENTARE"); food.field("vendor_id") != fmt.Sprint(float64(vendorFB)) || food.field("presences") != "1" {
		t.Errorf("ALIMENTARE graduatoria = %s, want Bianchi alone", food.raw)
	}
	if d := e.get(t, "milano", "/v1/markets/"+ids(milano)+"/graduatoria?date=2026-06-14"); d.field("presences") != "6,3,3,1" {
		t.Errorf("graduatoria of 06-14 = %s", d.raw)
	}
	// The holders' own ranking counts their CONCESSION presences: vendor03's
	// two at Milano (06-13 and 06-15, from the fixture).
	if c := e.get(t, "milano", "/v1/markets/"+ids(milano)+"/graduatoria?kind=CONCESSION&year=2026"); c.field("vendor_id") != fmt.Sprint(float64(vendor03)) || c.field("presences") != "2" {
		t.Errorf("CONCESSION graduatoria = %s", c.raw)
	}
	if c := e.get(t, "milano", "/v1/markets/"+ids(milano)+"/graduatoria?year=2025"); c.status != 200 || c.field("vendor_id") != fmt.Sprint(float64(s3)) || c.body["date"] != "2025-12-31" {
		t.Errorf("2025 graduatoria = %s", c.raw)
	}
	for _, q := range []string{"sector=FOOD", "date=2026-06-16", "date=2026-06-01&year=2026", "kind=CONCESSION&sector=ALIMENTARE", "cursor=x"} {
		if r := e.get(t, "milano", "/v1/markets/"+ids(milano)+"/graduatoria?"+q); r.status != 400 {
			t.Errorf("graduatoria?%s = %d %s, want 400", q, r.status, r.raw)
		}
	}

	r := e.do(t, "milano", "POST", "/v1/markets/"+ids(milano)+"/spunta", "")
	wantStatus(t, "spunta", r, 201)
	want := map[int64]int64{s3: stallMI2, s2: stallMI3, s1: stallMI4}
	for _, v := range []int64{s1, s2, s3, s4, vendorFB} {
		got := scalar(t, nw, `SELECT coalesce(stall_id, 0) FROM vendor_presences WHERE vendor_id = $1 AND date = '2026-06-15'`, v)
		if got != want[v] {
			t.Errorf("vendor %d's stall after the spunta = %d, want %d", v, got, want[v])
		}
	}
	if got := scalar(t, nw, `SELECT count(*) FROM vendor_presences WHERE date = '2026-06-15' AND kind = 'SPUNTA' AND outcome = 'UNASSIGNED'`); got != 2 {
		t.Errorf("UNASSIGNED presences = %d, want S4 and Bianchi", got)
	}
	ranking, _ := r.body["ranking"].([]any)
	if len(ranking) != 6 || r.body["assigned"] != 3.0 || r.body["already_run"] != false || r.body["status"] != "CLOSED" {
		t.Errorf("spunta = %s", r.raw)
	}
	if got := scalar(t, nw, `SELECT count(*) FROM stalls WHERE id IN ($1, $2) AND status = 'LIBERO'`, stallMI2, stallMI3); got != 2 {
		t.Errorf("stalls 2 and 3 LIBERO after the spunta: %d, want 2 (an assignment lasts the day)", got)
	}
	if got := scalar(t, nw, `SELECT count(*) FROM audit_log WHERE action = 'spunta'`); got != 5+1 {
		t.Errorf("spunta audit rows = %d, want 5 presences and 1 run", got)
	}
	if got := scalar(t, nw, `SELECT count(*) FROM spunta_events WHERE date = '2026-06-15'`); got != 3*2+3 {
		t.Errorf("spunta events = %d, want 3 offers and choices, 3 NO_STALL", got)
	}
	if got := scalar(t, nw, `SELECT count(*) FROM market_days WHERE date = '2026-06-15' AND call_at = '2026-06-15 10:00+02'`); got != 1 {
		t.Errorf("calls recorded = %d, want the spunta's, at 10:00 (the router's clock)", got)
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
	if got := e.get(t, "milano", "/v1/markets/"+ids(milano)+"/spunta?date=2026-06-15"); got.status != 200 || fmt.Sprint(got.body["events"]) != fmt.Sprint(r.body["events"]) {
		t.Errorf("GET spunta = %s", got.raw)
	}
	checkRollup(t, nw)
}

// TestSpuntaCall makes the same call as TestSpunta one decision at a
// time, with a refusal: S3 refuses, so S2 takes stall 2, S1 stall 3, S4
// stall 4, and Bianchi none.
func TestSpuntaCall(t *testing.T) {
	e, nw := newSpuntaEnv(t, "wspuntacall")
	path := "/v1/markets/" + ids(milano) + "/spunta"
	turn := func(r response) string {
		tu, _ := r.body["turn"].(map[string]any)
		if tu == nil {
			return "none"
		}
		var free []string
		for _, s := range tu["free"].([]any) {
			free = append(free, fmt.Sprint(s.(map[string]any)["number"]))
		}
		return fmt.Sprintf("%v %s", tu["vendor_id"], strings.Join(free, ","))
	}
	wantStatus(t, "GET before the call", e.get(t, "milano", path), 404)
	wantStatus(t, "close before the call", e.do(t, "milano", "POST", path+"/close", ""), 409)
	wantStatus(t, "open with a bad seed", e.do(t, "milano", "POST", path+"/open", `{"seed":"not a seed!"}`), 400)
	open := e.do(t, "milano", "POST", path+"/open", `{"seed":"appello-2026-06-15"}`)
	wantStatus(t, "open", open, 201)
	if got, want := turn(open), fmt.Sprintf("%v 2,3,4", float64(s3)); got != want || open.body["seed"] != "appello-2026-06-15" {
		t.Fatalf("turn at the opening = %s, want %s (%s)", got, want, open.raw)
	}
	for _, tt := range []struct {
		name, body string
		status     int
		rule       string
	}{
		{"the default run while open", "", 409, "spunta-open"},
		{"open again", "", 409, "spunta-open"},
		{"not S2's turn", fmt.Sprintf(`{"vendor_id":%d,"stall_id":%d}`, s2, stallMI2), 409, "not-your-turn"},
		{"a RISERVATO stall", fmt.Sprintf(`{"vendor_id":%d,"stall_id":%d}`, s3, regions.MakeID("03", 6)), 409, "stall-not-free"},
		{"vendor03's stall", fmt.Sprintf(`{"vendor_id":%d,"stall_id":%d}`, s3, regions.MakeID("03", 1)), 409, "stall-not-free"},
		{"a stall of Bergamo", fmt.Sprintf(`{"vendor_id":%d,"stall_id":%d}`, s3, stallBG1), 404, ""},
		{"no stall, no refusal", fmt.Sprintf(`{"vendor_id":%d}`, s3), 400, ""},
		{"both", fmt.Sprintf(`{"vendor_id":%d,"stall_id":%d,"refuse":true}`, s3, stallMI2), 400, ""},
	} {
		target := path + "/choice"
		switch tt.name {
		case "the default run while open":
			target = path
		case "open again":
			target = path + "/open"
		}
		r := e.do(t, "milano", "POST", target, tt.body)
		if r.status != tt.status || (tt.rule != "" && r.body["rule"] != tt.rule) {
			t.Errorf("%s = %d %s, want %d %s", tt.name, r.status, r.raw, tt.status, tt.rule)
		}
	}
	for _, step := range []struct {
		body, turn string
	}{
		{fmt.Sprintf(`{"vendor_id":%d,"refuse":true}`, s3), fmt.Sprintf("%v 2,3,4", float64(s2))},
		{fmt.Sprintf(`{"vendor_id":%d,"stall_id":%d}`, s2, stallMI2), fmt.Sprintf("%v 3,4", float64(s1))},
		{fmt.Sprintf(`{"vendor_id":%d,"stall_id":%d}`, s1, stallMI3), fmt.Sprintf("%v 4", float64(s4))},
		{fmt.Sprintf(`{"vendor_id":%d,"stall_id":%d}`, s4, stallMI4), "none"},
	} {
		r := e.do(t, "milano", "POST", path+"/choice?date=2026-06-15", step.body)
		wantStatus(t, "choice "+step.body, r, 201)
		if got := turn(r); got != step.turn {
			t.Errorf("after %s: turn %s, want %s", step.body, got, step.turn)
		}
	}
	if got := turn(e.get(t, "milano", path)); got != "none" {
		t.Errorf("GET turn = %s, want none", got)
	}
	closed := e.do(t, "milano", "POST", path+"/close", "")
	wantStatus(t, "close", closed, 201)
	want := map[int64]string{s3: "REFUSED/0", s2: fmt.Sprintf("ASSIGNED/%d", stallMI2), s1: fmt.Sprintf("ASSIGNED/%d", stallMI3),
		s4: fmt.Sprintf("ASSIGNED/%d", stallMI4), vendorFB: "UNASSIGNED/0"}
	for v, w := range want {
		got := fmt.Sprintf("%s/%d", outcomeOf(t, nw, v), scalar(t, nw, `SELECT coalesce(stall_id, 0) FROM vendor_presences WHERE vendor_id = $1 AND date = '2026-06-15'`, v))
		if got != w {
			t.Errorf("vendor %d: %s, want %s", v, got, w)
		}
	}
	if closed.body["status"] != "CLOSED" || closed.body["assigned"] != 3.0 {
		t.Errorf("closed = %s", closed.raw)
	}
	wantStatus(t, "a choice after the close", e.do(t, "milano", "POST", path+"/choice", fmt.Sprintf(`{"vendor_id":%d,"refuse":true}`, vendorFB)), 409)
}
