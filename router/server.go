// Package router is the HTTP face of dmsrouter: the routes, the
// authentication middleware (package auth verifies the token), territory
// scoping, the handlers over the shard map and the national endpoints
// (package national answers them), problem+json errors and telemetry. Gin
// stays inside this package.
//
// It may import auth, control, fleet, national, registry, shardmap, regions, taxcode, gin,
// golang.org/x/time/rate (the national rate limit), Prometheus and
// OpenTelemetry; only the commands import it.
package router

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/dmshub/dmsrouter/auth"
	"github.com/dmshub/dmsrouter/control"
	"github.com/dmshub/dmsrouter/national"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// Keys of the values middleware stores on a request.
const (
	ctxPrincipal = "dms.principal"
	ctxRequestID = "dms.request_id"
	ctxRegion    = "dms.region"
	ctxBodies    = "dms.bodies"
)

// Server serves the API over one shard map.
type Server struct {
	shards   *shardmap.Holder
	verifier atomic.Pointer[auth.Verifier] // replaced by SetVerifier on reload
	log      *slog.Logger
	tel      *Telemetry
	rome     *time.Location
	now      func() time.Time
	engine   *gin.Engine
	requests metric.Float64Histogram
	labels   histogramLabels // the requests histogram's label sets
	tracer   trace.Tracer
	national *national.Fanout // answers the national requests

	nationalLimits principalLimits // national.rate_limit's bucket per principal

	control *control.Follower // the control database's follower; nil without one
	status  *statusPage       // the operators' status page

	origins     map[string]bool             // CORS origins, trusted by crossOrigin too
	corsMaxAge  time.Duration               // Access-Control-Max-Age
	crossOrigin *http.CrossOriginProtection // refuses cross-site writes
	bodies      *bodies                     // the gzip writers of answers

	readyMu    sync.Mutex
	readyAt    time.Time
	readyState readiness

	inFlight chan struct{} // a slot per API request served (Options.MaxInFlight); nil: no bound
}

// Options configures a Server. Nil fields get defaults: a discarding
// logger, fresh telemetry, the wall clock.
type Options struct {
	Logger    *slog.Logger
	Telemetry *Telemetry
	Now       func() time.Time
	// Control follows the control database that assigns the regions;
	// /readyz reports its state. Nil: the file's regions rule.
	Control *control.Follower
	// CORS lists the origins of browser dashboards that may call the API
	// (and write with the dms_token cookie); none by default.
	CORS CORS
	// MaxInFlight bounds the API requests served at once (server.max_in_flight;
	// 0: no bound): see admit.
	MaxInFlight int
}

// New returns a Server that routes through the shard map m holds (and
// follows its reloads), authenticates with v and answers national requests
// with n.
func New(m *shardmap.Holder, v *auth.Verifier, n *national.Fanout, opts Options) (*Server, error) {
	rome, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		return nil, fmt.Errorf("load Europe/Rome: %w", err)
	}
	s := &Server{shards: m, national: n, log: opts.Logger, tel: opts.Telemetry, now: opts.Now, rome: rome, control: opts.Control}
	s.verifier.Store(v)
	if opts.MaxInFlight > 0 {
		s.inFlight = make(chan struct{}, opts.MaxInFlight)
	}
	if s.log == nil {
		s.log = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.tel == nil {
		if s.tel, err = NewTelemetry(TraceConfig{}); err != nil {
			return nil, err
		}
	}
	if err := s.browserSafe(opts.CORS); err != nil {
		return nil, err
	}
	s.tracer = s.tel.TracerProvider.Tracer("github.com/dmshub/dmsrouter/router")
	s.requests, err = s.tel.MeterProvider.Meter("github.com/dmshub/dmsrouter/router").Float64Histogram(
		"http.server.request.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of HTTP requests by route, method, status and region."),
		metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
	if err != nil {
		return nil, err
	}
	if s.status, err = newStatusPage(); err != nil {
		return nil, err
	}
	if err := s.observeKeySet(); err != nil {
		return nil, err
	}
	s.engine = s.routes()
	return s, nil
}

// SetVerifier makes v verify the tokens of the requests that start from now
// on (a configuration reload's new auth section); requests in flight finish
// with the verifier they started with.
func (s *Server) SetVerifier(v *auth.Verifier) { s.verifier.Store(v) }

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.engine.ServeHTTP(w, r) }

// routes lists every route in one place.
func (s *Server) routes() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.Use(s.observe, s.recover)
	e.Use(secureHeaders, s.browser, s.cors, s.refuseCrossOrigin, s.checkText)
	e.NoRoute(s.handle(noRoute))
	e.NoMethod(s.handle(func(*gin.Context) error { return errMethodNotAllowed }))

	e.GET("/healthz", s.handle(s.healthz))
	e.GET("/readyz", s.handle(s.readyz))

	v1 := e.Group("/v1", s.admit, s.authenticate, s.consistency)
	v1.GET("/regions", s.handle(s.listRegions))
	v1.GET("/markets", s.handle(s.listMarkets))
	v1.GET("/markets/:id", s.handle(s.getMarket))
	v1.GET("/markets/:id/stalls", s.handle(s.listStalls))
	v1.GET("/markets/:id/presences", s.handle(s.listPresences))
	v1.GET("/stalls/:id", s.handle(s.getStall))
	v1.GET("/vendors", s.handle(s.listVendors))
	v1.GET("/vendors/:id", s.handle(s.getVendor))
	v1.GET("/vendors/:id/authorisations", s.handle(s.listAuthorisations))
	v1.GET("/concessions", s.handle(s.listConcessions))
	v1.GET("/concessions/:id", s.handle(s.getConcession))
	v1.GET("/markets/:id/graduatoria", s.handle(s.getGraduatoria))
	v1.GET("/markets/:id/days", s.handle(s.listMarketDays))
	v1.GET("/concessions/:id/absences", s.handle(s.listAbsences))
	v1.GET("/markets/:id/spunta", s.handle(s.getSpunta))

	// Writes: roles that may write, inside their territory.
	w := v1.Group("", s.requireWriter)
	w.POST("/markets", s.handle(s.createMarket))
	w.PATCH("/markets/:id", s.handle(s.updateMarket))
	w.PATCH("/markets/:id/regolamento", s.handle(s.updateRegolamento))
	w.POST("/markets/:id/stalls", s.handle(s.createStall))
	w.PATCH("/stalls/:id", s.handle(s.updateStall))
	w.POST("/vendors", s.handle(s.createVendor))
	w.PATCH("/vendors/:id", s.handle(s.updateVendor))
	w.POST("/vendors/:id/authorisations", s.handle(s.createAuthorisation))
	w.POST("/concessions", s.handle(s.createConcession))
	w.POST("/concessions/:id/status", s.handle(s.setConcessionStatus))
	w.POST("/concessions/:id/renewal", s.handle(s.renewConcession))
	w.POST("/concessions/:id/subingresso", s.handle(s.subingresso))
	w.POST("/markets/:id/presences", s.handle(s.checkIn))
	w.POST("/presences/batch", s.handle(s.ingestPresences))
	w.POST("/markets/:id/spunta", s.handle(s.runSpunta))
	w.PUT("/markets/:id/days/:date", s.handle(s.setMarketDay))
	w.POST("/markets/:id/days/:date/appello", s.handle(s.recordAppello))
	w.PUT("/concessions/:id/absences/:date", s.handle(s.justifyAbsence))
	w.DELETE("/concessions/:id/absences/:date", s.handle(s.unjustifyAbsence))
	w.POST("/markets/:id/spunta/open", s.handle(s.openSpunta))
	w.POST("/markets/:id/spunta/choice", s.handle(s.chooseSpunta))
	w.POST("/markets/:id/spunta/close", s.handle(s.closeSpunta))

	// National dashboards: national principals only, fanned out to every region.
	n := v1.Group("/national", s.requireNational, s.limitNational)
	n.GET("/summary", s.handle(s.nationalSummary))
	n.GET("/presences", s.handle(s.nationalPresences))
	n.GET("/concessions/expiring", s.handle(s.nationalExpiring))
	n.GET("/concessions/decadenza", s.handle(s.nationalDecadenza))
	n.GET("/market-days", s.handle(s.nationalMarketDays))

	// Operators (dba, super_admin): the status as a page and as JSON.
	e.GET("/status", s.authenticate, s.requireOperator, s.handle(s.statusHTML))
	v1.GET("/admin/shards", s.requireOperator, s.handle(s.adminShards))

	// What each problem type means: the type URIs resolve. No token.
	e.GET("/problems/:name", s.handle(s.problemPage))
	// The contract (OpenAPI 3), outside the authenticated group: no token.
	e.GET("/v1/openapi.json", s.handle(serveOpenAPI))
	return e
}

// handle adapts a handler that returns an error: nil means the handler
// wrote its response; an error becomes problem+json.
func (s *Server) handle(h func(*gin.Context) error) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := h(c); err != nil {
			s.writeProblem(c, err)
		}
	}
}

// writeJSON writes v with status 200.
func writeJSON(c *gin.Context, v any) error { return writeJSONStatus(c, http.StatusOK, v) }

// writeJSONStatus writes v with status.
func writeJSONStatus(c *gin.Context, status int, v any) error {
	// Encoded whole before anything is sent: an encoding error can still be
	// answered with a problem, and the body goes out with its length in one
	// write instead of in chunks, hashed for its ETag and compressed whole.
	// The buffer is the request's bodies' (reused), since writeBody copies
	// the body into the connection's buffer before it returns.
	b := requestBodies(c)
	buf := b.buffer()
	defer b.release(buf)
	if page, ok := appendList(buf.AvailableBuffer(), v); ok { // the hot lists, without reflection
		buf.Write(page)
	} else if err := jsonEncode(buf, v); err != nil {
		return err
	}
	return writeBody(c, status, "application/json; charset=utf-8", buf.Bytes())
}

func jsonEncode(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// authenticate verifies the bearer token and stores the principal.
func (s *Server) authenticate(c *gin.Context) {
	c.Writer.Header().Add("Vary", "Authorization, Cookie")
	p, err := s.verifier.Load().Verify(auth.TokenFromRequest(c.Request), s.now())
	if err != nil {
		s.writeProblem(c, err)
		return
	}
	c.Set(ctxPrincipal, p)
	if span := trace.SpanFromContext(c.Request.Context()); span.IsRecording() {
		span.SetAttributes(attribute.String("enduser.id", p.Subject), attribute.String("dms.territory", p.Territory.String()))
	}
	c.Next()
}

func principal(c *gin.Context) auth.Principal {
	p, _ := c.Get(ctxPrincipal)
	return p.(auth.Principal)
}

var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// observe gives every request an id, a span, a log line and a duration
// measurement. The span and the measurement carry only labels from bounded
// sets (methodLabel, routeLabel, regionLabel), so that no caller can mint new series; the log
// line keeps the method as sent. The span's attributes are set only when
// it records (a sampled trace, telemetry.sample_ratio), and the
// measurement's label set is built once per combination (histogramLabels):
// most requests pay for neither.
func (s *Server) observe(c *gin.Context) {
	start := time.Now()
	id := c.GetHeader("X-Request-ID")
	if !requestIDPattern.MatchString(id) {
		var b [8]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	c.Set(ctxRequestID, id)
	c.Header("X-Request-ID", id)
	route, method := routeLabel(c.FullPath()), methodLabel(c.Request.Method)
	// A caller's W3C traceparent makes this request's span its child; a
	// malformed one is ignored and the request starts a trace.
	ctx := propagation.TraceContext{}.Extract(c.Request.Context(), propagation.HeaderCarrier(c.Request.Header))
	ctx, span := s.tracer.Start(ctx, method+" "+route, trace.WithSpanKind(trace.SpanKindServer))
	recording := span.IsRecording()
	if recording {
		span.SetAttributes(attribute.String("http.route", route), attribute.String("http.request.method", method))
	}
	c.Request = c.Request.WithContext(ctx)
	traceID := span.SpanContext().TraceID().String()
	traceHeaders(c.Writer.Header(), traceID, span.SpanContext())
	c.Next()
	status := c.Writer.Status()
	region := regionLabel(c.GetString(ctxRegion))
	if recording {
		span.SetAttributes(attribute.Int("http.response.status_code", status), attribute.String("region", region))
		if status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(status))
		}
	}
	span.End()
	elapsed := time.Since(start)
	s.requests.Record(context.Background(), elapsed.Seconds(), s.labels.of(route, method, status, region))
	s.log.LogAttrs(ctx, slog.LevelInfo, "request",
		slog.String("request_id", id),
		slog.String("trace_id", traceID),
		slog.String("method", c.Request.Method),
		slog.String("route", route),
		slog.Int("status", status),
		slog.String("region", region),
		slog.Duration("duration", elapsed))
}

// histogramLabels holds the label sets of the request histogram, one per
// route, method, status and region seen, built on first use: a set sorts
// and copies its labels, which every request would otherwise pay for. The
// labels come from bounded sets (see observe), so the map stays small.
type histogramLabels struct{ sets sync.Map } // requestKey -> metric.RecordOption

type requestKey struct {
	route, method, region string
	status                int
}

// of returns the measurement option carrying the labels of a request.
func (l *histogramLabels) of(route, method string, status int, region string) metric.RecordOption {
	k := requestKey{route: route, method: method, region: region, status: status}
	if o, ok := l.sets.Load(k); ok {
		return o.(metric.RecordOption)
	}
	o := metric.WithAttributeSet(attribute.NewSet(
		attribute.String("http.route", route),
		attribute.String("http.request.method", method),
		attribute.String("http.response.status_code", strconv.Itoa(status)),
		attribute.String("region", region)))
	l.sets.Store(k, o)
	return o
}

// traceHeaders sets the response headers that name the request's trace:
// Trace-Id, the trace id (traceID, sc's in hex) as logs and trace backends
// show it, and traceparent, the W3C form of the server span, whose flags end
// in 01 when the trace is sampled (exported) and 00 when it is not.
func traceHeaders(h http.Header, traceID string, sc trace.SpanContext) {
	h.Set("Trace-Id", traceID)
	h.Set("traceparent", "00-"+traceID+"-"+sc.SpanID().String()+"-"+sc.TraceFlags().String())
}

// methodLabel returns the method's label: the method itself when HTTP
// defines it (RFC 9110 and PATCH), else "_OTHER", as the OpenTelemetry
// semantic conventions say, because a client may send any token as a method.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "_OTHER"
}

// routeLabel returns the label of a route pattern: the pattern gin matched,
// or "unmatched" for every path no route serves.
func routeLabel(pattern string) string {
	if pattern == "" {
		return "unmatched"
	}
	return pattern
}

// regionLabel returns the label of the region a request was routed to: one
// of the 20 codes, or "" when there was none (or, defensively, when what
// was stored is not a region code).
func regionLabel(r string) string {
	if _, err := regions.ParseCode(r); err != nil {
		return ""
	}
	return r
}

// recover turns a panic into a 500 problem and a logged stack.
func (s *Server) recover(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			if r == http.ErrAbortHandler {
				panic(r)
			}
			s.writeProblem(c, fmt.Errorf("panic: %v", r))
		}
	}()
	c.Next()
}
