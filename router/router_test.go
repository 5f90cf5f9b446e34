package router

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/dmshub/dmsrouter/auth"
	"github.com/dmshub/dmsrouter/national"
	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &pg)) }

// fixedNow is the clock of every test server: 2026-06-15 10:00 in Rome.
var fixedNow = time.Date(2026, 6, 15, 8, 0, 0, 0, time.UTC)

// fixture ids, as dms.next_id hands them out on fresh databases.
var (
	milano   = regions.MakeID("03", 1) // market in comune 015146 (province 015)
	bergamo  = regions.MakeID("03", 2) // market in comune 016024 (province 016)
	torino   = regions.MakeID("01", 1)
	roma     = regions.MakeID("12", 1)
	stallMI1 = regions.MakeID("03", 1)
	stallBG1 = regions.MakeID("03", 3)
	vendor03 = regions.MakeID("03", 1)
	concMI   = regions.MakeID("03", 1)
)

// layout puts Lombardia and Piemonte on shard "nw", Lazio on "lazio" and
// the rest on "rest".
func layout() pgtest.Layout {
	l := pgtest.Layout{}
	for _, r := range regions.All() {
		l[r.Code] = "rest"
	}
	l["01"], l["03"], l["12"] = "nw", "nw", "lazio"
	return l
}

const fixtureSQL = `
INSERT INTO markets (id, region_id, code, name, province, comune, comune_name, days, status, cost_per_sqm) VALUES
  (dms.next_id('markets', 3::smallint), 3, 'MI001', 'Mercato di Via Papiniano', '015', '015146', 'Milano', '{2,6}', 'active', 1.20),
  (dms.next_id('markets', 3::smallint), 3, 'BG001', 'Mercato della Fiera', '016', '016024', 'Bergamo', '{1}', 'active', 0.90),
  (dms.next_id('markets', 1::smallint), 1, 'TO001', 'Mercato di Porta Palazzo', '001', '001272', 'Torino', '{1,2,3,4,5,6}', 'active', 1.50);
INSERT INTO stalls (id, region_id, market_id, comune, number, type, status, area_mq) VALUES
  (dms.next_id('stalls', 3::smallint), 3, %[1]d, '015146', 1, 'fisso', 'occupato', 12),
  (dms.next_id('stalls', 3::smallint), 3, %[1]d, '015146', 2, 'spunta', 'libero', 10),
  (dms.next_id('stalls', 3::smallint), 3, %[2]d, '016024', 1, 'fisso', 'libero', 9);
INSERT INTO vendors (id, region_id, partita_iva, codice_fiscale, denominazione, comune) VALUES
  (dms.next_id('vendors', 3::smallint), 3, '01234567897', 'RSSMRA80A01F205X', 'Rossi Mario', '015146'),
  (dms.next_id('vendors', 3::smallint), 3, '12345678903', '12345678903', 'Frutta Bianchi srl', '016024');
INSERT INTO concessions (id, region_id, market_id, comune, stall_id, vendor_id, valid_from, valid_to, status) VALUES
  (dms.next_id('concessions', 3::smallint), 3, %[1]d, '015146', %[3]d, %[4]d, '2020-01-01', '2029-12-31', 'ATTIVA'),
  (dms.next_id('concessions', 3::smallint), 3, %[2]d, '016024', %[5]d, %[4]d, '2016-07-01', '2026-07-31', 'ATTIVA');
INSERT INTO vendor_presences (id, region_id, market_id, comune, vendor_id, stall_id, date, kind, checkin_at) VALUES
  (dms.next_id('vendor_presences', 3::smallint), 3, %[1]d, '015146', %[4]d, %[3]d, '2026-06-15', 'CONCESSION', '2026-06-15 07:10+02'),
  (dms.next_id('vendor_presences', 3::smallint), 3, %[1]d, '015146', %[6]d, NULL, '2026-06-15', 'SPUNTA', '2026-06-15 07:40+02'),
  (dms.next_id('vendor_presences', 3::smallint), 3, %[1]d, '015146', %[4]d, %[3]d, '2026-06-13', 'CONCESSION', '2026-06-13 07:05+02');
`

const lazioSQL = `INSERT INTO markets (id, region_id, code, name, province, comune, comune_name) VALUES
  (dms.next_id('markets', 12::smallint), 12, 'RM001', 'Mercato di Campo de'' Fiori', '058', '058091', 'Roma')`

type env struct {
	srv      *httptest.Server
	m        *shardmap.Holder
	national *national.Fanout
	owned    *pgtest.Server // the server of shard "lazio"
	spans    *tracetest.SpanRecorder
	tokens   map[string]string
}

// newEnv deploys the layout (shard "lazio" on a cluster of its own when
// withOwned, so tests can stop it), loads the fixture and starts a router.
func newEnv(t *testing.T, name string, withOwned bool) *env {
	t.Helper()
	return startEnv(t, name, withOwned, nil)
}

// startEnv is newEnv whose national fan-out calls onLeg, when not nil, as
// each leg starts.
func startEnv(t *testing.T, name string, withOwned bool, onLeg func(regions.Code)) *env {
	t.Helper()
	ctx := context.Background()
	cfg, err := pg.Deployment(ctx, pgtest.Prefix(name), layout())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.DropDeployment(context.Background(), cfg) })
	e := &env{}
	if withOwned {
		e.owned = pgtest.StartOwned(t)
		ocfg, err := e.owned.Deployment(ctx, pgtest.Prefix(name), layout())
		if err != nil {
			t.Fatal(err)
		}
		for i, sh := range cfg.Shards {
			if sh.Name == "lazio" {
				for _, o := range ocfg.Shards {
					if o.Name == "lazio" {
						cfg.Shards[i] = o
					}
				}
			}
		}
	}
	for _, sh := range cfg.Shards {
		switch sh.Name {
		case "nw":
			exec(t, sh.AdminDSN(), fmt.Sprintf(fixtureSQL, milano, bergamo, stallMI1, vendor03, stallBG1, vendor03+1))
		case "lazio":
			exec(t, sh.AdminDSN(), lazioSQL)
		}
	}
	e.spans = tracetest.NewSpanRecorder()
	tel, err := NewTelemetry(e.spans)
	if err != nil {
		t.Fatal(err)
	}
	e.m, err = shardmap.NewHolder(cfg, shardmap.Options{TracerProvider: tel.TracerProvider, MeterProvider: tel.MeterProvider})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.m.Close)
	v, err := auth.NewVerifier(auth.Config{HS256Secret: pgtest.TestSecret})
	if err != nil {
		t.Fatal(err)
	}
	e.national, err = national.New(national.Config{}, national.Options{TracerProvider: tel.TracerProvider, MeterProvider: tel.MeterProvider, OnLeg: onLeg})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(e.m, v, e.national, Options{Telemetry: tel, Now: func() time.Time { return fixedNow }})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(s)
	t.Cleanup(e.srv.Close)
	e.tokens = map[string]string{}
	for who, terr := range map[string]string{
		"national":  "national",
		"lombardia": "region:03",
		"lazio":     "region:12",
		"bergamo":   "province:016",
		"cm-milano": "province:215",
		"milano":    "comune:015146",
		"market":    "market:" + strconv.FormatInt(milano, 10),
	} {
		tr, err := regions.ParseTerritory(terr)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := auth.SignHS256(pgtest.TestSecret, auth.Principal{Subject: who, Role: "admin_pa", Territory: tr}, time.Hour, fixedNow)
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[who] = tok
	}
	return e
}

func exec(tb testing.TB, dsn, sql string) {
	tb.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), sql); err != nil {
		tb.Fatalf("fixture: %v", err)
	}
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (e *env) get(t *testing.T, who, path string) response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	if who != "" {
		req.Header.Set("Authorization", "Bearer "+e.tokens[who])
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

// names returns the "name" (or "code", "id") of each item of a list.
func (r response) field(key string) string {
	items, _ := r.body["items"].([]any)
	var out []string
	for _, it := range items {
		out = append(out, fmt.Sprint(it.(map[string]any)[key]))
	}
	return strings.Join(out, ",")
}

func TestReadAPI(t *testing.T) {
	e := newEnv(t, "read", false)
	id := func(n int64) string { return strconv.FormatInt(n, 10) }
	tests := []struct {
		name, who, path string
		status          int
		check           func(t *testing.T, r response)
	}{
		{"regions", "milano", "/v1/regions", 200, func(t *testing.T, r response) {
			if r.body["total"] != 20.0 || !strings.Contains(r.raw, `{"code":"03","name":"Lombardia","shard":"nw","breaker":"closed"}`) {
				t.Errorf("regions = %s", r.raw)
			}
		}},
		{"markets of a region", "lombardia", "/v1/markets", 200, func(t *testing.T, r response) {
			if got := r.field("code"); got != "BG001,MI001" || r.body["total"] != 2.0 || r.body["total_estimated"] != false {
				t.Errorf("codes = %s, body %s", got, r.raw)
			}
		}},
		{"market fields", "lombardia", "/v1/markets/" + id(milano), 200, func(t *testing.T, r response) {
			want := map[string]any{"id": float64(milano), "region": "03", "code": "MI001", "name": "Mercato di Via Papiniano",
				"province": "015", "comune": "015146", "status": "active"}
			for k, v := range want {
				if r.body[k] != v {
					t.Errorf("market[%s] = %v, want %v", k, r.body[k], v)
				}
			}
		}},
		{"markets by name", "lombardia", "/v1/markets?q=papin", 200, func(t *testing.T, r response) {
			if got := r.field("code"); got != "MI001" {
				t.Errorf("q=papin codes = %s", got)
			}
		}},
		{"markets by province", "lombardia", "/v1/markets?province=016", 200, func(t *testing.T, r response) {
			if got := r.field("code"); got != "BG001" {
				t.Errorf("province=016 codes = %s", got)
			}
		}},
		{"markets by status", "lombardia", "/v1/markets?status=inactive", 200, func(t *testing.T, r response) {
			if r.body["total"] != 0.0 {
				t.Errorf("status=inactive = %s", r.raw)
			}
		}},
		{"national names a region", "national", "/v1/markets?region=01", 200, func(t *testing.T, r response) {
			if got := r.field("code"); got != "TO001" {
				t.Errorf("national region=01 codes = %s", got)
			}
		}},
		{"national region from comune", "national", "/v1/markets?comune=016024", 200, func(t *testing.T, r response) {
			if got := r.field("code"); got != "BG001" {
				t.Errorf("national comune=016024 codes = %s", got)
			}
		}},
		{"national without region merges every region", "national", "/v1/markets", 200, func(t *testing.T, r response) {
			if got := r.field("code"); got != "BG001,RM001,TO001,MI001" || r.body["partial"] != false {
				t.Errorf("national markets = %s", r.raw)
			}
		}},
		{"stalls of a market", "milano", "/v1/markets/" + id(milano) + "/stalls", 200, func(t *testing.T, r response) {
			if got := r.field("number"); got != "1,2" {
				t.Errorf("stall numbers = %s", got)
			}
		}},
		{"stalls filtered", "milano", "/v1/markets/" + id(milano) + "/stalls?status=libero&type=spunta", 200, func(t *testing.T, r response) {
			if got := r.field("number"); got != "2" {
				t.Errorf("stall numbers = %s", got)
			}
		}},
		{"stall", "milano", "/v1/stalls/" + id(stallMI1), 200, func(t *testing.T, r response) {
			if r.body["market_id"] != float64(milano) || r.body["number"] != 1.0 || r.body["type"] != "fisso" || r.body["status"] != "occupato" || r.body["region"] != "03" {
				t.Errorf("stall = %s", r.raw)
			}
		}},
		{"vendors", "milano", "/v1/vendors", 200, func(t *testing.T, r response) {
			if got := r.field("denominazione"); got != "Frutta Bianchi srl,Rossi Mario" {
				t.Errorf("vendors = %s", got)
			}
		}},
		{"vendor by partita iva", "lombardia", "/v1/vendors?partita_iva=01234567897", 200, func(t *testing.T, r response) {
			if got := r.field("codice_fiscale"); got != "RSSMRA80A01F205X" {
				t.Errorf("vendors = %s", r.raw)
			}
		}},
		{"vendor by codice fiscale", "lombardia", "/v1/vendors?codice_fiscale=12345678903", 200, func(t *testing.T, r response) {
			if got := r.field("denominazione"); got != "Frutta Bianchi srl" {
				t.Errorf("vendors = %s", r.raw)
			}
		}},
		{"vendor", "lombardia", "/v1/vendors/" + id(vendor03), 200, func(t *testing.T, r response) {
			if r.body["partita_iva"] != "01234567897" || r.body["region"] != "03" {
				t.Errorf("vendor = %s", r.raw)
			}
		}},
		{"concessions of a vendor", "lombardia", "/v1/concessions?vendor_id=" + id(vendor03), 200, func(t *testing.T, r response) {
			if r.body["total"] != 2.0 {
				t.Errorf("concessions = %s", r.raw)
			}
		}},
		{"concessions expiring", "lombardia", "/v1/concessions?expiring_before=2027-01-01&status=ATTIVA", 200, func(t *testing.T, r response) {
			if got := r.field("valid_to"); got != "2026-07-31" {
				t.Errorf("expiring = %s", r.raw)
			}
		}},
		{"concession", "milano", "/v1/concessions/" + id(concMI), 200, func(t *testing.T, r response) {
			want := map[string]any{"market_id": float64(milano), "stall_id": float64(stallMI1), "vendor_id": float64(vendor03),
				"valid_from": "2020-01-01", "valid_to": "2029-12-31", "status": "ATTIVA", "region": "03"}
			for k, v := range want {
				if r.body[k] != v {
					t.Errorf("concession[%s] = %v, want %v", k, r.body[k], v)
				}
			}
		}},
		{"presences today in Rome", "milano", "/v1/markets/" + id(milano) + "/presences", 200, func(t *testing.T, r response) {
			if got := r.field("kind"); got != "CONCESSION,SPUNTA" || !strings.Contains(r.raw, `"date":"2026-06-15"`) || !strings.Contains(r.raw, `"stall_id":null`) {
				t.Errorf("presences = %s", r.raw)
			}
		}},
		{"presences on a date", "milano", "/v1/markets/" + id(milano) + "/presences?date=2026-06-13", 200, func(t *testing.T, r response) {
			if r.body["total"] != 1.0 {
				t.Errorf("presences = %s", r.raw)
			}
		}},
		{"healthz", "", "/healthz", 200, nil},
		{"readyz", "", "/readyz", 200, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.get(t, tt.who, tt.path)
			if r.status != tt.status {
				t.Fatalf("GET %s as %s = %d %s, want %d", tt.path, tt.who, r.status, r.raw, tt.status)
			}
			if tt.check != nil {
				tt.check(t, r)
			}
		})
	}
}

func TestTerritoryIsolation(t *testing.T) {
	e := newEnv(t, "iso", false)
	id := func(n int64) string { return strconv.FormatInt(n, 10) }
	tests := []struct {
		who, path string
		status    int
		codes     string // for lists: the codes seen
	}{
		{"milano", "/v1/markets", 200, "MI001"},
		{"market", "/v1/markets", 200, "MI001"},
		{"bergamo", "/v1/markets", 200, "BG001"},
		{"cm-milano", "/v1/markets", 200, "MI001"},
		{"lombardia", "/v1/markets", 200, "BG001,MI001"},
		{"lazio", "/v1/markets", 200, "RM001"},
		{"milano", "/v1/markets/" + id(bergamo), 404, ""},
		{"bergamo", "/v1/markets/" + id(milano), 404, ""},
		{"lazio", "/v1/markets/" + id(milano), 404, ""},
		{"market", "/v1/markets/" + id(bergamo), 404, ""},
		{"milano", "/v1/stalls/" + id(stallBG1), 404, ""},
		{"milano", "/v1/markets/" + id(bergamo) + "/stalls", 404, ""},
		{"milano", "/v1/markets/" + id(bergamo) + "/presences", 404, ""},
		{"lazio", "/v1/vendors/" + id(vendor03), 404, ""},
		{"milano", "/v1/concessions/" + id(concMI+1), 404, ""},
		{"lombardia", "/v1/markets?region=12", 403, ""},
		{"milano", "/v1/markets?comune=016024", 403, ""},
		{"bergamo", "/v1/markets?province=015", 403, ""},
		{"milano", "/v1/markets?region=03", 200, "MI001"},
		{"lazio", "/v1/vendors?region=03", 403, ""},
		{"lazio", "/v1/concessions?market_id=" + id(milano), 403, ""},
		{"national", "/v1/markets?region=12", 200, "RM001"},
		{"national", "/v1/markets/" + id(bergamo), 200, ""},
		{"national", "/v1/markets/" + id(torino), 200, ""},
		{"national", "/v1/markets/" + id(roma), 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.who+" "+tt.path, func(t *testing.T) {
			r := e.get(t, tt.who, tt.path)
			if r.status != tt.status {
				t.Fatalf("GET %s as %s = %d %s, want %d", tt.path, tt.who, r.status, r.raw, tt.status)
			}
			if tt.codes != "" {
				if got := r.field("code"); got != tt.codes {
					t.Errorf("GET %s as %s codes = %s, want %s", tt.path, tt.who, got, tt.codes)
				}
			}
			if r.status == 404 && strings.Contains(r.raw, "Mercato") {
				t.Errorf("a 404 reveals the row: %s", r.raw)
			}
		})
	}
	// The comune office's concession list holds only Milano's concession.
	r := e.get(t, "milano", "/v1/concessions")
	if got := r.field("market_id"); got != fmt.Sprint(float64(milano)) {
		t.Errorf("milano concessions market ids = %s", got)
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t, "bad", false)
	mid := strconv.FormatInt(milano, 10)
	tests := []struct{ name, who, path, field string }{
		{"non-numeric id", "lombardia", "/v1/markets/abc", "id"},
		{"negative id", "lombardia", "/v1/markets/-5", "id"},
		{"limit 0", "lombardia", "/v1/markets?limit=0", "limit"},
		{"limit 101", "lombardia", "/v1/markets?limit=101", "limit"},
		{"limit word", "lombardia", "/v1/markets?limit=ten", "limit"},
		{"negative offset", "lombardia", "/v1/markets?offset=-1", "offset"},
		{"bad date", "milano", "/v1/markets/" + mid + "/presences?date=2026-02-30", "date"},
		{"bad date format", "milano", "/v1/markets/" + mid + "/presences?date=15/06/2026", "date"},
		{"bad expiring_before", "lombardia", "/v1/concessions?expiring_before=tomorrow", "expiring_before"},
		{"unknown region", "national", "/v1/markets?region=21", "region"},
		{"region not two digits", "national", "/v1/markets?region=3", "region"},
		{"unknown province", "national", "/v1/markets?province=999", "province"},
		{"unknown comune", "national", "/v1/markets?comune=215146", "comune"},
		{"comune not in the ISTAT list", "national", "/v1/markets?comune=015999", "comune"},
		{"unknown parameter", "lombardia", "/v1/markets?colour=red", "colour"},
		{"repeated parameter", "lombardia", "/v1/markets?status=active&status=inactive", "status"},
		{"bad status", "lombardia", "/v1/markets?status=open", "status"},
		{"bad stall type", "milano", "/v1/markets/" + mid + "/stalls?type=big", "type"},
		{"bad concession status", "lombardia", "/v1/concessions?status=attiva", "status"},
		{"bad market_id", "lombardia", "/v1/concessions?market_id=x", "market_id"},
		{"bad partita iva", "lombardia", "/v1/vendors?partita_iva=123", "partita_iva"},
		{"bad cursor", "lombardia", "/v1/markets?cursor=notacursor", "cursor"},
		{"cursor with offset", "lombardia", "/v1/markets?cursor=x&offset=2", "cursor"},
		{"conflicting regions", "national", "/v1/markets?region=03&comune=001272", "region"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.get(t, tt.who, tt.path)
			if r.status != 400 {
				t.Fatalf("GET %s = %d %s, want 400", tt.path, r.status, r.raw)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type = %q, want application/problem+json", ct)
			}
			if r.body["status"] != 400.0 || r.body["title"] == "" || r.body["type"] == "" {
				t.Errorf("problem = %s", r.raw)
			}
			if !strings.Contains(r.raw, `"field":"`+tt.field+`"`) {
				t.Errorf("problem %s does not name field %q", r.raw, tt.field)
			}
		})
	}

	// Ids that are numbers but no region's ids do not exist.
	if r := e.get(t, "lombardia", "/v1/markets/5"); r.status != 404 {
		t.Errorf("GET /v1/markets/5 = %d, want 404", r.status)
	}
	if r := e.get(t, "lombardia", "/v1/nothing"); r.status != 404 || r.header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("unknown route = %d %q", r.status, r.header.Get("Content-Type"))
	}
	req, _ := http.NewRequest(http.MethodDelete, e.srv.URL+"/v1/markets", nil)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 405 {
		t.Errorf("DELETE /v1/markets = %v %v, want 405", res.StatusCode, err)
	}
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t, "auth", false)
	expired, _ := auth.SignHS256(pgtest.TestSecret, auth.Principal{Subject: "u", Role: "admin_pa", Territory: regions.Territory{Level: regions.National}}, time.Minute, fixedNow.Add(-time.Hour))
	wrong, _ := auth.SignHS256("another-secret-0123456789", auth.Principal{Subject: "u", Role: "admin_pa", Territory: regions.Territory{Level: regions.National}}, time.Hour, fixedNow)
	for name, header := range map[string]string{
		"missing":      "",
		"malformed":    "Bearer abc.def",
		"expired":      "Bearer " + expired,
		"wrong secret": "Bearer " + wrong,
		"alg none":     "Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1Iiwicm9sZSI6ImFkbWluX3BhIiwidGVycml0b3J5IjoibmF0aW9uYWwiLCJleHAiOjQxMDI0NDQ4MDB9.",
		"wrong scheme": "Basic dTpw",
	} {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/v1/regions", nil)
			if header != "" {
				req.Header.Set("Authorization", header)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != 401 || res.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("GET /v1/regions with %s token = %d, want 401 with WWW-Authenticate", name, res.StatusCode)
			}
		})
	}
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/v1/markets", nil)
	req.AddCookie(&http.Cookie{Name: "dms_token", Value: e.tokens["milano"]})
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Errorf("GET with cookie = %v %v, want 200", res.StatusCode, err)
	}
}

func TestPagination(t *testing.T) {
	e := newEnv(t, "page", false)
	r := e.get(t, "lombardia", "/v1/markets?limit=1")
	if r.status != 200 || r.body["limit"] != 1.0 || r.body["offset"] != 0.0 || r.body["total"] != 2.0 || r.field("code") != "BG001" {
		t.Fatalf("page 1 = %s", r.raw)
	}
	cur, _ := r.body["next_cursor"].(string)
	if cur == "" {
		t.Fatalf("page 1 has no next_cursor: %s", r.raw)
	}
	r = e.get(t, "lombardia", "/v1/markets?limit=1&cursor="+cur)
	if r.field("code") != "MI001" || r.body["next_cursor"] != nil || r.body["total"] != 2.0 {
		t.Errorf("page 2 by cursor = %s", r.raw)
	}
	r = e.get(t, "lombardia", "/v1/markets?limit=1&offset=1")
	if r.field("code") != "MI001" || r.body["offset"] != 1.0 || r.body["total"] != 2.0 {
		t.Errorf("page 2 by offset = %s", r.raw)
	}
	r = e.get(t, "lombardia", "/v1/markets?offset=50")
	if r.status != 200 || r.field("code") != "" || r.body["total"] != 2.0 {
		t.Errorf("page past the end = %s", r.raw)
	}
	// A cursor of another list is refused.
	v := e.get(t, "lombardia", "/v1/vendors?limit=1")
	vc, _ := v.body["next_cursor"].(string)
	if r := e.get(t, "lombardia", "/v1/markets?cursor="+vc); r.status != 400 {
		t.Errorf("markets with a vendors cursor = %d, want 400", r.status)
	}
}

func TestStoppedShard(t *testing.T) {
	e := newEnv(t, "stop", true)
	if r := e.get(t, "national", "/v1/markets?region=12"); r.status != 200 {
		t.Fatalf("before stop: %d %s", r.status, r.raw)
	}
	if err := e.owned.Halt(); err != nil {
		t.Fatal(err)
	}
	// Every request for Lazio fails fast with 503 and Retry-After; the
	// breaker opens after 3 failures; other regions keep answering.
	for i := range 5 {
		r := e.get(t, "national", "/v1/markets?region=12")
		if r.status != 503 || r.header.Get("Retry-After") == "" || r.header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("request %d for a stopped shard = %d %v %s, want 503 with Retry-After", i, r.status, r.header, r.raw)
		}
		if r := e.get(t, "national", "/v1/markets?region=03"); r.status != 200 {
			t.Fatalf("another region while Lazio is down = %d %s", r.status, r.raw)
		}
	}
	lazio, _ := e.m.For("12")
	if got := lazio.State(); got != "open" {
		t.Errorf("breaker after failures = %s, want open", got)
	}
	if nw, _ := e.m.For("03"); nw.State() != "closed" {
		t.Errorf("healthy shard's breaker = %s, want closed", nw.State())
	}
	if r := e.get(t, "", "/readyz"); r.status != 200 || !strings.Contains(r.raw, `"lazio":"unavailable"`) {
		t.Errorf("readyz with one shard down = %d %s", r.status, r.raw)
	}
	if err := e.owned.Resume(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The open breaker still refuses until its timeout lets a probe through,
	// and the successful probe closes it.
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := e.get(t, "national", "/v1/markets?region=12")
		if r.status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Lazio did not recover: %d %s", r.status, r.raw)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := lazio.State(); got != "closed" {
		t.Errorf("breaker after recovery = %s, want closed", got)
	}
}

func TestClientErrorsNeverOpenTheBreaker(t *testing.T) {
	e := newEnv(t, "client", false)
	for range 10 {
		e.get(t, "lombardia", "/v1/markets/"+strconv.FormatInt(regions.MakeID("03", 999), 10))
		e.get(t, "milano", "/v1/markets/"+strconv.FormatInt(bergamo, 10))
		e.get(t, "lombardia", "/v1/markets?limit=0")
	}
	sh, _ := e.m.For("03")
	if got := sh.State(); got != "closed" {
		t.Errorf("breaker after 30 client errors = %s, want closed", got)
	}
}

func TestTelemetry(t *testing.T) {
	e := newEnv(t, "tel", false)
	e.get(t, "lombardia", "/v1/markets")
	r := e.get(t, "", "/metrics")
	for _, want := range []string{
		`http_server_request_duration_seconds_bucket{`,
		`http_route="/v1/markets"`,
		`region="03"`,
		`dms_shard_query_duration_seconds_bucket{`,
		`dms_shard_breaker_state{`,
		`dms_shard_pool_connections{`,
	} {
		if !strings.Contains(r.raw, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	var server, shard sdktrace.ReadOnlySpan
	for _, s := range e.spans.Ended() {
		switch s.Name() {
		case "GET /v1/markets":
			server = s
		case "shard.read":
			shard = s
		}
	}
	if server == nil || shard == nil {
		t.Fatalf("spans: server %v, shard %v; want both", server, shard)
	}
	if shard.Parent().SpanID() != server.SpanContext().SpanID() {
		t.Errorf("shard span's parent = %s, want the request span %s", shard.Parent().SpanID(), server.SpanContext().SpanID())
	}
}
