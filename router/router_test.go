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

// fixedCalendarSQL makes the presence partitions that migration 00001 makes
// when run on fixedNow's day (the same in UTC and Rome): 13 months back to
// 3 ahead. A deployment migrated today has those around today, and without
// these the fixture's presences would find no partition once today is 13
// months past fixedNow.
func fixedCalendarSQL() string {
	return fmt.Sprintf(`SELECT dms.ensure_presence_partitions('%s', '%s')`,
		fixedNow.AddDate(0, -13, 0).Format(time.DateOnly), fixedNow.AddDate(0, 3, 0).Format(time.DateOnly))
}

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
  (dms.next_id('markets', 3::smallint), 3, 'MI001', 'Mercato di Via Papiniano', '015', '015146', 'Milano', '{2,6}', 'ACTIVE', 1.20),
  (dms.next_id('markets', 3::smallint), 3, 'BG001', 'Mercato della Fiera', '016', '016024', 'Bergamo', '{1}', 'ACTIVE', 0.90),
  (dms.next_id('markets', 1::smallint), 1, 'TO001', 'Mercato di Porta Palazzo', '001', '001272', 'Torino', '{1,2,3,4,5,6}', 'ACTIVE', 1.50);
INSERT INTO stalls (id, region_id, market_id, comune, number, type, status, area_mq) VALUES
  (dms.next_id('stalls', 3::smallint), 3, %[1]d, '015146', 1, 'FISSO', 'OCCUPATO', 12),
  (dms.next_id('stalls', 3::smallint), 3, %[1]d, '015146', 2, 'SPUNTA', 'LIBERO', 10),
  (dms.next_id('stalls', 3::smallint), 3, %[2]d, '016024', 1, 'FISSO', 'LIBERO', 9);
INSERT INTO vendors (id, region_id, partita_iva, codice_fiscale, denominazione, comune) VALUES
  (dms.next_id('vendors', 3::smallint), 3, '01234567897', 'RSSMRA80A01F205X', 'Rossi Mario', '015146'),
  (dms.next_id('vendors', 3::smallint), 3, '12345678903', '12345678903', 'Frutta Bianchi srl', '016024');
-- As migration 00014 authorises a vendor that has been a spuntista: type B
-- in both sectors, by its own comune.
INSERT INTO authorisations (id, region_id, vendor_id, type, sector, comune)
SELECT dms.next_id('authorisations', 3::smallint), 3, %[6]d, 'B', s, '016024' FROM unnest(ARRAY['ALIMENTARE', 'NON_ALIMENTARE']) s;
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
	tel      *Telemetry // its metrics are served apart from the API
	tokens   map[string]string
	senders  *senders // the tests that sent the requests, which the contract's check fails
}

// newEnv deploys the layout (shard "lazio" on a cluster of its own when
// withOwned, so tests can stop it), loads the fixture and starts a router.
func newEnv(t testing.TB, name string, withOwned bool) *env {
	t.Helper()
	return startEnv(t, name, withOwned, nil)
}

// startEnv is newEnv whose national fan-out calls onLeg, when not nil, as
// each leg starts.
func startEnv(t testing.TB, name string, withOwned bool, onLeg func(regions.Code)) *env {
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
	loadFixture(t, cfg)
	e.spans = tracetest.NewSpanRecorder()
	tel, err := NewTelemetry(TraceConfig{SampleRatio: 1}, e.spans)
	if err != nil {
		t.Fatal(err)
	}
	e.tel = tel
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
	// Every request a test sends, and its answer, is checked against the
	// contract (openapi_test.go).
	e.senders = &senders{fallback: t}
	e.srv = httptest.NewServer(loadContract(t).validated(e.senders.of, s))
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
	return e.do(t, who, http.MethodGet, path, "")
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

// Ids of the fixture not named in router_test.go.
var (
	stallMI2   = regions.MakeID("03", 2) // Milano stall 2, SPUNTA, LIBERO
	vendorFB   = regions.MakeID("03", 2) // Frutta Bianchi srl, a spuntista at Milano
	concBG     = regions.MakeID("03", 2) // vendor03's concession on Bergamo stall 1, to 2026-07-31
	presenceMI = regions.MakeID("03", 1) // vendor03's presence at Milano on 2026-06-15
)

func ids(n int64) string { return strconv.FormatInt(n, 10) }

// do sends a request as who (a key of e.tokens) with an optional JSON body
// and header pairs; POST and PATCH carry the JSON Content-Type, and a
// header pair with an empty value removes the header.
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
	if body != "" || method == http.MethodPost || method == http.MethodPatch {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			req.Header.Del(header[i])
		} else {
			req.Header.Set(header[i], header[i+1])
		}
	}
	defer e.senders.add(t, req)()
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
	e.addPrincipal(t, who, who, role, territory)
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

// TestRegistryWrites runs the write tests of markets, stalls, vendors and
// concessions one after another on one deployment, which takes seconds to
// set up.
func TestRegistryWrites(t *testing.T) {
	e := newEnv(t, "wreg", false)
	for _, tt := range []struct {
		name string
		test func(*testing.T, *env)
	}{
		{"markets", testMarketWrites},
		{"stalls", testStallWrites},
		{"vendors", testVendorWrites},
		{"concessions", testConcessionWrites},
		{"deprecated spellings", testDeprecatedSpellings},
		{"subingresso and decadenza", testLifecycleWrites},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.test(t, e) })
	}
}
