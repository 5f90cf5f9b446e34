package router

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

func TestReadAPI(t *testing.T) {
	e := newEnv(t, "read", false)
	id := func(n int64) string { return strconv.FormatInt(n, 10) }
	tests := []struct {
		name, who, path string
		status          int
		check           func(t *testing.T, r response)
	}{
		{"regions", "milano", "/v1/regions", 200, func(t *testing.T, r response) {
			if r.body["total"] != 20.0 || r.body["epoch"] != 0.0 || !strings.Contains(r.raw, `{"code":"03","name":"Lombardia","shard":"nw","breaker":"closed","epoch":0}`) {
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
				"province": "015", "comune": "015146", "status": "ACTIVE"}
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
		{"markets by status", "lombardia", "/v1/markets?status=INACTIVE", 200, func(t *testing.T, r response) {
			if r.body["total"] != 0.0 {
				t.Errorf("status=INACTIVE = %s", r.raw)
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
		{"stalls filtered", "milano", "/v1/markets/" + id(milano) + "/stalls?status=LIBERO&type=SPUNTA", 200, func(t *testing.T, r response) {
			if got := r.field("number"); got != "2" {
				t.Errorf("stall numbers = %s", got)
			}
		}},
		{"stall", "milano", "/v1/stalls/" + id(stallMI1), 200, func(t *testing.T, r response) {
			if r.body["market_id"] != float64(milano) || r.body["number"] != 1.0 || r.body["type"] != "FISSO" || r.body["status"] != "OCCUPATO" || r.body["region"] != "03" {
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
