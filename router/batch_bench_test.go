package router

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
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
	var js, csv bytes.Buffer
	js.WriteString(`{"rows":[`)
	csv.WriteString("market_id,vendor_id,stall_id,date,kind,checkin_at\r\n")
	for i := range 10_000 {
		market, vendor, stall := regions.MakeID("03", int64(1+i/10)), regions.MakeID("03", int64(1+i)), regions.MakeID("03", int64(1+i%15_000))
		if i > 0 {
			js.WriteString(",")
		}
		fmt.Fprintf(&js, `{"market_id":%d,"vendor_id":%d,"stall_id":%d,"date":"2026-06-10","kind":"CONCESSION","checkin_at":"2026-06-10T07:15:00+02:00"}`, market, vendor, stall)
		fmt.Fprintf(&csv, "%d,%d,%d,2026-06-10,CONCESSION,2026-06-10T07:15:00+02:00\r\n", market, vendor, stall)
	}
	js.WriteString("]}")
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
	}{{"json", "application/json", js.Bytes()}, {"csv", "text/csv", csv.Bytes()}} {
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
