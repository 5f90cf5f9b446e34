package router

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"

	"github.com/dmshub/dmsrouter/auth"
	"github.com/dmshub/dmsrouter/pgtest"
)

// TestKeySetMetrics checks that the identity provider's key set of the
// verifier in force is reported on /metrics, and no longer once a reload's
// verifier has none.
func TestKeySetMetrics(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, `{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":"`+base64.RawURLEncoding.EncodeToString(pub)+`"}]}`)
	}))
	defer idp.Close()
	v, err := auth.Open(context.Background(), auth.Config{JWKSURL: idp.URL}, auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tel, err := NewTelemetry(TraceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(nil, v, nil, Options{Telemetry: tel})
	if err != nil {
		t.Fatal(err)
	}
	scrape := func() string {
		w := httptest.NewRecorder()
		tel.MetricsHandler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		return w.Body.String()
	}
	m := scrape()
	for _, want := range []string{`(?m)^dms_auth_jwks_keys\{.*\} 1$`, `(?m)^dms_auth_jwks_fetch_failures_total\{.*\} 0$`, `(?m)^dms_auth_jwks_age_seconds\{.*\} `} {
		if !regexp.MustCompile(want).MatchString(m) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(m, "dms_auth"))
		}
	}
	hs, err := auth.NewVerifier(auth.Config{HS256Secret: pgtest.TestSecret})
	if err != nil {
		t.Fatal(err)
	}
	s.SetVerifier(hs)
	if m := scrape(); regexp.MustCompile(`(?m)^dms_auth_jwks_keys\{`).MatchString(m) {
		t.Errorf("metrics report a key set after SetVerifier(HS256 only):\n%s", grepLines(m, "dms_auth"))
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out string
	for _, l := range regexp.MustCompile(`(?m)^.*`+regexp.QuoteMeta(sub)+`.*$`).FindAllString(s, -1) {
		out += l + "\n"
	}
	return out
}
