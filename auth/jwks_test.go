package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// idp stands in for an identity provider: a real HTTP server of a JWK Set
// whose keys the test changes, which counts the fetches and can be down.
type idp struct {
	srv     *httptest.Server
	mu      sync.Mutex
	keys    []map[string]any
	down    bool
	fetches int
}

func newIDP(tb testing.TB, keys ...map[string]any) *idp {
	tb.Helper()
	p := &idp{keys: keys}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.fetches++
		if p.down {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": p.keys})
	}))
	tb.Cleanup(p.srv.Close)
	return p
}

func (p *idp) url() string { return p.srv.URL + "/.well-known/jwks.json" }

// set replaces the keys the provider serves.
func (p *idp) set(keys ...map[string]any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys = keys
}

// setDown makes the provider answer 503 (true) or its keys (false).
func (p *idp) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
}

// count returns how many times the key set was fetched.
func (p *idp) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fetches
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// rsaJWK returns the JWK of k with kid and alg ("" leaves them out).
func rsaJWK(kid, alg string, k *rsa.PublicKey) map[string]any {
	m := map[string]any{"kty": "RSA", "use": "sig", "n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
	if kid != "" {
		m["kid"] = kid
	}
	if alg != "" {
		m["alg"] = alg
	}
	return m
}

// edJWK returns the JWK of the Ed25519 key k with kid ("" leaves it out).
func edJWK(kid string, k ed25519.PublicKey) map[string]any {
	m := map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64(k), "alg": "EdDSA"}
	if kid != "" {
		m["kid"] = kid
	}
	return m
}

// signKid signs claims with key under alg m, with the kid header when kid
// is not "".
func signKid(tb testing.TB, m jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	tb.Helper()
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		tb.Fatalf("sign %s: %v", m.Alg(), err)
	}
	return s
}

// idpClaims returns claims an identity provider issues at now to sub,
// valid for an hour, for the issuer and audience of the JWKS tests,
// changed by edits.
func idpClaims(now time.Time, sub string, edits ...func(jwt.MapClaims)) jwt.MapClaims {
	return validAuthClaims(append([]func(jwt.MapClaims){
		claimSet("iss", "https://idp.example"), claimSet("aud", "dmsrouter"), claimSet("sub", sub),
		claimSet("iat", now.Add(-time.Minute).Unix()), claimSet("exp", now.Add(time.Hour).Unix()),
	}, edits...)...)
}

func genRSA(tb testing.TB) *rsa.PrivateKey {
	tb.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func genEd(tb testing.TB) ed25519.PrivateKey {
	tb.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func openVerifier(tb testing.TB, cfg Config) *Verifier {
	tb.Helper()
	v, err := Open(context.Background(), cfg, Options{})
	if err != nil {
		tb.Fatalf("Open(%+v) = %v, want nil error", cfg, err)
	}
	return v
}

// TestJWKSVerify checks which tokens the keys of a JWKS verify: the kid
// picks the key, a key's alg is honoured, a token without a kid needs a
// single key for its alg, and iss and aud are checked when configured.
func TestJWKSVerify(t *testing.T) {
	r1, r2, other := genRSA(t), genRSA(t), genRSA(t)
	e1 := genEd(t)
	p := newIDP(t, rsaJWK("r1", "RS256", &r1.PublicKey), rsaJWK("r2", "", &r2.PublicKey), edJWK("e1", e1.Public().(ed25519.PublicKey)))
	v := openVerifier(t, Config{JWKSURL: p.url(), HS256Secret: authSecret, Issuer: "https://idp.example", Audience: "dmsrouter"})
	now := time.Now()
	claims := func(edits ...func(jwt.MapClaims)) jwt.MapClaims { return idpClaims(now, "u", edits...) }

	tests := []struct {
		name  string
		token string
		ok    bool
	}{
		{"RS256 of r1", signKid(t, jwt.SigningMethodRS256, r1, "r1", claims()), true},
		{"EdDSA of e1", signKid(t, jwt.SigningMethodEdDSA, e1, "e1", claims()), true},
		{"PS256 of r2, which names no alg", signKid(t, jwt.SigningMethodPS256, r2, "r2", claims()), true},
		{"RS512 of r2, which names no alg", signKid(t, jwt.SigningMethodRS512, r2, "r2", claims()), true},
		{"EdDSA without kid, the one Ed25519 key", signKid(t, jwt.SigningMethodEdDSA, e1, "", claims()), true},
		{"aud a list naming us", signKid(t, jwt.SigningMethodRS256, r1, "r1", claims(claimSet("aud", []string{"other", "dmsrouter"}))), true},
		{"HS256 beside the key set", signKid(t, jwt.SigningMethodHS256, []byte(authSecret), "", claims()), true},

		{"RS512 of r1, which names RS256", signKid(t, jwt.SigningMethodRS512, r1, "r1", claims()), false},
		{"r2's signature under kid r1", signKid(t, jwt.SigningMethodRS256, r2, "r1", claims()), false},
		{"another key under kid r1", signKid(t, jwt.SigningMethodRS256, other, "r1", claims()), false},
		{"EdDSA under an RSA kid", signKid(t, jwt.SigningMethodEdDSA, e1, "r1", claims()), false},
		{"unknown kid", signKid(t, jwt.SigningMethodRS256, other, "nope", claims()), false},
		{"RS256 without kid, two RSA keys", signKid(t, jwt.SigningMethodRS256, r1, "", claims()), false},
		{"wrong iss", signKid(t, jwt.SigningMethodRS256, r1, "r1", claims(claimSet("iss", "https://evil.example"))), false},
		{"no iss", signKid(t, jwt.SigningMethodRS256, r1, "r1", claims(claimWithout("iss"))), false},
		{"wrong aud", signKid(t, jwt.SigningMethodRS256, r1, "r1", claims(claimSet("aud", "someone-else"))), false},
		{"aud a list without us", signKid(t, jwt.SigningMethodRS256, r1, "r1", claims(claimSet("aud", []string{"a", "b"}))), false},
		{"no aud", signKid(t, jwt.SigningMethodRS256, r1, "r1", claims(claimWithout("aud"))), false},
		{"HS256 without iss", signKid(t, jwt.SigningMethodHS256, []byte(authSecret), "", claims(claimWithout("iss"))), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := v.Verify(tt.token, now)
			if tt.ok && (err != nil || got.Subject != "u") {
				t.Errorf("Verify = %+v, %v, want subject u", got, err)
			}
			if !tt.ok && !errors.Is(err, ErrUnauthenticated) {
				t.Errorf("Verify = %+v, %v, want an error wrapping ErrUnauthenticated", got, err)
			}
		})
	}
}

// TestJWKSRotation follows a key rotation: a new kid is accepted once the
// set is fetched again, a flood of unknown kids costs the identity provider
// one fetch per 30s, and a key the provider drops stops verifying at once,
// even tokens verified before.
func TestJWKSRotation(t *testing.T) {
	k1, k2 := genRSA(t), genRSA(t)
	p := newIDP(t, rsaJWK("k1", "RS256", &k1.PublicKey))
	v := openVerifier(t, Config{JWKSURL: p.url()})
	start := time.Now()
	old := signKid(t, jwt.SigningMethodRS256, k1, "k1", idpClaims(start, "old"))
	fresh := signKid(t, jwt.SigningMethodRS256, k2, "k2", idpClaims(start, "new"))
	verify := func(what, token string, at time.Duration, ok bool, fetches int) {
		t.Helper()
		_, err := v.Verify(token, start.Add(at))
		if (err == nil) != ok {
			t.Errorf("%s: Verify at +%s = %v, want ok %v", what, at, err, ok)
		}
		if got := p.count(); got != fetches {
			t.Errorf("%s: the key set was fetched %d times, want %d", what, got, fetches)
		}
	}

	verify("k1 at start", old, 0, true, 1)
	p.set(rsaJWK("k1", "RS256", &k1.PublicKey), rsaJWK("k2", "RS256", &k2.PublicKey))
	verify("k2 within 30s of the last fetch", fresh, 10*time.Second, false, 1)
	verify("k2 after 30s", fresh, 31*time.Second, true, 2)
	for i := range 50 {
		bad := signKid(t, jwt.SigningMethodRS256, k2, "made-up-"+strconv.Itoa(i), idpClaims(start, "flood"))
		if _, err := v.Verify(bad, start.Add(40*time.Second)); err == nil {
			t.Fatalf("Verify of made-up kid %d = nil error", i)
		}
	}
	if got := p.count(); got != 2 {
		t.Errorf("after a flood of 50 unknown kids the key set was fetched %d times, want 2", got)
	}
	p.set(rsaJWK("k2", "RS256", &k2.PublicKey))
	verify("k1, cached, while the provider still lists it", old, 45*time.Second, true, 2)
	verify("an unknown kid after 30s fetches the set without k1", signKid(t, jwt.SigningMethodRS256, k2, "k3", idpClaims(start, "x")), 62*time.Second, false, 3)
	verify("k1 once dropped", old, 63*time.Second, false, 3)
	verify("k2 still", fresh, 64*time.Second, true, 3)
	if st, ok := v.KeySet(); !ok || st.Keys != 1 || st.Fetches != 3 || st.Failures != 0 {
		t.Errorf("KeySet() = %+v, %v; want 1 key, 3 fetches, no failure", st, ok)
	}
}

// TestJWKSProviderDown checks that the last good keys keep verifying while
// the identity provider is down, that RefreshKeys counts the failures, and
// that it picks up a new key once the provider is back.
func TestJWKSProviderDown(t *testing.T) {
	k1, k2 := genRSA(t), genRSA(t)
	p := newIDP(t, rsaJWK("k1", "", &k1.PublicKey))
	v := openVerifier(t, Config{JWKSURL: p.url(), JWKSRefresh: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); v.RefreshKeys(ctx) }()
	defer func() { cancel(); <-done }()

	p.setDown(true)
	waitUntil(t, "a failed refresh", func() bool { st, _ := v.KeySet(); return st.Failures >= 1 })
	now := time.Now()
	if _, err := v.Verify(signKid(t, jwt.SigningMethodRS256, k1, "k1", idpClaims(now, "during")), now); err != nil {
		t.Errorf("Verify with k1 while the provider is down = %v, want the last good keys to verify", err)
	}
	if _, err := v.Verify(signKid(t, jwt.SigningMethodRS256, k2, "k2", idpClaims(now, "k2")), now.Add(time.Minute)); err == nil {
		t.Errorf("Verify with k2, unknown, while the provider is down = nil error, want 401")
	}

	p.set(rsaJWK("k2", "", &k2.PublicKey))
	p.setDown(false)
	// A failed refresh retries within 30s; this one waits for a success.
	waitUntil(t, "a refresh with k2", func() bool { _, known, _ := v.jwks.find("k2", true, "RS256"); return known })
	now = time.Now()
	if _, err := v.Verify(signKid(t, jwt.SigningMethodRS256, k2, "k2", idpClaims(now, "after")), now); err != nil {
		t.Errorf("Verify with k2 after the provider came back = %v, want nil", err)
	}
}

// waitUntil polls cond every 10ms until it holds, failing the test after 30s.
func waitUntil(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("gave up waiting for %s", what)
		}
	}
}

// TestOpenJWKSErrors checks that Open refuses a key set it cannot fetch or
// use, naming auth.jwks_url and why.
func TestOpenJWKSErrors(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	good := genRSA(t)
	closed := newIDP(t)
	closed.srv.Close()
	down := newIDP(t)
	down.setDown(true)
	serve := func(body string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(body)) }))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	keys := func(k ...map[string]any) string {
		b, _ := json.Marshal(map[string]any{"keys": k})
		return serve(string(b))
	}
	encKey := rsaJWK("enc", "", &good.PublicKey)
	encKey["use"] = "enc"
	badAlg := rsaJWK("hs", "HS256", &good.PublicKey)
	badE := rsaJWK("e", "", &good.PublicKey)
	badE["e"] = b64([]byte{2})

	tests := []struct {
		name, url, want string
	}{
		{"unreachable", closed.url(), "connect"},
		{"503", down.url(), "503"},
		{"not JSON", serve("<html>"), "not a JWK Set"},
		{"no keys", keys(), "no usable signature key among 0"},
		{"RSA 1024", keys(rsaJWK("s", "", &small.PublicKey)), "too small"},
		{"EC", keys(map[string]any{"kty": "EC", "kid": "ec", "crv": "P-256", "x": b64(ec.X.Bytes()), "y": b64(ec.Y.Bytes())}), `kty "EC" not supported`},
		{"encryption key", keys(encKey), `use "enc"`},
		{"RSA key for HS256", keys(badAlg), `alg "HS256"`},
		{"even exponent", keys(badE), "exponent"},
		{"Ed448", keys(map[string]any{"kty": "OKP", "crv": "Ed448", "x": b64(make([]byte, 57))}), "Ed448"},
		{"short Ed25519", keys(map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64(make([]byte, 31))}), "not an Ed25519 public key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := Open(context.Background(), Config{JWKSURL: tt.url}, Options{})
			if err == nil || !strings.Contains(err.Error(), "auth.jwks_url") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open(%s) = %v, %v; want an error naming auth.jwks_url and %q", tt.name, v, err, tt.want)
			}
		})
	}
	// Over HTTPS the provider's certificate must be trusted: by the
	// system's roots, or by the Client of Options.
	tlsIDP := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []any{rsaJWK("tls", "", &good.PublicKey)}})
	}))
	defer tlsIDP.Close()
	if _, err := Open(context.Background(), Config{JWKSURL: tlsIDP.URL}, Options{}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Open(HTTPS, untrusted certificate) = %v, want a certificate error", err)
	}
	if _, err := Open(context.Background(), Config{JWKSURL: tlsIDP.URL}, Options{Client: tlsIDP.Client()}); err != nil {
		t.Errorf("Open(HTTPS, with a client that trusts it) = %v, want nil", err)
	}

	// One usable key among unusable ones is enough.
	url := keys(encKey, rsaJWK("ok", "", &good.PublicKey))
	v := openVerifier(t, Config{JWKSURL: url})
	if st, _ := v.KeySet(); st.Keys != 1 {
		t.Errorf("KeySet().Keys = %d, want 1 (the encryption key skipped)", st.Keys)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // "" when valid
	}{
		{"secret", Config{HS256Secret: authSecret}, ""},
		{"jwks", Config{JWKSURL: "https://idp.example/jwks.json", JWKSRefresh: time.Hour, Issuer: "https://idp.example", Audience: "dmsrouter"}, ""},
		{"nothing", Config{}, "auth: set hs256_secret"},
		{"jwks without scheme", Config{JWKSURL: "idp.example/jwks.json"}, `auth.jwks_url: "idp.example/jwks.json" is not an http(s) URL`},
		{"jwks file URL", Config{JWKSURL: "file:///etc/jwks.json"}, "auth.jwks_url"},
		{"refresh too short", Config{JWKSURL: "https://idp.example/jwks", JWKSRefresh: time.Second}, "auth.jwks_refresh: 1s is outside 1m..24h"},
		{"refresh too long", Config{JWKSURL: "https://idp.example/jwks", JWKSRefresh: 48 * time.Hour}, "auth.jwks_refresh: 48h0m0s is outside 1m..24h"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("Validate(%+v) = %v, want %q", tt.cfg, err, tt.want)
			}
		})
	}
}

// BenchmarkVerifyJWKS measures a token of the key set verified for the
// first time (the signature checked) and again (from the cache).
func BenchmarkVerifyJWKS(b *testing.B) {
	k := genRSA(b)
	p := newIDP(b, rsaJWK("k1", "RS256", &k.PublicKey))
	v := openVerifier(b, Config{JWKSURL: p.url()})
	now := time.Now()
	b.Run("uncached", func(b *testing.B) {
		tok := signKid(b, jwt.SigningMethodRS256, k, "k1", idpClaims(now, "uncached"))
		for b.Loop() {
			v.cache.clear() // the signature is checked every time
			if _, err := v.Verify(tok, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		tok := signKid(b, jwt.SigningMethodRS256, k, "k1", idpClaims(now, "cached"))
		for b.Loop() {
			if _, err := v.Verify(tok, now); err != nil {
				b.Fatal(err)
			}
		}
	})
}
