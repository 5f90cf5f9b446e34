package router

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dmshub/dmsrouter/auth"
	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/regions"
)

// addPrincipal signs a token, known to e.do as name, for subject sub with
// role and territory: several names may share one subject.
func (e *env) addPrincipal(t *testing.T, name, sub, role, territory string) {
	t.Helper()
	tr, err := regions.ParseTerritory(territory)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := auth.SignHS256(pgtest.TestSecret, auth.Principal{Subject: sub, Role: role, Territory: tr}, time.Hour, fixedNow)
	if err != nil {
		t.Fatal(err)
	}
	e.tokens[name] = tok
}

// appTx begins a transaction on shard name as the router's login role
// (dms_app) with the scope settings set by hand; it is rolled back when t
// ends.
func (e *env) appTx(t *testing.T, name string, sc regions.Scope) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.Shard(t, e.m.Config(), name).Primary)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback(context.Background()) })
	market := ""
	if sc.Market != 0 {
		market = ids(sc.Market)
	}
	if _, err := tx.Exec(ctx, `SELECT set_config('dms.region', $1, true), set_config('dms.province', $2, true),
		set_config('dms.comune', $3, true), set_config('dms.market', $4, true), set_config('dms.user', $5, true)`,
		string(sc.Region), sc.Province, sc.Comune, market, sc.User); err != nil {
		t.Fatal(err)
	}
	return tx
}

// TestIdempotencyKeyBoundToPrincipal replays an Idempotency-Key only to
// the principal that stored it, for the same method, path and body: two
// tokens of one subject in different comuni (or roles) never share a key,
// so a key never answers with a row its caller could not read.
func TestIdempotencyKeyBoundToPrincipal(t *testing.T) {
	e := newEnv(t, "wkeyp", false)
	e.addPrincipal(t, "shared-milano", "shared", "admin_pa", "comune:015146")
	e.addPrincipal(t, "shared-inzago", "shared", "suap_operator", "comune:015114")
	e.addPrincipal(t, "shared-suap-milano", "shared", "suap_operator", "comune:015146")
	e.addPrincipal(t, "shared-lombardia", "shared", "admin_pa", "region:03")
	path, body := "/v1/markets/"+ids(milano), `{"name":"Mercato di Via Papiniano rinnovato"}`

	first := e.do(t, "shared-milano", "PATCH", path, body, "Idempotency-Key", "k")
	wantStatus(t, "first PATCH", first, 200)

	// The attack: another comune's office of the same subject, with the
	// first one's key, gets what it gets without the key.
	wantStatus(t, "PATCH by comune 015114 without the key", e.do(t, "shared-inzago", "PATCH", path, body), 404)
	r := e.do(t, "shared-inzago", "PATCH", path, body, "Idempotency-Key", "k")
	wantStatus(t, "PATCH by comune 015114 with the key", r, 404)
	if strings.Contains(r.raw, "Papiniano") || r.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("a replay crossed territories: %s %v", r.raw, r.header)
	}

	// The same subject and territory with another role, or with another
	// territory that may write the row: a request of its own, not a replay.
	for _, who := range []string{"shared-suap-milano", "shared-lombardia"} {
		r := e.do(t, who, "PATCH", path, body, "Idempotency-Key", "k")
		wantStatus(t, who+" PATCH with the key", r, 200)
		if r.header.Get("Idempotent-Replayed") != "" {
			t.Errorf("%s got the replay of another principal's key", who)
		}
	}

	// The principal that stored the key still gets its replay, and the key
	// with another method or path is refused.
	again := e.do(t, "shared-milano", "PATCH", path, body, "Idempotency-Key", "k")
	wantStatus(t, "replay", again, 200)
	if again.raw != first.raw || again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay = %s %v, want %s, replayed", again.raw, again.header, first.raw)
	}
	wantStatus(t, "same key, another path", e.do(t, "shared-milano", "PATCH", "/v1/stalls/"+ids(stallMI1),
		`{"status":"riservato"}`, "Idempotency-Key", "k"), 422)
	wantStatus(t, "same key, another body", e.do(t, "shared-milano", "PATCH", path, `{"name":"Altro"}`, "Idempotency-Key", "k"), 422)

	// A check-in's key, stored by the one-statement path, is bound the
	// same way.
	checkin := fmt.Sprintf(`{"vendor_id":%d,"kind":"SPUNTA","checkin_at":"2026-06-14T07:00:00+02:00"}`, vendorFB)
	cpath := "/v1/markets/" + ids(milano) + "/presences"
	wantStatus(t, "check-in", e.do(t, "shared-milano", "POST", cpath, checkin, "Idempotency-Key", "c"), 201)
	r = e.do(t, "shared-inzago", "POST", cpath, checkin, "Idempotency-Key", "c")
	wantStatus(t, "check-in by comune 015114 with the key", r, 404)
	r = e.do(t, "shared-milano", "POST", cpath, checkin, "Idempotency-Key", "c")
	if r.status != 201 || r.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("check-in replay = %d %s, want 201, replayed", r.status, r.raw)
	}

	// The database's wall: as dms_app, a key is visible only in the scope
	// it was stored in, even to the same subject.
	milanoScope := regions.Scope{Region: "03", Province: "015", Comune: "015146", User: "shared"}
	inzagoScope := regions.Scope{Region: "03", Province: "015", Comune: "015114", User: "shared"}
	for _, tt := range []struct {
		sc   regions.Scope
		want int64
	}{{milanoScope, 2}, {inzagoScope, 0}} {
		var n int64
		if err := e.appTx(t, "nw", tt.sc).QueryRow(context.Background(),
			`SELECT count(*) FROM idempotency_keys WHERE key IN ('k', 'c') AND role = 'admin_pa' AND territory = 'comune:015146'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != tt.want {
			t.Errorf("keys of comune:015146 visible in comune %s = %d, want %d", tt.sc.Comune, n, tt.want)
		}
	}
}

// TestVendorChangesByScope holds the vendor rule: every office of the
// region reads and may register vendors, a narrower office changes only
// the vendors registered in its territory (403 for the others, which it
// can read), and only a regional or national one suspends or reactivates
// a vendor; in the router and, as dms_app, in the database.
func TestVendorChangesByScope(t *testing.T) {
	e := newEnv(t, "wvend", false)
	nw := e.shardDSN(t, "nw")
	inzago := regions.MakeID("03", 3)
	exec(t, nw, `INSERT INTO vendors (id, region_id, partita_iva, codice_fiscale, denominazione, comune)
		VALUES (dms.next_id('vendors', 3::smallint), 3, '00000000103', '00000000103', 'Inzago Fiori', '015114')`)
	vendorRow := func(id int64) string {
		return fmt.Sprint(scalar(t, nw, `SELECT hashtext(v::text) FROM vendors v WHERE id = $1`, id))
	}
	tests := []struct {
		name, who string
		id        int64
		body      string
		status    int
	}{
		{"comune suspends a vendor of another comune", "milano", inzago, `{"status":"SOSPESA"}`, 403},
		{"comune renames a vendor of another comune", "milano", inzago, `{"denominazione":"x"}`, 403},
		{"comune suspends its own vendor", "milano", vendor03, `{"status":"SOSPESA"}`, 403},
		{"comune moves its vendor to another comune", "milano", vendor03, `{"comune":"015114"}`, 403},
		{"market renames a vendor of another comune", "market", inzago, `{"denominazione":"x"}`, 403},
		{"market moves its vendor to another comune", "market", vendor03, `{"comune":"015114"}`, 403},
		{"market suspends its comune's vendor", "market", vendor03, `{"status":"CESSATA"}`, 403},
		{"province renames a vendor of another province", "bergamo", vendor03, `{"denominazione":"x"}`, 403},
		{"another region", "lazio", vendor03, `{"denominazione":"x"}`, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := vendorRow(tt.id)
			r := e.do(t, tt.who, "PATCH", "/v1/vendors/"+ids(tt.id), tt.body)
			wantStatus(t, "PATCH "+tt.body+" as "+tt.who, r, tt.status)
			if after := vendorRow(tt.id); after != before {
				t.Errorf("a refused PATCH changed vendor %d", tt.id)
			}
		})
	}
	for _, tt := range []struct {
		name, who string
		id        int64
		body      string
	}{
		{"comune renames its vendor", "milano", vendor03, `{"denominazione":"Rossi Mario & C."}`},
		{"market renames its comune's vendor", "market", vendor03, `{"denominazione":"Rossi Mario e figli"}`},
		{"province renames its vendor", "bergamo", vendorFB, `{"denominazione":"Frutta Bianchi snc"}`},
		{"region suspends", "lombardia", inzago, `{"status":"SOSPESA"}`},
		{"region reactivates", "lombardia", inzago, `{"status":"ATTIVA"}`},
		{"national suspends", "national", vendor03, `{"status":"SOSPESA"}`},
	} {
		wantStatus(t, tt.name, e.do(t, tt.who, "PATCH", "/v1/vendors/"+ids(tt.id), tt.body), 200)
	}
	wantStatus(t, "comune registers a vendor of another comune", e.do(t, "milano", "POST", "/v1/vendors",
		`{"partita_iva":"`+partitaIVA("0555555555")+`","codice_fiscale":"RSSMRA80A01H501U","denominazione":"Nuovo","comune":"015114"}`), 201)

	// The database's wall, as dms_app with the settings set by hand.
	ctx := context.Background()
	milanoScope := regions.Scope{Region: "03", Province: "015", Comune: "015146", User: "x"}
	for _, tt := range []struct {
		name string
		sc   regions.Scope
		sql  string
		rows int64 // rows updated, or -1 for an insufficient_privilege error
	}{
		{"comune suspends its vendor", milanoScope, fmt.Sprintf(`UPDATE vendors SET status = 'ATTIVA' WHERE id = %d`, vendor03), -1},
		{"comune renames a vendor of another comune", milanoScope, fmt.Sprintf(`UPDATE vendors SET denominazione = 'x' WHERE id = %d`, inzago), 0},
		{"comune moves its vendor out", milanoScope, fmt.Sprintf(`UPDATE vendors SET comune = '015114' WHERE id = %d`, vendor03), -1},
		{"comune renames its vendor", milanoScope, fmt.Sprintf(`UPDATE vendors SET denominazione = 'x' WHERE id = %d`, vendor03), 1},
		{"market renames a vendor of another comune", regions.Scope{Region: "03", Market: milano, User: "x"},
			fmt.Sprintf(`UPDATE vendors SET denominazione = 'x' WHERE id = %d`, inzago), 0},
		{"market renames its comune's vendor", regions.Scope{Region: "03", Market: milano, User: "x"},
			fmt.Sprintf(`UPDATE vendors SET denominazione = 'x' WHERE id = %d`, vendor03), 1},
		{"province suspends", regions.Scope{Region: "03", Province: "015", User: "x"},
			fmt.Sprintf(`UPDATE vendors SET status = 'SOSPESA' WHERE id = %d`, inzago), -1},
		{"region suspends", regions.Scope{Region: "03", User: "x"},
			fmt.Sprintf(`UPDATE vendors SET status = 'SOSPESA' WHERE id = %d`, inzago), 1},
	} {
		t.Run("dms_app "+tt.name, func(t *testing.T) {
			tag, err := e.appTx(t, "nw", tt.sc).Exec(ctx, tt.sql)
			var pgErr *pgconn.PgError
			switch {
			case tt.rows < 0 && (!errors.As(err, &pgErr) || pgErr.Code != "42501"):
				t.Errorf("%s = %v, want insufficient_privilege", tt.sql, err)
			case tt.rows >= 0 && err != nil:
				t.Errorf("%s: %v", tt.sql, err)
			case tt.rows >= 0 && tag.RowsAffected() != tt.rows:
				t.Errorf("%s updated %d rows, want %d", tt.sql, tag.RowsAffected(), tt.rows)
			}
		})
	}
}
