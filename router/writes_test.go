package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/regions"
)

// Ids of the fixture not named in router_test.go.
var (
	stallMI2   = regions.MakeID("03", 2) // Milano stall 2, spunta, libero
	vendorFB   = regions.MakeID("03", 2) // Frutta Bianchi srl, a spuntista at Milano
	concBG     = regions.MakeID("03", 2) // vendor03's concession on Bergamo stall 1, to 2026-07-31
	presenceMI = regions.MakeID("03", 1) // vendor03's presence at Milano on 2026-06-15
)

func ids(n int64) string { return strconv.FormatInt(n, 10) }

// do sends a request as who (a key of e.tokens) with an optional JSON body
// and header pairs.
func (e *env) do(t *testing.T, who, method, path, body string, header ...string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
	if who != "" {
		req.Header.Set("Authorization", "Bearer "+e.tokens[who])
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := response{status: res.StatusCode, header: res.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// addToken signs a token for who with role and territory.
func (e *env) addToken(t *testing.T, who, role, territory string) {
	t.Helper()
	tr, err := regions.ParseTerritory(territory)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := SignHS256(pgtest.TestSecret, Principal{Subject: who, Role: role, Territory: tr}, time.Hour, fixedNow)
	if err != nil {
		t.Fatal(err)
	}
	e.tokens[who] = tok
}

// shardDSN returns the superuser DSN of shard name.
func (e *env) shardDSN(t *testing.T, name string) string {
	t.Helper()
	for _, sh := range e.m.Config().Shards {
		if sh.Name == name {
			return sh.AdminDSN()
		}
	}
	t.Fatalf("no shard %s", name)
	return ""
}

// scalar returns the single integer sql yields on dsn.
func scalar(t *testing.T, dsn, sql string, args ...any) int64 {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int64
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// writtenRows counts the rows of every table a write may touch, so a test
// can show that a refused write wrote nothing.
func writtenRows(t *testing.T, dsn string) string {
	t.Helper()
	var parts []string
	for _, table := range []string{"markets", "stalls", "vendors", "concessions", "vendor_presences", "audit_log", "idempotency_keys", "spunta_runs"} {
		parts = append(parts, fmt.Sprintf("%s=%d", table, scalar(t, dsn, "SELECT count(*) FROM "+table)))
	}
	parts = append(parts, fmt.Sprintf("stall_status=%d", scalar(t, dsn, `SELECT coalesce(sum(hashtext(id::text || status)), 0) FROM stalls`)))
	parts = append(parts, fmt.Sprintf("concession_status=%d", scalar(t, dsn, `SELECT coalesce(sum(hashtext(id::text || status)), 0) FROM concessions`)))
	return strings.Join(parts, " ")
}

// checkRollup checks that the presence rollup, where the schema has one,
// equals the presences counted by market, day and kind.
func checkRollup(t *testing.T, dsn string) {
	t.Helper()
	if scalar(t, dsn, `SELECT count(*) FROM pg_class WHERE relname = 'presence_daily'`) == 0 {
		return
	}
	bad := scalar(t, dsn, `SELECT count(*) FROM (
		SELECT market_id, date, kind, count(*)::int AS n FROM vendor_presences GROUP BY 1, 2, 3) p
		FULL JOIN (SELECT market_id, date, kind, n FROM presence_daily WHERE n > 0) d USING (market_id, date, kind)
		WHERE p.n IS DISTINCT FROM d.n`)
	if bad != 0 {
		t.Errorf("presence_daily differs from count(*) of vendor_presences in %d (market, day, kind) groups", bad)
	}
}

// auditRow is the latest audit row of an entity.
type auditRow struct {
	User, Role, Action string
	Before, After      map[string]any
}

func latestAudit(t *testing.T, dsn, entity string, id int64) auditRow {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var a auditRow
	err = conn.QueryRow(context.Background(), `SELECT user_sub, role, action, before, after FROM audit_log
		WHERE entity = $1 AND entity_id = $2 ORDER BY id DESC LIMIT 1`, entity, id).Scan(&a.User, &a.Role, &a.Action, &a.Before, &a.After)
	if err != nil {
		t.Fatalf("audit row of %s %d: %v", entity, id, err)
	}
	return a
}

// partitaIVA returns the partita IVA with the ten digits d and their check digit.
func partitaIVA(d string) string {
	sum := 0
	for i := 0; i < 10; i++ {
		n := int(d[i] - '0')
		if i%2 == 1 {
			if n *= 2; n > 9 {
				n -= 9
			}
		}
		sum += n
	}
	return d + strconv.Itoa((10-sum%10)%10)
}

// wantStatus fails unless r has status want.
func wantStatus(t *testing.T, what string, r response, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("%s = %d %s, want %d", what, r.status, r.raw, want)
	}
}

// wantField fails unless the problem r names field.
func wantField(t *testing.T, what string, r response, field string) {
	t.Helper()
	if !strings.Contains(r.raw, `"field":"`+field+`"`) {
		t.Errorf("%s: problem %s does not name field %q", what, r.raw, field)
	}
}

func TestRegistryWrites(t *testing.T) {
	e := newEnv(t, "wreg", false)
	nw := e.shardDSN(t, "nw")

	// Markets.
	r := e.do(t, "lombardia", "POST", "/v1/markets",
		`{"code":"MI002","name":"Mercato di Viale Papiniano","comune":"015146","comune_name":"Milano","days":[2,6],"cost_per_sqm":1.5}`)
	wantStatus(t, "POST /v1/markets", r, 201)
	mid := int64(r.body["id"].(float64))
	if got, _ := regions.IDRegion(mid); got != "03" || r.body["province"] != "015" || r.body["region"] != "03" || r.body["status"] != "active" {
		t.Errorf("created market = %s", r.raw)
	}
	if g := e.get(t, "milano", "/v1/markets/"+ids(mid)); g.status != 200 || g.body["code"] != "MI002" {
		t.Errorf("GET the new market = %d %s", g.status, g.raw)
	}
	a := latestAudit(t, nw, "market", mid)
	if a.User != "lombardia" || a.Role != "admin_pa" || a.Action != "create" || a.Before != nil || a.After["code"] != "MI002" {
		t.Errorf("audit of the new market = %+v", a)
	}
	wantStatus(t, "POST a market with a code taken", e.do(t, "lombardia", "POST", "/v1/markets",
		`{"code":"MI002","name":"Doppione","comune":"015146"}`), 409)
	// Codes are unique per region: TO001 is Piemonte's, on the same shard.
	r = e.do(t, "lombardia", "POST", "/v1/markets", `{"code":"TO001","name":"Omonimo","comune":"015146","days":[3]}`)
	wantStatus(t, "POST a market with a code of another region", r, 201)
	if r.body["code"] != "TO001" || r.body["region"] != "03" {
		t.Errorf("market with another region's code = %s", r.raw)
	}
	r = e.do(t, "lombardia", "POST", "/v1/markets", `{"code":"TO001","name":"Doppione","comune":"016024","days":[3]}`)
	wantStatus(t, "POST a market with a code taken in its region", r, 409)
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("duplicate code: Content-Type = %q, want application/problem+json", ct)
	}
	r = e.do(t, "national", "POST", "/v1/markets", `{"code":"RM002","name":"Mercato Esquilino","comune":"058091"}`)
	wantStatus(t, "national POST a market in Lazio", r, 201)
	if got, _ := regions.IDRegion(int64(r.body["id"].(float64))); got != "12" {
		t.Errorf("national market's region = %s, want 12", got)
	}

	r = e.do(t, "milano", "PATCH", "/v1/markets/"+ids(mid), `{"name":"Mercato Papiniano","status":"inactive"}`)
	wantStatus(t, "PATCH /v1/markets/{id}", r, 200)
	if r.body["name"] != "Mercato Papiniano" || r.body["status"] != "inactive" || r.body["code"] != "MI002" {
		t.Errorf("patched market = %s", r.raw)
	}
	a = latestAudit(t, nw, "market", mid)
	if a.Action != "update" || a.User != "milano" || a.Before["name"] != "Mercato di Viale Papiniano" || a.After["name"] != "Mercato Papiniano" {
		t.Errorf("audit of the patch = %+v", a)
	}

	// Stalls.
	r = e.do(t, "milano", "POST", "/v1/markets/"+ids(milano)+"/stalls", `{"number":3,"type":"spunta","area_mq":9.5,"width_m":3}`)
	wantStatus(t, "POST stall", r, 201)
	sid := int64(r.body["id"].(float64))
	if r.body["market_id"] != float64(milano) || r.body["status"] != "libero" || r.body["area_mq"] != 9.5 || r.body["width_m"] != 3.0 {
		t.Errorf("created stall = %s", r.raw)
	}
	if a := latestAudit(t, nw, "stall", sid); a.Action != "create" || a.After["number"] != 3.0 {
		t.Errorf("audit of the new stall = %+v", a)
	}
	wantStatus(t, "POST a stall number taken", e.do(t, "milano", "POST", "/v1/markets/"+ids(milano)+"/stalls",
		`{"number":3,"type":"fisso","area_mq":9}`), 409)
	r = e.do(t, "milano", "PATCH", "/v1/stalls/"+ids(sid), `{"status":"riservato","width_m":null}`)
	wantStatus(t, "PATCH stall", r, 200)
	if r.body["status"] != "riservato" || r.body["width_m"] != nil {
		t.Errorf("patched stall = %s", r.raw)
	}

	// Vendors.
	piva := partitaIVA("0765432101")
	r = e.do(t, "milano", "POST", "/v1/vendors",
		`{"partita_iva":"`+piva+`","codice_fiscale":"RSSMRA80A01H501U","denominazione":"Mario Rossi ambulante","comune":"016024"}`)
	wantStatus(t, "POST vendor (comune elsewhere in the region)", r, 201)
	vid := int64(r.body["id"].(float64))
	if r.body["stato"] != "ATTIVA" || r.body["region"] != "03" {
		t.Errorf("created vendor = %s", r.raw)
	}
	wantStatus(t, "POST a vendor with a partita IVA taken", e.do(t, "lombardia", "POST", "/v1/vendors",
		`{"partita_iva":"`+piva+`","codice_fiscale":"`+piva+`","denominazione":"Altro","comune":"015146"}`), 409)
	r = e.do(t, "lombardia", "PATCH", "/v1/vendors/"+ids(vid), `{"denominazione":"Rossi Mario ambulante","stato":"SOSPESA"}`)
	wantStatus(t, "PATCH vendor", r, 200)
	if a := latestAudit(t, nw, "vendor", vid); a.Before["stato"] != "ATTIVA" || a.After["stato"] != "SOSPESA" {
		t.Errorf("audit of the vendor patch = %+v", a)
	}
	r = e.do(t, "national", "POST", "/v1/vendors",
		`{"partita_iva":"`+piva+`","codice_fiscale":"`+piva+`","denominazione":"Rossi in Lazio","comune":"016024","region":"12"}`)
	wantStatus(t, "national POST a Lombard vendor into Lazio's registry", r, 201)
	if r.body["region"] != "12" {
		t.Errorf("vendor registered in region %v, want 12", r.body["region"])
	}

	// Concessions.
	r = e.do(t, "milano", "POST", "/v1/concessions",
		fmt.Sprintf(`{"market_id":%d,"stall_id":%d,"vendor_id":%d,"valid_from":"2025-01-01","valid_to":"2030-12-31"}`, milano, stallMI1, vendorFB))
	wantStatus(t, "POST a concession overlapping an ATTIVA one", r, 409)
	r = e.do(t, "milano", "POST", "/v1/concessions",
		fmt.Sprintf(`{"market_id":%d,"stall_id":%d,"vendor_id":%d,"valid_from":"2030-01-01"}`, milano, stallMI1, vendorFB))
	wantStatus(t, "POST a concession after the ATTIVA one", r, 201)
	cid := int64(r.body["id"].(float64))
	if r.body["valid_to"] != "2039-12-31" || r.body["status"] != "ATTIVA" {
		t.Errorf("10-year concession = %s", r.raw)
	}
	r = e.do(t, "milano", "POST", "/v1/concessions",
		fmt.Sprintf(`{"market_id":%d,"stall_id":%d,"vendor_id":%d,"valid_from":"2030-01-01"}`, milano, stallBG1, vendorFB))
	wantStatus(t, "POST a concession on a stall of a market outside the comune", r, 404)
	wantField(t, "stall outside the comune", r, "stall_id")
	r = e.do(t, "lombardia", "POST", "/v1/concessions",
		fmt.Sprintf(`{"market_id":%d,"stall_id":%d,"vendor_id":%d,"valid_from":"2030-01-01"}`, milano, stallBG1, vendorFB))
	wantStatus(t, "POST a concession on another market's stall", r, 422)
	wantField(t, "another market's stall", r, "stall_id")
	wantStatus(t, "POST a concession to a SOSPESA vendor", e.do(t, "lombardia", "POST", "/v1/concessions",
		fmt.Sprintf(`{"market_id":%d,"stall_id":%d,"vendor_id":%d,"valid_from":"2040-01-01"}`, milano, stallMI2, vid)), 409)

	// Status transitions.
	for _, step := range []struct {
		status string
		want   int
	}{
		{"SOSPESA", 200}, {"SOSPESA", 409}, {"ATTIVA", 200}, {"REVOCATA", 200}, {"ATTIVA", 409}, {"CESSATA", 409},
	} {
		r := e.do(t, "milano", "POST", "/v1/concessions/"+ids(cid)+"/status", `{"status":"`+step.status+`","reason":"canone"}`)
		wantStatus(t, "concession -> "+step.status, r, step.want)
		if step.want == 200 && r.body["status"] != step.status {
			t.Errorf("concession -> %s = %s", step.status, r.raw)
		}
	}
	a = latestAudit(t, nw, "concession", cid)
	if a.Action != "status" || a.Before["status"] != "ATTIVA" || a.After["status"] != "REVOCATA" || a.After["reason"] != "canone" {
		t.Errorf("audit of the revocation = %+v", a)
	}
	r = e.do(t, "milano", "POST", "/v1/concessions/"+ids(concMI)+"/status", `{"status":"SCADUTA","reason":"x"}`)
	wantStatus(t, "concession -> SCADUTA", r, 400)
	wantField(t, "SCADUTA", r, "status")

	// Reactivating a concession past its valid_to is refused.
	exec(t, nw, fmt.Sprintf(`UPDATE concessions SET status = 'SOSPESA', valid_to = '2026-06-01' WHERE id = %d`, concBG))
	wantStatus(t, "reactivate an expired concession", e.do(t, "lombardia", "POST", "/v1/concessions/"+ids(concBG)+"/status",
		`{"status":"ATTIVA","reason":"pagato"}`), 409)
}

func TestWriteRolesAndBadInput(t *testing.T) {
	e := newEnv(t, "wbad", false)
	nw := e.shardDSN(t, "nw")
	for _, role := range []string{"municipal_police", "auditor", "business_owner"} {
		e.addToken(t, role, role, "region:03")
	}
	e.addToken(t, "suap", "suap_operator", "comune:015146")
	e.addToken(t, "manager", "market_manager", "market:"+ids(milano))
	before := writtenRows(t, nw)
	market := `{"code":"MI009","name":"Nuovo","comune":"015146"}`
	for _, role := range []string{"municipal_police", "auditor", "business_owner"} {
		r := e.do(t, role, "POST", "/v1/markets", market)
		wantStatus(t, role+" POST /v1/markets", r, 403)
		wantStatus(t, role+" PATCH /v1/markets", e.do(t, role, "PATCH", "/v1/markets/"+ids(milano), `{"name":"x"}`), 403)
		wantStatus(t, role+" check-in", e.do(t, role, "POST", "/v1/markets/"+ids(milano)+"/presences",
			fmt.Sprintf(`{"vendor_id":%d,"kind":"SPUNTA"}`, vendorFB)), 403)
		wantStatus(t, role+" graduatoria", e.get(t, role, "/v1/markets/"+ids(milano)+"/graduatoria"), 200)
	}
	piva := partitaIVA("0123987654")
	tests := []struct{ name, who, method, path, body, field string }{
		{"unknown field", "lombardia", "POST", "/v1/markets", `{"code":"MI009","name":"x","comune":"015146","colour":"red"}`, "colour"},
		{"wrong type", "lombardia", "POST", "/v1/markets", `{"code":"MI009","name":"x","comune":15146}`, "comune"},
		{"missing field", "lombardia", "POST", "/v1/markets", `{"code":"MI009","comune":"015146"}`, "name"},
		{"bad code", "lombardia", "POST", "/v1/markets", `{"code":"mi9","name":"x","comune":"015146"}`, "code"},
		{"unknown comune", "lombardia", "POST", "/v1/markets", `{"code":"MI009","name":"x","comune":"215146"}`, "comune"},
		{"bad days", "lombardia", "POST", "/v1/markets", `{"code":"MI009","name":"x","comune":"015146","days":[0,8]}`, "days"},
		{"no days", "lombardia", "POST", "/v1/markets", `{"code":"MI009","name":"x","comune":"015146","days":[]}`, "days"},
		{"patch no days", "lombardia", "PATCH", "/v1/markets/" + ids(milano), `{"days":[]}`, "days"},
		{"comune of another region", "lombardia", "POST", "/v1/markets", `{"code":"MI009","name":"x","comune":"058091","region":"03"}`, "region"},
		{"national: comune of another region", "national", "POST", "/v1/markets", `{"code":"RM009","name":"x","comune":"058091","region":"03"}`, "region"},
		{"negative cost", "lombardia", "POST", "/v1/markets", `{"code":"MI009","name":"x","comune":"015146","cost_per_sqm":-1}`, "cost_per_sqm"},
		{"malformed JSON", "lombardia", "POST", "/v1/markets", `{"code":`, "body"},
		{"trailing data", "lombardia", "POST", "/v1/markets", market + `{}`, "body"},
		{"empty body", "lombardia", "POST", "/v1/markets", ` `, "body"},
		{"bad partita IVA check digit", "lombardia", "POST", "/v1/vendors", `{"partita_iva":"12345678901","codice_fiscale":"RSSMRA80A01H501U","denominazione":"x","comune":"015146"}`, "partita_iva"},
		{"bad codice fiscale", "lombardia", "POST", "/v1/vendors", `{"partita_iva":"` + piva + `","codice_fiscale":"RSSMRA80A01H501X","denominazione":"x","comune":"015146"}`, "codice_fiscale"},
		{"short codice fiscale", "lombardia", "POST", "/v1/vendors", `{"partita_iva":"` + piva + `","codice_fiscale":"RSSMRA80","denominazione":"x","comune":"015146"}`, "codice_fiscale"},
		{"stall wrong type", "lombardia", "POST", "/v1/markets/" + ids(milano) + "/stalls", `{"number":"7","type":"fisso","area_mq":9}`, "number"},
		{"stall bad type", "lombardia", "POST", "/v1/markets/" + ids(milano) + "/stalls", `{"number":7,"type":"grande","area_mq":9}`, "type"},
		{"stall zero area", "lombardia", "POST", "/v1/markets/" + ids(milano) + "/stalls", `{"number":7,"type":"fisso","area_mq":0}`, "area_mq"},
		{"patch null", "lombardia", "PATCH", "/v1/markets/" + ids(milano), `{"name":null}`, "name"},
		{"patch comune", "lombardia", "PATCH", "/v1/markets/" + ids(milano), `{"comune":"015147"}`, "comune"},
		{"patch nothing", "lombardia", "PATCH", "/v1/markets/" + ids(milano), `{}`, "body"},
		{"patch bad stato", "lombardia", "PATCH", "/v1/vendors/" + ids(vendor03), `{"stato":"attiva"}`, "stato"},
		{"concession bad date", "lombardia", "POST", "/v1/concessions", fmt.Sprintf(`{"market_id":%d,"stall_id":%d,"vendor_id":%d,"valid_from":"2030-02-30"}`, milano, stallMI2, vendorFB), "valid_from"},
		{"concession backwards", "lombardia", "POST", "/v1/concessions", fmt.Sprintf(`{"market_id":%d,"stall_id":%d,"vendor_id":%d,"valid_from":"2030-02-01","valid_to":"2030-01-01"}`, milano, stallMI2, vendorFB), "valid_to"},
		{"concession bad id", "lombardia", "POST", "/v1/concessions", fmt.Sprintf(`{"market_id":5,"stall_id":%d,"vendor_id":%d,"valid_from":"2030-02-01"}`, stallMI2, vendorFB), "market_id"},
		{"status missing reason", "lombardia", "POST", "/v1/concessions/" + ids(concMI) + "/status", `{"status":"SOSPESA"}`, "reason"},
		{"check-in bad kind", "milano", "POST", "/v1/markets/" + ids(milano) + "/presences", fmt.Sprintf(`{"vendor_id":%d,"kind":"spunta"}`, vendorFB), "kind"},
		{"check-in bad time", "milano", "POST", "/v1/markets/" + ids(milano) + "/presences", fmt.Sprintf(`{"vendor_id":%d,"kind":"SPUNTA","checkin_at":"15/06/2026"}`, vendorFB), "checkin_at"},
		{"check-in in the future", "milano", "POST", "/v1/markets/" + ids(milano) + "/presences", fmt.Sprintf(`{"vendor_id":%d,"kind":"SPUNTA","checkin_at":"2026-06-16T07:00:00+02:00"}`, vendorFB), "checkin_at"},
		{"spunta in the future", "milano", "POST", "/v1/markets/" + ids(milano) + "/spunta?date=2026-06-16", ``, "date"},
		{"graduatoria bad year", "milano", "GET", "/v1/markets/" + ids(milano) + "/graduatoria?year=2027", ``, "year"},
		{"graduatoria bad kind", "milano", "GET", "/v1/markets/" + ids(milano) + "/graduatoria?kind=X", ``, "kind"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, tt.who, tt.method, tt.path, tt.body)
			wantStatus(t, tt.method+" "+tt.path+" "+tt.body, r, 400)
			if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type = %q, want application/problem+json", ct)
			}
			wantField(t, tt.name, r, tt.field)
		})
	}
	wantStatus(t, "bad Idempotency-Key", e.do(t, "lombardia", "POST", "/v1/markets", market, "Idempotency-Key", "has spaces"), 400)
	big := `{"code":"MI009","name":"` + strings.Repeat("x", 1<<20) + `","comune":"015146"}`
	wantStatus(t, "body over 1 MiB", e.do(t, "lombardia", "POST", "/v1/markets", big), 413)
	wantStatus(t, "text body", e.do(t, "lombardia", "POST", "/v1/markets", market, "Content-Type", "text/plain"), 415)
	if after := writtenRows(t, nw); after != before {
		t.Errorf("refused writes changed the shard:\nbefore %s\nafter  %s", before, after)
	}
	// The writing roles all write, each inside its territory.
	wantStatus(t, "suap_operator POST market", e.do(t, "suap", "POST", "/v1/markets", market), 201)
	wantStatus(t, "market_manager POST stall", e.do(t, "manager", "POST", "/v1/markets/"+ids(milano)+"/stalls",
		`{"number":8,"type":"fisso","area_mq":9}`), 201)
}

func TestWritesOutsideTerritory(t *testing.T) {
	e := newEnv(t, "wout", false)
	nw, lazio := e.shardDSN(t, "nw"), e.shardDSN(t, "lazio")
	e.addToken(t, "lombardia-police", "municipal_police", "region:03")
	beforeNW, beforeLazio := writtenRows(t, nw), writtenRows(t, lazio)
	tests := []struct {
		name, who, method, path, body string
		status                        int
	}{
		{"market in another comune", "milano", "POST", "/v1/markets", `{"code":"BG002","name":"x","comune":"016024"}`, 403},
		{"market in another region", "lombardia", "POST", "/v1/markets", `{"code":"RM003","name":"x","comune":"058091"}`, 403},
		{"market naming another region", "lombardia", "POST", "/v1/markets", `{"code":"MI003","name":"x","comune":"015146","region":"05"}`, 403},
		{"market by a market principal", "market", "POST", "/v1/markets", `{"code":"MI003","name":"x","comune":"015146"}`, 403},
		{"patch another comune's market", "milano", "PATCH", "/v1/markets/" + ids(bergamo), `{"name":"x"}`, 404},
		{"patch another region's market", "lazio", "PATCH", "/v1/markets/" + ids(milano), `{"name":"x"}`, 404},
		{"stall in another comune's market", "milano", "POST", "/v1/markets/" + ids(bergamo) + "/stalls", `{"number":9,"type":"fisso","area_mq":9}`, 404},
		{"patch another comune's stall", "milano", "PATCH", "/v1/stalls/" + ids(stallBG1), `{"status":"riservato"}`, 404},
		{"vendor of another region", "lazio", "POST", "/v1/vendors", `{"partita_iva":"` + partitaIVA("0555555555") + `","codice_fiscale":"RSSMRA80A01H501U","denominazione":"x","comune":"015146"}`, 403},
		{"vendor into another region", "lombardia", "POST", "/v1/vendors", `{"partita_iva":"` + partitaIVA("0555555555") + `","codice_fiscale":"RSSMRA80A01H501U","denominazione":"x","comune":"015146","region":"12"}`, 403},
		{"patch another region's vendor", "lazio", "PATCH", "/v1/vendors/" + ids(vendor03), `{"denominazione":"x"}`, 404},
		{"concession in another region", "lazio", "POST", "/v1/concessions", fmt.Sprintf(`{"market_id":%d,"stall_id":%d,"vendor_id":%d,"valid_from":"2030-01-01"}`, milano, stallMI2, vendorFB), 403},
		{"concession with a vendor of another region", "lombardia", "POST", "/v1/concessions", fmt.Sprintf(`{"market_id":%d,"stall_id":%d,"vendor_id":%d,"valid_from":"2030-01-01"}`, milano, stallMI2, regions.MakeID("12", 1)), 403},
		{"status of another comune's concession", "milano", "POST", "/v1/concessions/" + ids(concBG) + "/status", `{"status":"SOSPESA","reason":"x"}`, 404},
		{"check-in at another comune's market", "milano", "POST", "/v1/markets/" + ids(bergamo) + "/presences", fmt.Sprintf(`{"vendor_id":%d,"kind":"SPUNTA"}`, vendorFB), 404},
		{"check-in of another region's vendor", "milano", "POST", "/v1/markets/" + ids(milano) + "/presences", fmt.Sprintf(`{"vendor_id":%d,"kind":"SPUNTA"}`, regions.MakeID("12", 1)), 403},
		{"batch into another region", "lazio", "POST", "/v1/presences/batch", fmt.Sprintf(`{"rows":[{"market_id":%d,"vendor_id":%d,"date":"2026-06-10","kind":"SPUNTA"}]}`, milano, vendorFB), 403},
		{"spunta at another comune's market", "milano", "POST", "/v1/markets/" + ids(bergamo) + "/spunta", ``, 404},
		{"graduatoria of another comune's market", "milano", "GET", "/v1/markets/" + ids(bergamo) + "/graduatoria", ``, 404},
		{"a reading role", "lombardia-police", "POST", "/v1/markets/" + ids(milano) + "/spunta", ``, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, tt.who, tt.method, tt.path, tt.body)
			wantStatus(t, tt.method+" "+tt.path+" as "+tt.who, r, tt.status)
			if tt.status == 404 && strings.Contains(r.raw, "Mercato") {
				t.Errorf("a 404 reveals the row: %s", r.raw)
			}
		})
	}
	// A batch row naming a market of the region outside the principal's
	// comune is refused by row, and the batch writes nothing.
	r := e.do(t, "milano", "POST", "/v1/presences/batch",
		fmt.Sprintf(`{"rows":[{"market_id":%d,"vendor_id":%d,"date":"2026-06-10","kind":"SPUNTA"}]}`, bergamo, vendorFB))
	wantStatus(t, "batch row at another comune's market", r, 422)
	wantField(t, "batch row at another comune's market", r, "rows[0].market_id")
	if after := writtenRows(t, nw); after != beforeNW {
		t.Errorf("writes outside the territory changed shard nw:\nbefore %s\nafter  %s", beforeNW, after)
	}
	if after := writtenRows(t, lazio); after != beforeLazio {
		t.Errorf("writes outside the territory changed shard lazio:\nbefore %s\nafter  %s", beforeLazio, after)
	}
}

// TestRLSRefusesWrongRegion bypasses the router: connected as dms_app with
// the scope of region 03 set, rows of region 05 (or of another comune) are
// refused by row-level security itself.
func TestRLSRefusesWrongRegion(t *testing.T) {
	e := newEnv(t, "wrls", false)
	var appDSN string
	for _, sh := range e.m.Config().Shards {
		if sh.Name == "nw" {
			appDSN = sh.Primary
		}
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, appDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	veneto := regions.MakeID("05", 1)
	tests := []struct {
		name, comune, sql string
	}{
		{"a market of region 05", "", fmt.Sprintf(`INSERT INTO markets (id, region_id, code, name, province, comune)
			VALUES (%d, 5, 'VE001', 'Rialto', '027', '027042')`, veneto)},
		{"a vendor of region 05", "", fmt.Sprintf(`INSERT INTO vendors (id, region_id, partita_iva, codice_fiscale, denominazione, comune)
			VALUES (%d, 5, '01234567897', '01234567897', 'x', '027042')`, veneto)},
		{"a presence of region 05", "", fmt.Sprintf(`INSERT INTO vendor_presences (id, region_id, market_id, comune, vendor_id, date, kind, checkin_at)
			VALUES (%d, 5, %d, '027042', %d, '2026-06-15', 'SPUNTA', now())`, veneto, veneto, veneto)},
		{"an audit row of region 05", "", fmt.Sprintf(`INSERT INTO audit_log (id, region_id, user_sub, role, action, entity)
			VALUES (%d, 5, 'x', 'admin_pa', 'create', 'market')`, veneto)},
		{"an idempotency key of region 05", "", `INSERT INTO idempotency_keys (region_id, user_sub, key, fingerprint, created, response)
			VALUES (5, 'x', 'k', '\x00', true, '{}')`},
		{"a stall of another comune", "015146", fmt.Sprintf(`INSERT INTO stalls (id, region_id, market_id, comune, number, type, area_mq)
			VALUES (%d, 3, %d, '016024', 99, 'fisso', 9)`, regions.MakeID("03", 99), bergamo)},
		{"moving a region 03 market to region 05", "", fmt.Sprintf(`UPDATE markets SET region_id = 5 WHERE id = %d`, milano)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tx, err := conn.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)
			if _, err := tx.Exec(ctx, `SELECT set_config('dms.region', '03', true), set_config('dms.comune', $1, true),
				set_config('dms.province', left($1, 3), true), set_config('dms.user', 'x', true)`, tt.comune); err != nil {
				t.Fatal(err)
			}
			_, err = tx.Exec(ctx, tt.sql)
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || (pgErr.Code != "42501" && pgErr.Code != "23514") {
				t.Fatalf("as dms_app in scope 03: %s = %v, want a row-level security violation", tt.name, err)
			}
		})
	}
}

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

func TestIdempotencyKey(t *testing.T) {
	e := newEnv(t, "widem", false)
	nw := e.shardDSN(t, "nw")
	body := `{"code":"MI005","name":"Mercato di Piazza Wagner","comune":"015146"}`
	first := e.do(t, "milano", "POST", "/v1/markets", body, "Idempotency-Key", "k1")
	wantStatus(t, "first POST", first, 201)
	// The same request again, even with other white space: the first response.
	again := e.do(t, "milano", "POST", "/v1/markets", "{ \"code\": \"MI005\", \"name\": \"Mercato di Piazza Wagner\",\n \"comune\": \"015146\" }", "Idempotency-Key", "k1")
	wantStatus(t, "replay", again, 201)
	if again.raw != first.raw || again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay = %s, want %s", again.raw, first.raw)
	}
	r := e.do(t, "milano", "POST", "/v1/markets", `{"code":"MI006","name":"Altro","comune":"015146"}`, "Idempotency-Key", "k1")
	wantStatus(t, "same key, another body", r, 422)
	wantStatus(t, "same key, another path", e.do(t, "milano", "POST", "/v1/markets/"+ids(milano)+"/stalls",
		`{"number":5,"type":"fisso","area_mq":9}`, "Idempotency-Key", "k1"), 422)
	// Keys belong to their user: another user's k1 is a request of its own.
	wantStatus(t, "another user's key", e.do(t, "lombardia", "POST", "/v1/markets", body, "Idempotency-Key", "k1"), 409)
	// A write that failed stored no key: the retry runs again.
	dupe := `{"code":"MI001","name":"x","comune":"015146"}`
	wantStatus(t, "failed write", e.do(t, "milano", "POST", "/v1/markets", dupe, "Idempotency-Key", "k2"), 409)
	if n := scalar(t, nw, `SELECT count(*) FROM idempotency_keys WHERE key = 'k2'`); n != 0 {
		t.Errorf("a failed write stored its key %d times", n)
	}
	if n := scalar(t, nw, `SELECT count(*) FROM markets WHERE code = 'MI005'`); n != 1 {
		t.Errorf("markets MI005 = %d, want 1", n)
	}
	// Every POST takes a key: a check-in and a spunta replay too.
	checkin := fmt.Sprintf(`{"vendor_id":%d,"kind":"SPUNTA","checkin_at":"2026-06-14T07:00:00+02:00"}`, vendorFB)
	c1 := e.do(t, "milano", "POST", "/v1/markets/"+ids(milano)+"/presences", checkin, "Idempotency-Key", "c1")
	c2 := e.do(t, "milano", "POST", "/v1/markets/"+ids(milano)+"/presences", checkin, "Idempotency-Key", "c1")
	if c1.status != 201 || c2.status != 201 || c1.raw != c2.raw || c2.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("check-in and its replay = %d %s / %d %s", c1.status, c1.raw, c2.status, c2.raw)
	}
	// The same key with another check-in, one that would be written: 422,
	// and nothing of it is.
	exec(t, nw, `INSERT INTO vendors (id, region_id, partita_iva, codice_fiscale, denominazione, comune)
		VALUES (dms.next_id('vendors', 3::smallint), 3, '00000000103', '00000000103', 'Spuntista', '015146')`)
	other := fmt.Sprintf(`{"vendor_id":%d,"kind":"SPUNTA","stall_id":%d,"checkin_at":"2026-06-14T07:00:00+02:00"}`, regions.MakeID("03", 3), stallMI2)
	before := writtenRows(t, nw)
	wantStatus(t, "same key, another check-in", e.do(t, "milano", "POST", "/v1/markets/"+ids(milano)+"/presences", other, "Idempotency-Key", "c1"), 422)
	if after := writtenRows(t, nw); after != before {
		t.Errorf("a check-in refused for its key wrote:\nbefore %s\nafter  %s", before, after)
	}
	wantStatus(t, "that check-in with its own key", e.do(t, "milano", "POST", "/v1/markets/"+ids(milano)+"/presences", other, "Idempotency-Key", "c2"), 201)
	checkRollup(t, nw)
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
// 3 and 4 free, 5 riservato. So S3 gets stall 2, S2 stall 3, S1 stall 4;
// S4 and Bianchi get none.
func TestSpunta(t *testing.T) {
	e := newEnv(t, "wspunta", false)
	nw := e.shardDSN(t, "nw")
	exec(t, nw, fmt.Sprintf(`
		INSERT INTO vendors (id, region_id, partita_iva, codice_fiscale, denominazione, comune)
		SELECT dms.next_id('vendors', 3::smallint), 3, lpad(n::text, 11, '0'), lpad(n::text, 11, '0'), 'S' || n, '015146'
		FROM generate_series(1, 4) n;
		INSERT INTO stalls (id, region_id, market_id, comune, number, type, status, area_mq) VALUES
		  (dms.next_id('stalls', 3::smallint), 3, %[1]d, '015146', 3, 'spunta', 'libero', 10),
		  (dms.next_id('stalls', 3::smallint), 3, %[1]d, '015146', 4, 'spunta', 'occupato', 10),
		  (dms.next_id('stalls', 3::smallint), 3, %[1]d, '015146', 5, 'spunta', 'riservato', 10);
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
	if got := scalar(t, nw, `SELECT count(*) FROM stalls WHERE id IN ($1, $2, $3) AND status = 'occupato'`, stallMI2, stall3, stall4); got != 3 {
		t.Errorf("assigned stalls occupato = %d, want 3", got)
	}
	if got := scalar(t, nw, `SELECT count(*) FROM audit_log WHERE action = 'spunta'`); got != 3+2+1 {
		t.Errorf("spunta audit rows = %d, want 3 presences, 2 stalls that were libero and 1 market", got)
	}
	if a := latestAudit(t, nw, "stall", stall3); a.Action != "spunta" || a.Before["status"] != "libero" || a.After["status"] != "occupato" {
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

// TestReadOnlyRegion freezes Lazio's database the way a maintenance freeze
// does (default_transaction_read_only for new connections): writes answer
// 503 with Retry-After, write nothing and leave the breaker closed, and
// reads go on.
func TestReadOnlyRegion(t *testing.T) {
	e := newEnv(t, "wfrozen", false)
	lazio := e.shardDSN(t, "lazio")
	cfg, err := pgx.ParseConfig(lazio)
	if err != nil {
		t.Fatal(err)
	}
	// The router writes to Lazio first, so its pool holds connections that
	// were opened before the freeze: the freeze must reach them too.
	wantStatus(t, "write to Lazio before the freeze", e.do(t, "lazio", "POST", "/v1/markets", `{"code":"RM008","name":"Mercato Esquilino","comune":"058091"}`), 201)
	if n := scalar(t, lazio, `SELECT count(*) FROM pg_stat_activity WHERE usename = 'dms_app' AND datname = current_database()`); n == 0 {
		t.Fatal("the router holds no connection to Lazio after writing there")
	}
	db := pgx.Identifier{cfg.Database}.Sanitize()
	exec(t, lazio, `ALTER DATABASE `+db+` SET default_transaction_read_only = on`)
	before := writtenRows(t, lazio)
	requests := []struct{ name, method, path, body string }{
		{"market", "POST", "/v1/markets", `{"code":"RM009","name":"Mercato Trionfale","comune":"058091"}`},
		{"patch", "PATCH", "/v1/markets/" + ids(roma), `{"name":"x"}`},
		{"stall", "POST", "/v1/markets/" + ids(roma) + "/stalls", `{"number":1,"type":"fisso","area_mq":9}`},
		{"vendor", "POST", "/v1/vendors", `{"partita_iva":"` + partitaIVA("0777777777") + `","codice_fiscale":"RSSMRA80A01H501U","denominazione":"x","comune":"058091"}`},
		{"batch", "POST", "/v1/presences/batch", fmt.Sprintf(`{"rows":[{"market_id":%d,"vendor_id":%d,"date":"2026-06-10","kind":"SPUNTA"}]}`, roma, regions.MakeID("12", 1))},
		{"check-in", "POST", "/v1/markets/" + ids(roma) + "/presences", fmt.Sprintf(`{"vendor_id":%d,"kind":"SPUNTA"}`, regions.MakeID("12", 1))},
		{"spunta", "POST", "/v1/markets/" + ids(roma) + "/spunta", ``},
	}
	for i := range 2 {
		for _, rq := range requests {
			r := e.do(t, "lazio", rq.method, rq.path, rq.body, "Idempotency-Key", fmt.Sprintf("frozen-%s-%d", rq.name, i))
			if r.status != 503 || r.header.Get("Retry-After") == "" {
				t.Errorf("%s %s in a frozen region = %d %s (Retry-After %q), want 503 with Retry-After",
					rq.method, rq.path, r.status, r.raw, r.header.Get("Retry-After"))
			}
		}
	}
	if sh, _ := e.m.For("12"); sh.State() != "closed" {
		t.Errorf("breaker after %d writes to a frozen region = %s, want closed", 2*len(requests), sh.State())
	}
	if r := e.get(t, "lazio", "/v1/markets/"+ids(roma)); r.status != 200 {
		t.Errorf("read in a frozen region = %d %s", r.status, r.raw)
	}
	if after := writtenRows(t, lazio); after != before {
		t.Errorf("writes to a frozen region changed it:\nbefore %s\nafter  %s", before, after)
	}
	// Other regions keep writing.
	wantStatus(t, "write to Lombardia", e.do(t, "lombardia", "POST", "/v1/markets", `{"code":"MI007","name":"x","comune":"015146"}`), 201)
	// Unfrozen, Lazio takes writes again on the same connections.
	exec(t, lazio, `SET transaction_read_only = off; ALTER DATABASE `+db+` RESET default_transaction_read_only`)
	wantStatus(t, "write to Lazio after the freeze", e.do(t, "lazio", "POST", "/v1/markets", `{"code":"RM009","name":"Mercato Trionfale","comune":"058091"}`), 201)
}
