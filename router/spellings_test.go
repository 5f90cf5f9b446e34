package router

import (
	"fmt"
	"testing"
)

// testDeprecatedSpellings sends the spellings issue 15 deprecated (the
// lower-case market statuses and stall types and statuses, the vendor key
// stato) in query parameters and bodies, and wants them taken and answered
// in the current spelling; other spellings stay bad.
func testDeprecatedSpellings(t *testing.T, e *env) {
	piva := partitaIVA("0765432102")
	tests := []struct {
		name, method, path, body string
		status                   int
		key, want                string // in the answer, or in its first item; for a 400 the field named
	}{
		{"new market inactive", "POST", "/v1/markets", `{"code":"MI077","name":"Mercato Vecchio","comune":"015146","status":"inactive"}`, 201, "status", "INACTIVE"},
		{"market patched inactive", "PATCH", "/v1/markets/" + ids(bergamo), `{"status":"inactive"}`, 200, "status", "INACTIVE"},
		{"markets filtered inactive", "GET", "/v1/markets?region=03&status=inactive", ``, 200, "status", "INACTIVE"},
		{"market patched active", "PATCH", "/v1/markets/" + ids(bergamo), `{"status":"active"}`, 200, "status", "ACTIVE"},
		{"new stall fisso", "POST", "/v1/markets/" + ids(bergamo) + "/stalls", `{"number":7,"type":"fisso","area_mq":9}`, 201, "type", "FISSO"},
		{"new stall riservato", "POST", "/v1/markets/" + ids(bergamo) + "/stalls", `{"number":8,"type":"straordinario","status":"riservato","area_mq":9}`, 201, "status", "RISERVATO"},
		{"stall patched spunta", "PATCH", "/v1/stalls/" + ids(stallBG1), `{"type":"spunta"}`, 200, "type", "SPUNTA"},
		{"stall patched occupato", "PATCH", "/v1/stalls/" + ids(stallBG1), `{"status":"occupato"}`, 200, "status", "OCCUPATO"},
		{"stalls filtered", "GET", "/v1/markets/" + ids(bergamo) + "/stalls?status=riservato&type=straordinario", ``, 200, "number", "8"},
		{"new vendor with stato", "POST", "/v1/vendors", fmt.Sprintf(`{"partita_iva":%q,"codice_fiscale":%[1]q,"denominazione":"Verdi snc","comune":"015146","stato":"SOSPESA"}`, piva), 201, "status", "SOSPESA"},
		{"vendor patched with stato", "PATCH", "/v1/vendors/" + ids(vendorFB), `{"stato":"ATTIVA"}`, 200, "status", "ATTIVA"},
		{"vendor with status and stato", "PATCH", "/v1/vendors/" + ids(vendorFB), `{"status":"ATTIVA","stato":"ATTIVA"}`, 400, "", "stato"},
		{"bad value under stato", "PATCH", "/v1/vendors/" + ids(vendorFB), `{"stato":"attiva"}`, 400, "", "stato"},
		{"mixed case stays bad", "PATCH", "/v1/stalls/" + ids(stallBG1), `{"status":"Libero"}`, 400, "", "status"},
		{"market status of another enum", "GET", "/v1/markets?region=03&status=libero", ``, 400, "", "status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, "lombardia", tt.method, tt.path, tt.body)
			wantStatus(t, tt.method+" "+tt.path+" "+tt.body, r, tt.status)
			if tt.status == 400 {
				wantField(t, tt.name, r, tt.want)
				return
			}
			got := r.body
			if items, ok := r.body["items"].([]any); ok {
				if len(items) == 0 {
					t.Fatalf("%s %s: no items", tt.method, tt.path)
				}
				got = items[0].(map[string]any)
			}
			if fmt.Sprint(got[tt.key]) != tt.want {
				t.Errorf("%s %s %s: %s = %v, want %s", tt.method, tt.path, tt.body, tt.key, got[tt.key], tt.want)
			}
			if _, ok := got["stato"]; ok {
				t.Errorf("%s %s: the answer has the deprecated key stato: %s", tt.method, tt.path, r.raw)
			}
		})
	}
}
