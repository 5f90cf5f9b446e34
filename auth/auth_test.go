package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/dmshub/dmsrouter/regions"
)

const authSecret = "0123456789abcdef-test-secret"

var authNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// writeAuthPEM writes der as one PEM block of type typ to a new file in dir and
// returns its path.
func writeAuthPEM(tb testing.TB, dir, typ string, der []byte) string {
	tb.Helper()
	f, err := os.CreateTemp(dir, "key-*.pem")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if err := pem.Encode(f, &pem.Block{Type: typ, Bytes: der}); err != nil {
		tb.Fatal(err)
	}
	return f.Name()
}

// writeAuthPKIX writes pub as a PKIX "PUBLIC KEY" PEM file in dir and returns its path.
func writeAuthPKIX(tb testing.TB, dir string, pub any) string {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	return writeAuthPEM(tb, dir, "PUBLIC KEY", der)
}

func newAuthVerifier(tb testing.TB, cfg Config) *Verifier {
	tb.Helper()
	v, err := NewVerifier(cfg)
	if err != nil {
		tb.Fatalf("NewVerifier(%+v) = %v, want nil error", cfg, err)
	}
	return v
}

func signAuthToken(tb testing.TB, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	tb.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		tb.Fatalf("sign %s: %v", m.Alg(), err)
	}
	return s
}

// validAuthClaims returns claims Verify accepts at authNow, changed by edits.
func validAuthClaims(edits ...func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{
		"sub":       "user-42",
		"role":      "market_manager",
		"territory": "province:015",
		"iat":       authNow.Add(-time.Minute).Unix(),
		"exp":       authNow.Add(time.Hour).Unix(),
	}
	for _, e := range edits {
		e(c)
	}
	return c
}

func claimSet(key string, val any) func(jwt.MapClaims) {
	return func(c jwt.MapClaims) { c[key] = val }
}

func claimWithout(key string) func(jwt.MapClaims) {
	return func(c jwt.MapClaims) { delete(c, key) }
}

func authB64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestVerify(t *testing.T) {
	dir := t.TempDir()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	otherRSA, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	edPub, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaFile := writeAuthPKIX(t, dir, &rsaKey.PublicKey)
	rsaPEM, err := os.ReadFile(rsaFile)
	if err != nil {
		t.Fatal(err)
	}

	hsOnly := newAuthVerifier(t, Config{HS256Secret: authSecret})
	rsaOnly := newAuthVerifier(t, Config{PublicKeyFile: rsaFile})
	rsaPKCS1 := newAuthVerifier(t, Config{
		PublicKeyFile: writeAuthPEM(t, dir, "RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&rsaKey.PublicKey)),
	})
	edOnly := newAuthVerifier(t, Config{PublicKeyFile: writeAuthPKIX(t, dir, edPub)})
	both := newAuthVerifier(t, Config{HS256Secret: authSecret, PublicKeyFile: rsaFile})

	hs := func(edits ...func(jwt.MapClaims)) string {
		return signAuthToken(t, jwt.SigningMethodHS256, []byte(authSecret), validAuthClaims(edits...))
	}
	rs := signAuthToken(t, jwt.SigningMethodRS256, rsaKey, validAuthClaims())
	ed := signAuthToken(t, jwt.SigningMethodEdDSA, edKey, validAuthClaims())
	good := hs()
	goodParts := strings.Split(good, ".")
	payload := authB64(`{"sub":"user-42","role":"super_admin","territory":"national","exp":` +
		strconv.FormatInt(authNow.Add(time.Hour).Unix(), 10) + `}`)

	manager := Principal{
		Subject:   "user-42",
		Role:      "market_manager",
		Territory: regions.Territory{Level: regions.Provincial, Code: "015"},
	}
	withTerritory := func(s string) Principal {
		p := manager
		p.Territory = mustAuthTerritory(t, s)
		return p
	}

	tests := []struct {
		name  string
		v     *Verifier
		token string
		want  Principal // the zero Principal means Verify must fail
	}{
		// Accepted.
		{"HS256", hsOnly, good, manager},
		{"HS256 with both keys", both, good, manager},
		{"RS256 PKIX key", rsaOnly, rs, manager},
		{"RS256 PKCS1 key", rsaPKCS1, rs, manager},
		{"RS256 with both keys", both, rs, manager},
		{"EdDSA", edOnly, ed, manager},
		{"expired within leeway", hsOnly, hs(claimSet("exp", authNow.Add(-29*time.Second).Unix())), manager},
		{"nbf within leeway", hsOnly, hs(claimSet("nbf", authNow.Add(29*time.Second).Unix())), manager},
		{"iat within leeway", hsOnly, hs(claimSet("iat", authNow.Add(29*time.Second).Unix())), manager},
		{"no iat", hsOnly, hs(claimWithout("iat")), manager},
		{"territory national", hsOnly, hs(claimSet("territory", "national")), withTerritory("national")},
		{"territory comune", hsOnly, hs(claimSet("territory", "comune:015146")), withTerritory("comune:015146")},
		{"territory market", hsOnly, hs(claimSet("territory", "market:5910974510923775")), withTerritory("market:5910974510923775")},
		{"extra claims ignored", hsOnly, hs(claimSet("aud", "someone"), claimSet("x", 1)), manager},

		// Time.
		{"expired", hsOnly, hs(claimSet("exp", authNow.Add(-time.Hour).Unix())), Principal{}},
		{"expired beyond leeway", hsOnly, hs(claimSet("exp", authNow.Add(-31*time.Second).Unix())), Principal{}},
		{"nbf in the future", hsOnly, hs(claimSet("nbf", authNow.Add(31*time.Second).Unix())), Principal{}},
		{"iat in the future", hsOnly, hs(claimSet("iat", authNow.Add(time.Hour).Unix())), Principal{}},
		{"missing exp", hsOnly, hs(claimWithout("exp")), Principal{}},
		{"exp not a number", hsOnly, hs(claimSet("exp", "tomorrow")), Principal{}},
		{"exp with a fraction", hsOnly, hs(claimSet("exp", float64(authNow.Add(time.Hour).Unix())+0.5)), manager},

		// NumericDate is a JSON number (RFC 7519, section 2): no other type.
		{"exp a numeric string", hsOnly, hs(claimSet("exp", strconv.FormatInt(authNow.Add(time.Hour).Unix(), 10))), Principal{}},
		{"exp null", hsOnly, hs(claimSet("exp", nil)), Principal{}},
		{"exp true", hsOnly, hs(claimSet("exp", true)), Principal{}},
		{"exp an array", hsOnly, hs(claimSet("exp", []int64{authNow.Add(time.Hour).Unix()})), Principal{}},
		{"exp an object", hsOnly, hs(claimSet("exp", map[string]int64{"n": authNow.Add(time.Hour).Unix()})), Principal{}},
		{"nbf a numeric string", hsOnly, hs(claimSet("nbf", strconv.FormatInt(authNow.Add(-time.Hour).Unix(), 10))), Principal{}},
		{"nbf null", hsOnly, hs(claimSet("nbf", nil)), Principal{}},
		{"iat a numeric string", hsOnly, hs(claimSet("iat", strconv.FormatInt(authNow.Add(-time.Minute).Unix(), 10))), Principal{}},
		{"iat false", hsOnly, hs(claimSet("iat", false)), Principal{}},

		// Signature and alg.
		{"wrong secret", hsOnly, signAuthToken(t, jwt.SigningMethodHS256, []byte("another-secret-of-16+"), validAuthClaims()), Principal{}},
		{"wrong RSA key", rsaOnly, signAuthToken(t, jwt.SigningMethodRS256, otherRSA, validAuthClaims()), Principal{}},
		{"RS256 when only HS256 configured", hsOnly, rs, Principal{}},
		{"HS256 when only RS256 configured", rsaOnly, good, Principal{}},
		{"HS256 keyed with the RSA public key PEM", rsaOnly, signAuthToken(t, jwt.SigningMethodHS256, rsaPEM, validAuthClaims()), Principal{}},
		{"HS256 keyed with the RSA public key PEM, both keys", both, signAuthToken(t, jwt.SigningMethodHS256, rsaPEM, validAuthClaims()), Principal{}},
		{"EdDSA when RSA configured", rsaOnly, ed, Principal{}},
		{"EdDSA with both keys", both, ed, Principal{}},
		{"RS256 when Ed25519 configured", edOnly, rs, Principal{}},
		{"HS512 with the right secret", hsOnly, signAuthToken(t, jwt.SigningMethodHS512, []byte(authSecret), validAuthClaims()), Principal{}},
		{"RS512 with the right key", rsaOnly, signAuthToken(t, jwt.SigningMethodRS512, rsaKey, validAuthClaims()), Principal{}},
		{"PS256 with the right key", rsaOnly, signAuthToken(t, jwt.SigningMethodPS256, rsaKey, validAuthClaims()), Principal{}},
		{"alg none", both, authB64(`{"alg":"none","typ":"JWT"}`) + "." + payload + ".", Principal{}},
		{"alg none with signature", hsOnly, authB64(`{"alg":"none"}`) + "." + payload + "." + goodParts[2], Principal{}},
		{"alg None", hsOnly, authB64(`{"alg":"None"}`) + "." + payload + ".", Principal{}},
		{"no alg", hsOnly, authB64(`{"typ":"JWT"}`) + "." + payload + ".", Principal{}},
		{"tampered payload", hsOnly, goodParts[0] + "." + payload + "." + goodParts[2], Principal{}},
		{"signature stripped", hsOnly, goodParts[0] + "." + goodParts[1] + ".", Principal{}},

		// Malformed.
		{"empty", hsOnly, "", Principal{}},
		{"one segment", hsOnly, "abc", Principal{}},
		{"two segments", hsOnly, "a.b", Principal{}},
		{"garbage base64", hsOnly, "a.b.c", Principal{}},
		{"bad characters", hsOnly, "!!!.###.$$$", Principal{}},
		{"four segments", hsOnly, good + ".x", Principal{}},
		{"header not JSON", hsOnly, authB64("HS256") + "." + goodParts[1] + "." + goodParts[2], Principal{}},
		{"Bearer prefix left on", hsOnly, "Bearer " + good, Principal{}},
		{"zero Verifier", &Verifier{}, good, Principal{}},

		// Claims.
		{"missing sub", hsOnly, hs(claimWithout("sub")), Principal{}},
		{"empty sub", hsOnly, hs(claimSet("sub", "")), Principal{}},
		{"sub not a string", hsOnly, hs(claimSet("sub", 42)), Principal{}},
		{"unknown role", hsOnly, hs(claimSet("role", "root")), Principal{}},
		{"role in upper case", hsOnly, hs(claimSet("role", "SUPER_ADMIN")), Principal{}},
		{"missing role", hsOnly, hs(claimWithout("role")), Principal{}},
		{"role not a string", hsOnly, hs(claimSet("role", []string{"admin_pa"})), Principal{}},
		{"territory region:21", hsOnly, hs(claimSet("territory", "region:21")), Principal{}},
		{"territory comune:215146", hsOnly, hs(claimSet("territory", "comune:215146")), Principal{}},
		{"territory comune:015999", hsOnly, hs(claimSet("territory", "comune:015999")), Principal{}},
		{"territory empty", hsOnly, hs(claimSet("territory", "")), Principal{}},
		{"territory missing", hsOnly, hs(claimWithout("territory")), Principal{}},
		{"territory upper case", hsOnly, hs(claimSet("territory", "NATIONAL")), Principal{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.v.Verify(tt.token, authNow)
			if tt.want == (Principal{}) {
				if err == nil || !errors.Is(err, ErrUnauthenticated) {
					t.Errorf("Verify(%q) = %+v, %v, want error wrapping ErrUnauthenticated", tt.token, got, err)
				}
				if got != (Principal{}) {
					t.Errorf("Verify(%q) = %+v, want zero Principal on error", tt.token, got)
				}
				t.Log(err)
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("Verify(%q) = %+v, %v, want %+v, nil", tt.token, got, err, tt.want)
			}
		})
	}
}

func mustAuthTerritory(tb testing.TB, s string) regions.Territory {
	tb.Helper()
	t, err := regions.ParseTerritory(s)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

func TestNewVerifierErrors(t *testing.T) {
	dir := t.TempDir()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPriv, err := x509.MarshalPKCS8PrivateKey(edKey)
	if err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("this is not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		cfg  Config
		want string // a substring of the error
	}{
		{"nothing configured", Config{}, "no key configured"},
		{"short secret", Config{HS256Secret: "fifteen-bytes!!"}, "too short"},
		{"short secret with a good key", Config{HS256Secret: "short", PublicKeyFile: writeAuthPKIX(t, dir, edKey.Public())}, "hs256_secret"},
		{"missing file", Config{PublicKeyFile: filepath.Join(dir, "missing.pem")}, "no such file"},
		{"not PEM", Config{PublicKeyFile: notPEM}, "no PEM block"},
		{"private key", Config{PublicKeyFile: writeAuthPEM(t, dir, "PRIVATE KEY", edPriv)}, `"PRIVATE KEY"`},
		{"garbage in PUBLIC KEY", Config{PublicKeyFile: writeAuthPEM(t, dir, "PUBLIC KEY", []byte("garbage"))}, "parse PUBLIC KEY"},
		{"garbage in RSA PUBLIC KEY", Config{PublicKeyFile: writeAuthPEM(t, dir, "RSA PUBLIC KEY", []byte("garbage"))}, "parse RSA PUBLIC KEY"},
		{"ECDSA key", Config{PublicKeyFile: writeAuthPKIX(t, dir, &ecKey.PublicKey)}, "unsupported key type"},
		{"RSA 1024", Config{PublicKeyFile: writeAuthPKIX(t, dir, &small.PublicKey)}, "too small"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := NewVerifier(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewVerifier(%+v) = %v, %v, want error containing %q", tt.cfg, v, err, tt.want)
			}
		})
	}
}

func TestNewVerifierSecretOf16Bytes(t *testing.T) {
	secret := "exactly16bytes!!"
	v := newAuthVerifier(t, Config{HS256Secret: secret})
	p := Principal{Subject: "s", Role: "auditor", Territory: regions.Territory{Level: regions.National}}
	tok, err := SignHS256(secret, p, time.Minute, authNow)
	if err != nil {
		t.Fatalf("SignHS256(%q) = %v, want nil error", secret, err)
	}
	if got, err := v.Verify(tok, authNow); err != nil || got != p {
		t.Errorf("Verify(%q) = %+v, %v, want %+v, nil", tok, got, err, p)
	}
}

func TestSignHS256(t *testing.T) {
	v := newAuthVerifier(t, Config{HS256Secret: authSecret})
	ttl := 15 * time.Minute
	tests := []Principal{
		{Subject: "admin", Role: "super_admin", Territory: regions.Territory{Level: regions.National}},
		{Subject: "pa-03", Role: "admin_pa", Territory: mustAuthTerritory(t, "region:03")},
		{Subject: "vigile", Role: "municipal_police", Territory: mustAuthTerritory(t, "comune:015146")},
		{Subject: "owner", Role: "business_owner", Territory: mustAuthTerritory(t, "market:5910974510923775")},
	}
	for _, p := range tests {
		t.Run(p.Role, func(t *testing.T) {
			tok, err := SignHS256(authSecret, p, ttl, authNow)
			if err != nil {
				t.Fatalf("SignHS256(%+v) = %v, want nil error", p, err)
			}
			for _, at := range []time.Time{authNow, authNow.Add(ttl)} {
				if got, err := v.Verify(tok, at); err != nil || got != p {
					t.Errorf("Verify(%q, %v) = %+v, %v, want %+v, nil", tok, at, got, err, p)
				}
			}
			late := authNow.Add(ttl + authLeeway + time.Second)
			if got, err := v.Verify(tok, late); !errors.Is(err, ErrUnauthenticated) {
				t.Errorf("Verify(%q, %v) = %+v, %v, want ErrUnauthenticated", tok, late, got, err)
			}
			var claims jwt.MapClaims
			if _, _, err := jwt.NewParser().ParseUnverified(tok, &claims); err != nil {
				t.Fatal(err)
			}
			want := jwt.MapClaims{
				"sub":       p.Subject,
				"role":      p.Role,
				"territory": p.Territory.String(),
				"iat":       float64(authNow.Unix()),
				"exp":       float64(authNow.Add(ttl).Unix()),
			}
			if len(claims) != len(want) {
				t.Errorf("claims of SignHS256(%+v) = %v, want %v", p, claims, want)
			}
			for k, w := range want {
				if claims[k] != w {
					t.Errorf("claim %q of SignHS256(%+v) = %v, want %v", k, p, claims[k], w)
				}
			}
		})
	}
}

func TestSignHS256ShortSecret(t *testing.T) {
	p := Principal{Subject: "s", Role: "auditor"}
	for _, secret := range []string{"", "fifteen-bytes!!"} {
		if tok, err := SignHS256(secret, p, time.Minute, authNow); err == nil {
			t.Errorf("SignHS256(%q) = %q, nil, want error", secret, tok)
		}
	}
}

func TestTokenFromRequest(t *testing.T) {
	tests := []struct {
		name   string
		header string // Authorization, unset when ""
		cookie string // dms_token, unset when ""
		want   string
	}{
		{"nothing", "", "", ""},
		{"bearer header", "Bearer hdr.tok.en", "", "hdr.tok.en"},
		{"lower case scheme", "bearer hdr.tok.en", "", "hdr.tok.en"},
		{"upper case scheme", "BEARER hdr.tok.en", "", "hdr.tok.en"},
		{"extra spaces", "Bearer   hdr.tok.en ", "", "hdr.tok.en"},
		{"cookie", "", "cookie.tok.en", "cookie.tok.en"},
		{"header before cookie", "Bearer hdr.tok.en", "cookie.tok.en", "hdr.tok.en"},
		{"basic ignored", "Basic x", "", ""},
		{"basic ignored, cookie used", "Basic x", "cookie.tok.en", "cookie.tok.en"},
		{"scheme without token", "Bearer", "", ""},
		{"empty bearer token, cookie used", "Bearer ", "cookie.tok.en", "cookie.tok.en"},
		{"scheme glued to token", "Bearerhdr.tok.en", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			if tt.cookie != "" {
				r.AddCookie(&http.Cookie{Name: "dms_token", Value: tt.cookie})
			}
			if got := TokenFromRequest(r); got != tt.want {
				t.Errorf("TokenFromRequest(Authorization %q, cookie %q) = %q, want %q", tt.header, tt.cookie, got, tt.want)
			}
		})
	}
}

func TestRolesAndCanWrite(t *testing.T) {
	writers := []string{"super_admin", "admin_pa", "market_manager", "suap_operator"}
	readers := []string{"municipal_police", "auditor", "business_owner", "dba"}
	roles := Roles()
	if want := append(slices.Clone(writers), readers...); !slices.Equal(roles, want) {
		t.Errorf("Roles() = %v, want %v", roles, want)
	}
	roles[0] = "changed"
	if Roles()[0] != "super_admin" {
		t.Errorf("Roles() shares its slice with callers")
	}
	tests := []struct {
		role string
		want bool
	}{
		{"", false},
		{"root", false},
		{"SUPER_ADMIN", false},
	}
	for _, r := range writers {
		tests = append(tests, struct {
			role string
			want bool
		}{r, true})
	}
	for _, r := range readers {
		tests = append(tests, struct {
			role string
			want bool
		}{r, false})
	}
	for _, tt := range tests {
		if got := CanWrite(tt.role); got != tt.want {
			t.Errorf("CanWrite(%q) = %v, want %v", tt.role, got, tt.want)
		}
	}
}

func TestIsOperator(t *testing.T) {
	for _, role := range append(Roles(), "", "DBA", "root") {
		want := role == "dba" || role == "super_admin"
		if got := IsOperator(role); got != want {
			t.Errorf("IsOperator(%q) = %v, want %v", role, got, want)
		}
	}
}

// TestVerifyCachedToken checks that a token remembered after its first
// verification is still held to its validity window on every later use.
func TestVerifyCachedToken(t *testing.T) {
	v := newAuthVerifier(t, Config{HS256Secret: authSecret})
	nbf := authNow.Add(10 * time.Minute)
	exp := authNow.Add(time.Hour)
	tok := signAuthToken(t, jwt.SigningMethodHS256, []byte(authSecret),
		validAuthClaims(claimSet("nbf", nbf.Unix()), claimSet("exp", exp.Unix())))
	want := Principal{Subject: "user-42", Role: "market_manager", Territory: mustAuthTerritory(t, "province:015")}

	if _, err := v.Verify(tok, authNow); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("Verify before nbf = %v, want ErrUnauthenticated", err)
	}
	if got, err := v.Verify(tok, nbf); err != nil || got != want {
		t.Fatalf("Verify at nbf = %+v, %v, want %+v, nil", got, err, want)
	}
	tests := []struct {
		name string
		at   time.Time
		ok   bool
	}{
		{"again at nbf", nbf, true},
		{"nbf minus leeway", nbf.Add(-authLeeway), true},
		{"before nbf minus leeway", nbf.Add(-authLeeway - time.Second), false},
		{"exp plus leeway minus 1s", exp.Add(authLeeway - time.Second), true},
		{"exp plus leeway", exp.Add(authLeeway), false},
	}
	for _, tt := range tests {
		got, err := v.Verify(tok, tt.at)
		if tt.ok && (err != nil || got != want) {
			t.Errorf("%s: Verify = %+v, %v, want %+v, nil", tt.name, got, err, want)
		}
		if !tt.ok && !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s: Verify = %+v, %v, want ErrUnauthenticated", tt.name, got, err)
		}
	}
	// The cache is keyed by the whole token: a changed signature misses it.
	forged := tok[:len(tok)-2] + "AA"
	if forged == tok {
		forged = tok[:len(tok)-2] + "BB"
	}
	if _, err := v.Verify(forged, nbf); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("Verify(forged signature) = %v, want ErrUnauthenticated", err)
	}
}

func TestTokenCacheBounded(t *testing.T) {
	var c tokenCache
	e := verified{till: authNow.Add(time.Hour)}
	for i := range tokenCacheSize + 100 {
		c.put(fmt.Sprint("token-", i), e, authNow)
	}
	if n := len(c.entries); n > tokenCacheSize {
		t.Errorf("cache holds %d entries, want at most %d", n, tokenCacheSize)
	}
	last := fmt.Sprint("token-", tokenCacheSize+99)
	if _, ok := c.get(last, authNow); !ok {
		t.Errorf("the entry put last is missing")
	}
	// Expired entries go first.
	var d tokenCache
	for i := range tokenCacheSize {
		d.put(fmt.Sprint("old-", i), verified{till: authNow}, authNow.Add(-time.Minute))
	}
	d.put("new", e, authNow)
	if n := len(d.entries); n != 1 {
		t.Errorf("after expiry the cache holds %d entries, want 1", n)
	}
}
