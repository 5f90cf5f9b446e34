package router

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dmshub/dmsrouter/regions"
)

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
		{"field in another case", "lombardia", "POST", "/v1/markets", `{"Code":"MI009","name":"x","comune":"015146"}`, "Code"},
		{"field twice, once in another case", "lombardia", "POST", "/v1/markets", `{"code":"MI009","name":"x","comune":"015146","NAME":"y"}`, "NAME"},
		{"patch field in another case", "lombardia", "PATCH", "/v1/markets/" + ids(milano), `{"Name":"Mercato nuovo"}`, "Name"},
		{"wrong type", "lombardia", "POST", "/v1/markets", `{"code":"MI009","name":"x","comune":15146}`, "comune"},
		{"missing field", "lombardia", "POST", "/v1/markets", `{"code":"MI009","comune":"015146"}`, "name"},
		{"bad code", "lombardia", "POST", "/v1/markets", `{"code":"mi9","name":"x","comune":"015146"}`, "code"},
		{"unknown comune", "lombardia", "POST", "/v1/markets", `{"code":"MI009","name":"x","comune":"215146"}`, "comune"},
		{"comune not in the ISTAT list", "lombardia", "POST", "/v1/markets", `{"code":"MI009","name":"x","comune":"015999"}`, "comune"},
		{"vendor comune not in the ISTAT list", "lombardia", "POST", "/v1/vendors", `{"partita_iva":"` + piva + `","codice_fiscale":"RSSMRA80A01H501U","denominazione":"x","comune":"015999"}`, "comune"},
		{"patch vendor comune not in the ISTAT list", "lombardia", "PATCH", "/v1/vendors/" + ids(vendor03), `{"comune":"015999"}`, "comune"},
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
		{"stall wrong type", "lombardia", "POST", "/v1/markets/" + ids(milano) + "/stalls", `{"number":"7","type":"FISSO","area_mq":9}`, "number"},
		{"stall bad type", "lombardia", "POST", "/v1/markets/" + ids(milano) + "/stalls", `{"number":7,"type":"grande","area_mq":9}`, "type"},
		{"stall zero area", "lombardia", "POST", "/v1/markets/" + ids(milano) + "/stalls", `{"number":7,"type":"FISSO","area_mq":0}`, "area_mq"},
		{"patch null", "lombardia", "PATCH", "/v1/markets/" + ids(milano), `{"name":null}`, "name"},
		{"patch comune", "lombardia", "PATCH", "/v1/markets/" + ids(milano), `{"comune":"015139"}`, "comune"},
		{"patch nothing", "lombardia", "PATCH", "/v1/markets/" + ids(milano), `{}`, "body"},
		{"patch bad status", "lombardia", "PATCH", "/v1/vendors/" + ids(vendor03), `{"status":"attiva"}`, "status"},
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
		`{"number":8,"type":"FISSO","area_mq":9}`), 201)
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
		{"stall in another comune's market", "milano", "POST", "/v1/markets/" + ids(bergamo) + "/stalls", `{"number":9,"type":"FISSO","area_mq":9}`, 404},
		{"patch another comune's stall", "milano", "PATCH", "/v1/stalls/" + ids(stallBG1), `{"status":"RISERVATO"}`, 404},
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
		{"an idempotency key of region 05", "", `INSERT INTO idempotency_keys (region_id, user_sub, role, territory, key, fingerprint, created, response)
			VALUES (5, 'x', 'admin_pa', 'national', 'k', '\x00', true, '{}')`},
		{"a stall of another comune", "015146", fmt.Sprintf(`INSERT INTO stalls (id, region_id, market_id, comune, number, type, area_mq)
			VALUES (%d, 3, %d, '016024', 99, 'FISSO', 9)`, regions.MakeID("03", 99), bergamo)},
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
		`{"number":5,"type":"FISSO","area_mq":9}`, "Idempotency-Key", "k1"), 422)
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
		{"stall", "POST", "/v1/markets/" + ids(roma) + "/stalls", `{"number":1,"type":"FISSO","area_mq":9}`},
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
