package cli_test

import (
	"context"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/dmshub/dmsrouter/auth"
	"github.com/dmshub/dmsrouter/config"
	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/regions"
)

// otlpReceiver is an OTLP/HTTP trace receiver in the test process: it
// decodes each protobuf export posted to /v1/traces and keeps its spans.
type otlpReceiver struct {
	*httptest.Server
	mu    sync.Mutex
	spans []*tracepb.Span
	names []string // the service.name of each export's resources
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	r := &otlpReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/x-protobuf" {
			t.Errorf("OTLP export %s %s (%s), want POST /v1/traces of application/x-protobuf", req.Method, req.URL.Path, req.Header.Get("Content-Type"))
			http.Error(w, "not an OTLP/HTTP protobuf trace export", http.StatusBadRequest)
			return
		}
		body, err := io.ReadAll(req.Body)
		var export coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(body, &export)
		}
		if err != nil {
			t.Errorf("OTLP export does not decode: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, rs := range export.ResourceSpans {
			for _, kv := range rs.GetResource().GetAttributes() {
				if kv.Key == "service.name" {
					r.names = append(r.names, kv.GetValue().GetStringValue())
				}
			}
			for _, ss := range rs.ScopeSpans {
				r.spans = append(r.spans, ss.Spans...)
			}
		}
		r.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	t.Cleanup(r.Close)
	return r
}

// take returns the spans and service names received so far and forgets them.
func (r *otlpReceiver) take() ([]*tracepb.Span, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	spans, names := r.spans, r.names
	r.spans, r.names = nil, nil
	return spans, names
}

// attrs returns a span's attributes as strings or ints.
func attrs(sp *tracepb.Span) map[string]any {
	out := map[string]any{}
	for _, kv := range sp.Attributes {
		switch v := kv.GetValue().GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			out[kv.Key] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			out[kv.Key] = v.IntValue
		}
	}
	return out
}

// The remote parent of the cases that carry a traceparent.
const (
	callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpan  = "00f067aa0ba902b7"
)

// TestServeExportsTraces runs the router with the telemetry section
// pointing at an in-process OTLP/HTTP receiver and checks that a national
// request is one trace, exported when sampled: the server span (child of
// the caller's span when it sent a traceparent) and, under it, one
// national.leg span per region with its region, shard, status and rows;
// and that the response names the trace in Trace-Id and traceparent.
func TestServeExportsTraces(t *testing.T) {
	ctx := context.Background()
	sm := pgtest.NewDeployment(t, pg, "clitrace", pgtest.Split("rest", pgtest.Layout{"03": "lom"}))
	for _, sh := range sm.Shards {
		if sh.Name == "lom" {
			pgtest.Exec(t, sh.AdminDSN(), `INSERT INTO markets (id, region_id, code, name, province, comune, comune_name) VALUES
  (dms.next_id('markets', 3::smallint), 3, 'MI001', 'Mercato di Via Papiniano', '015', '015146', 'Milano'),
  (dms.next_id('markets', 3::smallint), 3, 'BG001', 'Mercato della Fiera', '016', '016024', 'Bergamo')`)
		}
	}
	national, err := regions.ParseTerritory("national")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := auth.SignHS256(pgtest.TestSecret, auth.Principal{Subject: "ministero", Role: "admin_pa", Territory: national}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	recv := newOTLPReceiver(t)
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))

	for _, tt := range []struct {
		name        string
		ratio       float64
		traceparent string // sent by the caller; "" sends none
		exported    bool
	}{
		{"ratio 1, no caller", 1, "", true},
		{"ratio 0, caller sampled", 0, "00-" + callerTrace + "-" + callerSpan + "-01", true},
		{"ratio 1, caller not sampled", 1, "00-" + callerTrace + "-" + callerSpan + "-00", false},
		{"ratio 0, no caller", 0, "", false},
		{"ratio 1, malformed traceparent", 1, "00-zz-" + callerSpan + "-01", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := serveConfig(sm, "")
			cfg.Telemetry = config.Telemetry{ServiceName: "dmsrouter-test", OTLPEndpoint: recv.URL, SampleRatio: tt.ratio}
			sctx, cancel := context.WithCancel(ctx)
			defer cancel()
			api, done := startServe(t, sctx, cfg, log, nil)

			req, _ := http.NewRequest(http.MethodGet, api+"/v1/markets", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			if tt.traceparent != "" {
				req.Header.Set("traceparent", tt.traceparent)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Fatalf("GET /v1/markets = %d, want 200", res.StatusCode)
			}
			traceID := res.Header.Get("Trace-Id")
			if id, err := hex.DecodeString(traceID); err != nil || len(id) != 16 {
				t.Fatalf("Trace-Id = %q, want 32 hex digits", traceID)
			}
			if tt.traceparent != "" && tt.name != "ratio 1, malformed traceparent" && traceID != callerTrace {
				t.Errorf("Trace-Id = %s, want the caller's trace %s", traceID, callerTrace)
			}
			flags := "-00"
			if tt.exported {
				flags = "-01"
			}
			tp := res.Header.Get("traceparent")
			if len(tp) != 55 || tp[:36] != "00-"+traceID+"-" || tp[52:] != flags {
				t.Errorf("response traceparent = %q, want 00-%s-<server span>%s", tp, traceID, flags)
			}

			// Stopping Serve flushes the batch exporter.
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Serve = %v after cancel, want nil", err)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("Serve did not stop after cancel")
			}
			spans, names := recv.take()
			if !tt.exported {
				for _, sp := range spans {
					if hex.EncodeToString(sp.TraceId) == traceID {
						t.Errorf("span %s of the unsampled trace %s was exported", sp.Name, traceID)
					}
				}
				return
			}
			checkNationalTrace(t, spans, traceID, tp[36:52], tt.traceparent != "" && tt.name != "ratio 1, malformed traceparent")
			for _, n := range names {
				if n != "dmsrouter-test" {
					t.Errorf("exported resource service.name = %q, want dmsrouter-test", n)
				}
			}
			if len(names) == 0 {
				t.Error("the export names no service.name")
			}
		})
	}
}

// checkNationalTrace checks the spans of traceID among spans: one server
// span, serverSpan, whose parent is the caller's span when fromCaller and
// none otherwise, 20 national.leg spans under it, one per region, and every
// other span under one of them.
func checkNationalTrace(t *testing.T, spans []*tracepb.Span, traceID, serverSpan string, fromCaller bool) {
	t.Helper()
	byID := map[string]*tracepb.Span{}
	for _, sp := range spans {
		if hex.EncodeToString(sp.TraceId) == traceID {
			byID[hex.EncodeToString(sp.SpanId)] = sp
		}
	}
	server, ok := byID[serverSpan]
	if !ok {
		t.Fatalf("the server span %s of trace %s was not exported (%d spans of the trace, %d in all)", serverSpan, traceID, len(byID), len(spans))
	}
	wantParent := ""
	if fromCaller {
		wantParent = callerSpan
	}
	if server.Name != "GET /v1/markets" || server.Kind != tracepb.Span_SPAN_KIND_SERVER || hex.EncodeToString(server.ParentSpanId) != wantParent {
		t.Errorf("server span = %q kind %v parent %q, want \"GET /v1/markets\" kind SERVER parent %q",
			server.Name, server.Kind, hex.EncodeToString(server.ParentSpanId), wantParent)
	}
	legs := map[string]map[string]any{}
	for id, sp := range byID {
		parent := hex.EncodeToString(sp.ParentSpanId)
		switch {
		case id == serverSpan:
		case sp.Name == "national.leg":
			a := attrs(sp)
			region, _ := a["region"].(string)
			if parent != serverSpan {
				t.Errorf("leg span of region %s has parent %s, want the server span %s", region, parent, serverSpan)
			}
			if legs[region] != nil {
				t.Errorf("two leg spans of region %q", region)
			}
			legs[region] = a
		case byID[parent] == nil:
			t.Errorf("span %q has parent %s, which is not in trace %s", sp.Name, parent, traceID)
		}
	}
	if len(legs) != 20 {
		t.Errorf("%d leg spans under the server span, want 20 (one per region)", len(legs))
	}
	for _, r := range regions.All() {
		a := legs[string(r.Code)]
		if a == nil {
			t.Errorf("no leg span of region %s", r.Code)
			continue
		}
		shard, rows := "rest", int64(0)
		if r.Code == "03" {
			shard, rows = "lom", 2
		}
		if a["shard"] != shard || a["dms.leg.status"] != "ok" || a["dms.leg.rows"] != rows {
			t.Errorf("leg span of region %s: shard %v, dms.leg.status %v, dms.leg.rows %v; want %s, ok, %d",
				r.Code, a["shard"], a["dms.leg.status"], a["dms.leg.rows"], shard, rows)
		}
	}
}
