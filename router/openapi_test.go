package router

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/dmshub/dmsrouter/auth"
	"github.com/dmshub/dmsrouter/pgtest"
)

// contract is the OpenAPI document the router serves (router/openapi.json)
// and a router over its operations, to check requests and answers against.
type contract struct {
	doc    *openapi3.T
	router routers.Router
}

// loadContract loads and validates the router's OpenAPI document.
func loadContract(tb testing.TB) *contract {
	tb.Helper()
	doc, err := parseContract([]byte(openAPI))
	if err != nil {
		tb.Fatal(err)
	}
	r, err := legacy.NewRouter(doc)
	if err != nil {
		tb.Fatalf("router over router/openapi.json: %v", err)
	}
	return &contract{doc: doc, router: r}
}

// parseContract loads data as an OpenAPI 3 document and validates it.
func parseContract(data []byte) (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(data)
	if err != nil {
		return nil, fmt.Errorf("load OpenAPI document: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("validate OpenAPI document: %w", err)
	}
	return doc, nil
}

// contractOptions checks every answer's status against the contract, and
// that a request carries its credentials where the contract says.
func contractOptions() *openapi3filter.Options {
	return &openapi3filter.Options{IncludeResponseStatus: true, AuthenticationFunc: credentialsPresent}
}

// credentialsPresent checks that a request sends the credential of the
// security scheme in: a bearer token, or the dms_token cookie. Whether the
// token is valid is the router's business (it answers 401).
func credentialsPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	r := in.RequestValidationInput.Request
	switch in.SecuritySchemeName {
	case "bearer":
		if strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			return nil
		}
	case "cookie":
		if _, err := r.Cookie("dms_token"); err == nil {
			return nil
		}
	}
	return errors.New("no credential for " + in.SecuritySchemeName)
}

// validated returns h wrapped so that every request it serves and every
// answer it gives are checked against the contract; a mismatch fails the
// test sender returns for the request, with the request's method and
// path. An answer must be declared for its operation (status, content
// type, headers, body); a request the router accepted (2xx) must be valid,
// since accepting what the contract calls invalid is drift; a request it
// refused is deliberate bad input, whose answer must only be a declared
// problem. A path or method no operation has must be answered with the
// problem of bad input, an unknown route or an unknown method. CORS
// preflights (OPTIONS) are not checked. The answer is held until it is
// checked, so the test that sent the request is still running.
func (k *contract) validated(sender func(*http.Request) testing.TB, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions {
			h.ServeHTTP(w, r)
			return
		}
		var body bytes.Buffer
		sent := r.Clone(r.Context()) // the request as it came, before the router reads it
		if r.Body != nil {
			r.Body = teeBody{Reader: io.TeeReader(r.Body, &body), Closer: r.Body}
		}
		rec := &answerRecorder{header: http.Header{}}
		h.ServeHTTP(rec, r)
		sent.Body = io.NopCloser(&body)
		if err := k.check(sent, rec.status(), rec.header, rec.body.Bytes()); err != nil {
			sender(r).Errorf("OpenAPI contract: %s %s: %v", r.Method, r.URL.RequestURI(), err)
		}
		maps.Copy(w.Header(), rec.header)
		w.WriteHeader(rec.status())
		_, _ = w.Write(rec.body.Bytes())
	})
}

// senderHeader names the test that sent a request (senders.add).
const senderHeader = "Test-Sender"

// senders finds the test that sent a request, so that a mismatch with the
// contract fails that test: requests that name none in senderHeader
// belong to fallback, the test that started the server.
type senders struct {
	fallback testing.TB
	mu       sync.Mutex
	seq      int
	tests    map[string]testing.TB
}

// add marks req as sent by tb until done is called.
func (s *senders) add(tb testing.TB, req *http.Request) (done func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	id := strconv.Itoa(s.seq)
	if s.tests == nil {
		s.tests = map[string]testing.TB{}
	}
	s.tests[id] = tb
	req.Header.Set(senderHeader, id)
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.tests, id)
	}
}

// of returns the test that sent r.
func (s *senders) of(r *http.Request) testing.TB {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tb, ok := s.tests[r.Header.Get(senderHeader)]; ok {
		return tb
	}
	return s.fallback
}

// check checks request r, whose body has been read, and its answer.
func (k *contract) check(r *http.Request, status int, header http.Header, body []byte) error {
	ctx := context.Background()
	if header.Get("Content-Encoding") == "gzip" {
		// The contract describes the representation, before compression.
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("gzip answer: %w", err)
		}
		if body, err = io.ReadAll(zr); err != nil {
			return fmt.Errorf("gzip answer: %w", err)
		}
	}
	route, params, err := k.router.FindRoute(r)
	if err == nil && strings.HasSuffix(r.URL.Path, "/") != strings.HasSuffix(route.Path, "/") {
		// The legacy router ignores a trailing slash; the router does not.
		err = fmt.Errorf("no path %s in the contract", r.URL.Path)
	}
	if err != nil {
		return k.checkUnrouted(err, status, header, body)
	}
	if status == http.StatusNotModified {
		// openapi3filter does not check a 304: it must be declared all the same.
		if route.Operation.Responses.Status(status) == nil {
			return fmt.Errorf("status %d is not declared", status)
		}
		return nil
	}
	in := &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route, Options: contractOptions()}
	if status >= 200 && status < 300 {
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			return fmt.Errorf("the router accepted (%d) a request the contract calls invalid: %w", status, err)
		}
	}
	if err := openapi3filter.ValidateResponse(ctx, &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: status, Header: header,
		Body: io.NopCloser(bytes.NewReader(body)), Options: contractOptions(),
	}); err != nil {
		return err
	}
	return problemAgrees(status, header, body)
}

// problemAgrees checks what a schema cannot say of a problem answer: that
// its status is the answer's, and that its type has a page
// (GET /problems/{name}).
func problemAgrees(status int, header http.Header, body []byte) error {
	if header.Get("Content-Type") != "application/problem+json" {
		return nil
	}
	var p Problem
	if err := json.Unmarshal(body, &p); err != nil {
		return fmt.Errorf("problem answer %d: %w", status, err)
	}
	if p.Status != status {
		return fmt.Errorf("problem %s says status %d, the answer is %d", p.Type, p.Status, status)
	}
	if _, ok := problemAbout[p.Type]; !ok {
		return fmt.Errorf("problem type %q has no page", p.Type)
	}
	return nil
}

// checkUnrouted checks the answer to a request that no operation of the
// contract serves: the problem of the unknown route (404) or method (405),
// as the contract's NotFound and MethodNotAllowed responses describe them,
// or of what the edge refuses before routing: bad input (a path holding a
// NUL character, say) and, as for every write, a write a browser sent from
// another site.
func (k *contract) checkUnrouted(routeErr error, status int, header http.Header, body []byte) error {
	name := map[int]string{
		http.StatusBadRequest:       "BadRequest",
		http.StatusForbidden:        "ForbiddenWrite",
		http.StatusNotFound:         "NotFound",
		http.StatusMethodNotAllowed: "MethodNotAllowed",
	}[status]
	if name == "" {
		return fmt.Errorf("no operation of the contract serves it (%v), yet the answer is %d", routeErr, status)
	}
	if ct := header.Get("Content-Type"); ct != "application/problem+json" {
		return fmt.Errorf("no operation of the contract serves it (%v): answer %d has Content-Type %q, want application/problem+json", routeErr, status, ct)
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("answer %d: %w", status, err)
	}
	schema := k.doc.Components.Responses[name].Value.Content.Get("application/problem+json").Schema.Value
	if err := schema.VisitJSON(v, openapi3.VisitAsResponse()); err != nil {
		return fmt.Errorf("answer %d is not the contract's %s: %w", status, name, err)
	}
	return problemAgrees(status, header, body)
}

// teeBody is a request body that copies what is read from it.
type teeBody struct {
	io.Reader
	io.Closer
}

// answerRecorder holds an answer: its status, headers and body.
type answerRecorder struct {
	code   int
	header http.Header
	body   bytes.Buffer
}

func (a *answerRecorder) Header() http.Header { return a.header }

func (a *answerRecorder) WriteHeader(code int) {
	if a.code == 0 {
		a.code = code
	}
}

func (a *answerRecorder) Write(b []byte) (int, error) {
	a.WriteHeader(http.StatusOK)
	return a.body.Write(b)
}

func (a *answerRecorder) status() int {
	if a.code == 0 {
		return http.StatusOK
	}
	return a.code
}

// offlineServer returns a Server over no shards, for tests of what needs
// none (the routes, the contract).
func offlineServer(t *testing.T) *Server {
	t.Helper()
	v, err := auth.NewVerifier(auth.Config{HS256Secret: pgtest.TestSecret})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(nil, v, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestOpenAPIServed gets the contract without a token: a valid OpenAPI 3
// document, as JSON, the same the tests check against.
func TestOpenAPIServed(t *testing.T) {
	h := loadContract(t).validated(func(*http.Request) testing.TB { return t }, offlineServer(t))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/v1/openapi.json", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("GET /v1/openapi.json = %d %s, want 200", w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	doc, err := parseContract(w.Body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi = %q, want 3.x", doc.OpenAPI)
	}
}

// TestOpenAPIRoutes checks that the contract describes every route with
// its method, and nothing else.
func TestOpenAPIRoutes(t *testing.T) {
	k := loadContract(t)
	var routes, ops []string
	for _, r := range offlineServer(t).engine.Routes() {
		routes = append(routes, r.Method+" "+openAPIPath(r.Path))
	}
	for path, item := range k.doc.Paths.Map() {
		for method := range item.Operations() {
			ops = append(ops, method+" "+path)
		}
	}
	slices.Sort(routes)
	slices.Sort(ops)
	for _, r := range routes {
		if !slices.Contains(ops, r) {
			t.Errorf("route %s is not in router/openapi.json", r)
		}
	}
	for _, op := range ops {
		if !slices.Contains(routes, op) {
			t.Errorf("router/openapi.json describes %s, which is no route", op)
		}
	}
}

// openAPIPath spells a gin route pattern (/markets/:id) as an OpenAPI path
// (/markets/{id}).
func openAPIPath(pattern string) string {
	parts := strings.Split(pattern, "/")
	for i, p := range parts {
		if name, ok := strings.CutPrefix(p, ":"); ok {
			parts[i] = "{" + name + "}"
		}
	}
	return strings.Join(parts, "/")
}

// TestOpenAPIProblemTypes checks that every problem type the table answers
// is one the contract declares, and that the contract declares no other.
func TestOpenAPIProblemTypes(t *testing.T) {
	k := loadContract(t)
	var declared []string
	for _, ref := range k.doc.Components.Responses {
		mt := ref.Value.Content.Get("application/problem+json")
		if mt == nil {
			continue
		}
		for _, s := range mt.Schema.Value.AllOf {
			if typ := s.Value.Properties["type"]; typ != nil {
				for _, e := range typ.Value.Enum {
					declared = append(declared, e.(string))
				}
			}
		}
	}
	slices.Sort(declared)
	declared = slices.Compact(declared)
	if !slices.Equal(declared, problemTypes) {
		t.Errorf("problem types of router/openapi.json = %q,\nwant %q", declared, problemTypes)
	}
}

// errorSpy is a testing.TB that keeps what Errorf reports instead of
// failing.
type errorSpy struct {
	testing.TB
	errs []string
}

func (s *errorSpy) Errorf(format string, args ...any) {
	s.errs = append(s.errs, fmt.Sprintf(format, args...))
}

// TestOpenAPIValidator checks that the validating handler catches drift:
// an undeclared status, problem type or body, and a request the router
// accepted that the contract calls invalid; and lets declared answers pass.
func TestOpenAPIValidator(t *testing.T) {
	k := loadContract(t)
	regionList := `{"items":[],"limit":50,"offset":0,"total":20,"total_estimated":false,"epoch":0}`
	problem := func(status int, typ string) string {
		return fmt.Sprintf(`{"type":%q,"title":"T","status":%d}`, typ, status)
	}
	tests := []struct {
		name, method, path, body string
		status                   int
		ct, answer               string
		drift                    bool
	}{
		{"declared answer", "GET", "/v1/regions", "", 200, "application/json; charset=utf-8", regionList, false},
		{"undeclared status", "GET", "/v1/regions", "", http.StatusTeapot, "application/json", regionList, true},
		{"body off its schema", "GET", "/v1/regions", "", 200, "application/json", `{"items":"none"}`, true},
		{"wrong content type", "GET", "/v1/regions", "", 200, "text/plain", regionList, true},
		{"declared problem", "GET", "/v1/markets/1", "", 404, "application/problem+json", problem(404, "/problems/not-found"), false},
		{"problem of another status", "GET", "/v1/markets/1", "", 404, "application/problem+json", problem(400, "/problems/not-found"), true},
		{"problem type of another route", "GET", "/v1/markets/1", "", 503, "application/problem+json", problem(503, "/problems/region-frozen"), true},
		{"invalid request accepted", "POST", "/v1/markets", `{"name":"x"}`, 201, "application/json", `{}`, true},
		{"invalid request refused", "POST", "/v1/markets", `{"name":"x"}`, 400, "application/problem+json", problem(400, "/problems/bad-request"), false},
		{"unknown path", "GET", "/v1/nowhere", "", 404, "application/problem+json", problem(404, "/problems/not-found"), false},
		{"unknown path answered", "GET", "/v1/nowhere", "", 200, "application/json", `{}`, true},
		{"trailing slash", "GET", "/v1/regions/", "", 404, "application/problem+json", problem(404, "/problems/not-found"), false},
		{"trailing slash answered", "GET", "/v1/regions/", "", 200, "application/json", regionList, true},
		{"unknown method", "DELETE", "/v1/regions", "", 405, "application/problem+json", problem(405, "/problems/method-not-allowed"), false},
		{"preflight", "OPTIONS", "/v1/regions", "", 204, "", "", false},
		{"gzip answer", "GET", "/v1/regions", "", 200, "application/json", "gzip:" + regionList, false},
		{"readiness while warming", "GET", "/readyz", "", 503, "application/json; charset=utf-8", `{"status":"warming"}`, false},
		{"readiness while draining", "GET", "/readyz", "", 503, "application/json; charset=utf-8", `{"status":"draining"}`, false},
		{"readiness gate off its schema", "GET", "/readyz", "", 503, "application/json; charset=utf-8", `{"status":"sleeping"}`, true},
		{"gzip answer off its schema", "GET", "/v1/regions", "", 200, "application/json", `gzip:{"items":"none"}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spy := &errorSpy{TB: t}
			h := k.validated(func(*http.Request) testing.TB { return spy }, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.ReadAll(r.Body)
				w.Header().Set("Content-Type", tt.ct)
				w.Header().Set("X-Request-ID", "r1")
				w.Header().Set("Trace-Id", "0123456789abcdef0123456789abcdef")
				w.Header().Set("traceparent", "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01")
				answer := []byte(tt.answer)
				if plain, ok := strings.CutPrefix(tt.answer, "gzip:"); ok {
					var z bytes.Buffer
					zw := gzip.NewWriter(&z)
					_, _ = io.WriteString(zw, plain)
					_ = zw.Close()
					answer = z.Bytes()
					w.Header().Set("Content-Encoding", "gzip")
				}
				w.WriteHeader(tt.status)
				_, _ = w.Write(answer)
			}))
			req := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
			req.Header.Set("Authorization", "Bearer token")
			req.Header.Set("Content-Type", "application/json")
			h.ServeHTTP(httptest.NewRecorder(), req)
			if got := len(spy.errs) > 0; got != tt.drift {
				t.Errorf("drift reported = %v %q, want %v", got, spy.errs, tt.drift)
			}
		})
	}
}
