package router

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dmshub/dmsrouter/pgtest"
)

// benchMarketsSQL adds 60 markets to Lombardia, so that a page of them is
// an answer worth compressing (about 15 KB).
const benchMarketsSQL = `INSERT INTO markets (id, region_id, code, name, province, comune, comune_name, days, status, cost_per_sqm)
SELECT dms.next_id('markets', 3::smallint), 3, 'MX' || lpad(g::text, 3, '0'), 'Mercato rionale numero ' || g, '015', '015146', 'Milano', '{1,3,5}', 'ACTIVE', 1.10
FROM generate_series(1, 60) g`

// BenchmarkBrowser measures what ETag, 304 and gzip do to a read of a
// page of 60 markets (8 clients) through one router: sent as it is (its
// ETag hashed), gzip-compressed, and revalidated with If-None-Match (304,
// no body), plain and compressed. The arms run interleaved in rounds (see
// benchTiming); the table gives throughput, p50, the bytes of one answer
// on the wire and the CPU time of the benchmark's process per request
// (router and client together; PostgreSQL, a process of its own, is left
// out). Run it with -benchtime=1x: it ignores b.N. BenchmarkWriteBody
// measures the edge's own work on such a body alone.
func BenchmarkBrowser(b *testing.B) {
	ctx := context.Background()
	slice, rounds := benchTiming()
	const clients = 8
	cfg, err := pg.Deployment(ctx, pgtest.Prefix("browserbench"), layout())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pg.DropDeployment(context.Background(), cfg) })
	loadFixture(b, cfg)
	for _, sh := range cfg.Shards {
		if sh.Name == "nw" {
			exec(b, sh.AdminDSN(), benchMarketsSQL)
		}
	}
	url, _ := benchRouter(b, cfg, TraceConfig{})
	url += "/v1/markets?limit=60"
	tok := benchToken(b, "region:03")
	client := newBenchClient()

	// ask returns a request of the page with Accept-Encoding enc (which
	// also keeps the client from decompressing) and If-None-Match inm.
	ask := func(enc, inm string) (int, int, string, error) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Accept-Encoding", enc)
		if inm != "" {
			req.Header.Set("If-None-Match", inm)
		}
		res, err := client.c.Do(req)
		if err != nil {
			return 0, 0, "", err
		}
		n, _ := io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode, int(n), res.Header.Get("ETag"), nil
	}
	type arm struct {
		name, enc  string
		revalidate bool
		status     int
		etag       string
		size       int
	}
	arms := []*arm{
		{name: "identity (ETag hashed)", enc: "identity", status: 200},
		{name: "gzip", enc: "gzip", status: 200},
		{name: "If-None-Match -> 304", enc: "identity", revalidate: true, status: 304},
		{name: "gzip, If-None-Match -> 304", enc: "gzip", revalidate: true, status: 304},
	}
	do := make([]func() error, len(arms))
	for i, a := range arms {
		_, size, etag, err := ask(a.enc, "") // warm the pools, learn the ETag
		if err != nil {
			b.Fatal(err)
		}
		a.size, a.etag = size, etag
		if !a.revalidate {
			a.etag = ""
		} else {
			a.size = 0
		}
		do[i] = func() error {
			status, _, _, err := ask(a.enc, a.etag)
			if err == nil && status != a.status {
				err = fmt.Errorf("GET %s (%s) = %d, want %d", url, a.name, status, a.status)
			}
			return err
		}
	}
	// One arm at a time, one slice each, rounds times over: interleaved
	// as interleave does, with the process's CPU time read around each
	// slice.
	runs := make([]armRun, len(arms))
	cpu := make([]time.Duration, len(arms))
	for range rounds {
		for i := range arms {
			before := cpuTime(b)
			r := interleave(b, do[i:i+1], clients, 1, slice)
			cpu[i] += cpuTime(b) - before
			runs[i].lat.d = append(runs[i].lat.d, r[0].lat.d...)
			runs[i].elapsed += r[0].elapsed
		}
	}
	var table strings.Builder
	fmt.Fprintf(&table, "\na page of 60 markets, %d clients (%d rounds of %s per arm):\n| arm | req/s | p50 ms | p99 ms | body bytes | CPU µs/req |\n|---|---:|---:|---:|---:|---:|\n", clients, rounds, slice)
	for i, a := range arms {
		n := len(runs[i].lat.d)
		perReq := float64(cpu[i].Microseconds()) / float64(n)
		fmt.Fprintf(&table, "| %s | %.0f | %.3f | %.3f | %d | %.0f |\n", a.name, runs[i].perSecond(),
			ms(runs[i].lat.percentile(50)), ms(runs[i].lat.percentile(99)), a.size, perReq)
		key := strings.NewReplacer(" ", "-", "(", "", ")", "", ",", "", ">", "").Replace(a.name)
		b.ReportMetric(runs[i].perSecond(), key+"-req/s")
		b.ReportMetric(perReq, key+"-cpu-µs/req")
	}
	b.Log(table.String())
}

// cpuTime returns the user and system CPU time the process has used.
func cpuTime(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkWriteBody measures writeBody alone on a 60-market JSON page:
// a write's answer (no ETag, no compression: what every answer cost
// before), a GET's (its ETag hashed), a GET's gzip-compressed, and a
// revalidation answered 304; besides ns/op it reports the process's CPU
// time per op.
func BenchmarkWriteBody(b *testing.B) {
	gin.SetMode(gin.ReleaseMode)
	type market struct {
		ID                      int64
		Region, Code, Name      string
		Province, Comune, CName string
		Days                    []int
		Status                  string
		Cost                    float64
	}
	page := make([]market, 60)
	for i := range page {
		page[i] = market{int64(844424930131969 + i), "03", fmt.Sprintf("MX%03d", i), fmt.Sprintf("Mercato rionale numero %d", i),
			"015", "015146", "Milano", []int{1, 3, 5}, "ACTIVE", 1.1}
	}
	var buf bytes.Buffer
	if err := jsonEncode(&buf, map[string]any{"items": page, "total": 60}); err != nil {
		b.Fatal(err)
	}
	body := buf.Bytes()
	bodies := newBodies()
	for _, tt := range []struct {
		name, method, enc string
		revalidate        bool
	}{
		{"write answer (no ETag)", http.MethodPost, "gzip", false},
		{"GET identity (ETag)", http.MethodGet, "identity", false},
		{"GET gzip (ETag, compressed)", http.MethodGet, "gzip", false},
		{"GET If-None-Match 304", http.MethodGet, "identity", true},
	} {
		b.Run(tt.name, func(b *testing.B) {
			req := httptest.NewRequest(tt.method, "/v1/markets", nil)
			req.Header.Set("Accept-Encoding", tt.enc)
			if tt.revalidate {
				req.Header.Set("If-None-Match", bodyETag(body, false))
			}
			if tt.method == http.MethodPost {
				req.Header.Set("Accept-Encoding", "identity")
			}
			engine := gin.New()
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			// The process's CPU time per op, which a loaded machine's
			// other work does not stretch as it stretches ns/op.
			start, n := cpuTime(b), 0
			defer func() { b.ReportMetric(float64((cpuTime(b)-start).Nanoseconds())/float64(max(n, 1)), "cpu-ns/op") }()
			for b.Loop() {
				n++
				c := gin.CreateTestContextOnly(discardWriter{header: http.Header{}}, engine)
				c.Request = req
				c.Set(ctxBodies, bodies)
				if err := writeBody(c, http.StatusOK, "application/json; charset=utf-8", body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// discardWriter is an http.ResponseWriter that keeps nothing, so that
// BenchmarkWriteBody measures writeBody and not a recorder.
type discardWriter struct{ header http.Header }

func (w discardWriter) Header() http.Header         { return w.header }
func (w discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w discardWriter) WriteHeader(int)             {}
