package router

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dmshub/dmsrouter/auth"
	"github.com/dmshub/dmsrouter/regions"
)

// BenchmarkBatchBody measures the router's CPU for a 10,000-row presence
// batch before the database: reading the body (with the fingerprint of an
// Idempotency-Key), decoding it, as JSON and as CSV, and checking every
// row. No database; ns/op is the time per batch.
func BenchmarkBatchBody(b *testing.B) {
	type jsonRow struct {
		MarketID  int64   `json:"market_id"`
		VendorID  int64   `json:"vendor_id"`
		StallID   *int64  `json:"stall_id"`
		Date      string  `json:"date"`
		Kind      string  `json:"kind"`
		CheckinAt *string `json:"checkin_at"`
	}
	rows := make([]jsonRow, 10_000)
	var csv bytes.Buffer
	csv.WriteString("market_id,vendor_id,stall_id,date,kind,checkin_at\r\n")
	for i := range rows {
		stall, at := regions.MakeID("03", int64(1+i%15_000)), "2026-06-10T07:15:00+02:00"
		rows[i] = jsonRow{regions.MakeID("03", int64(1+i/10)), regions.MakeID("03", int64(1+i)), &stall, "2026-06-10", "CONCESSION", &at}
		csv.WriteString(jsonCSVLine(rows[i].MarketID, rows[i].VendorID, stall, at))
	}
	js, err := json.Marshal(map[string]any{"rows": rows})
	if err != nil {
		b.Fatal(err)
	}
	territory, err := regions.ParseTerritory("region:03")
	if err != nil {
		b.Fatal(err)
	}
	rome, _ := time.LoadLocation("Europe/Rome")
	s := &Server{rome: rome, now: func() time.Time { return time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC) }}
	gin.SetMode(gin.ReleaseMode)
	for _, tt := range []struct {
		name, ct string
		body     []byte
	}{{"json", "application/json", js}, {"csv", "text/csv", csv.Bytes()}} {
		for _, key := range []string{"", "key-1"} {
			name := tt.name
			if key != "" {
				name += "+key"
			}
			b.Run(name, func(b *testing.B) {
				b.SetBytes(int64(len(tt.body)))
				b.ReportAllocs()
				for b.Loop() {
					c, _ := gin.CreateTestContext(httptest.NewRecorder())
					c.Request = httptest.NewRequest(http.MethodPost, "/v1/presences/batch", bytes.NewReader(tt.body))
					c.Request.Header.Set("Content-Type", tt.ct)
					if key != "" {
						c.Request.Header.Set("Idempotency-Key", key)
					}
					c.Set(ctxPrincipal, auth.Principal{Subject: "bench", Role: "admin_pa", Territory: territory})
					var raw batchReq
					if _, err := readBatch(c, &raw); err != nil {
						b.Fatal(err)
					}
					var k checks
					if _, _, err := s.checkBatch(&k, writeReq{p: principal(c)}, &raw); err != nil || k.err() != nil {
						b.Fatal(err, k.err())
					}
				}
			})
		}
	}
}

func jsonCSVLine(market, vendor, stall int64, at string) string {
	return strconv.FormatInt(market, 10) + "," + strconv.FormatInt(vendor, 10) + "," + strconv.FormatInt(stall, 10) + ",2026-06-10,CONCESSION," + at + "\r\n"
}
